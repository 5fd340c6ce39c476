"""Student checkpoints in the MLflow model registry: one registered model per collection
(`rr-<collection>`), a version per checkpoint tagged with its lineage, and a `champion` alias that
data teams promote and roll back by name."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

CHAMPION = "champion"
# The blocking checks of a champion candidate: one that fails either stays out of the alias, which
# is reported, not a failure.
FIRST_STAGE_GATE, CHAMPION_GATE = "beats_first_stage", "beats_champion"
PROMOTION_CHECKS = (FIRST_STAGE_GATE, CHAMPION_GATE)
DEV_METRIC_TAG = "dev_ndcg_at_10"
FIRST_STAGE_METRIC_TAG = "first_stage_dev_ndcg_at_10"  # the first stage on the same dev queries
FIRST_STAGE_P_TAG = "dev_p_vs_first_stage"  # paired t-test p of the version against it there


def registered_name(collection: str) -> str:
    return f"rr-{collection}"


@dataclass(frozen=True)
class RegisteredVersion:
    name: str
    version: str
    tags: dict[str, str]
    source: str  # where the version's files are (an artifact URI of its run)

    @property
    def uri(self) -> str:
        return f"models:/{self.name}/{self.version}"

    def _figure(self, tag: str) -> float | None:
        value = self.tags.get(tag)
        return float(value) if value not in (None, "") else None

    @property
    def dev_ndcg(self) -> float | None:
        return self._figure(DEV_METRIC_TAG)

    @property
    def first_stage_dev_ndcg(self) -> float | None:
        return self._figure(FIRST_STAGE_METRIC_TAG)

    @property
    def first_stage_p(self) -> float | None:
        return self._figure(FIRST_STAGE_P_TAG)

    def beats_first_stage(self, max_p: float) -> bool:
        """Whether, on the dev slice, this version alone ranks above the first stage, with a paired
        t-test p below `max_p` (1.0: any gain). A version without those figures does not."""
        if None in (self.dev_ndcg, self.first_stage_dev_ndcg, self.first_stage_p):
            return False
        return self.dev_ndcg > self.first_stage_dev_ndcg and (max_p >= 1.0 or self.first_stage_p < max_p)

    @property
    def dev_gain(self) -> float | None:
        """Dev nDCG@10 above the first stage's on the same dev queries."""
        if None in (self.dev_ndcg, self.first_stage_dev_ndcg):
            return None
        return self.dev_ndcg - self.first_stage_dev_ndcg

    def beats(self, champion: RegisteredVersion | None) -> bool:
        """Whether this version may take the `champion` alias: there is no champion, it is this
        version, it has no dev figure, or this version is strictly better on dev. Better is a larger
        gain over the first stage where both versions have one, each measured on its own dev queries
        (a config's dev slice changes, and a harder slice scores lower for every ranker; on the
        same slice the two orders agree), and a higher dev nDCG@10 otherwise."""
        if champion is None or champion.version == self.version or champion.dev_ndcg is None:
            return True
        if None not in (self.dev_gain, champion.dev_gain):
            return self.dev_gain > champion.dev_gain
        return self.dev_ndcg > champion.dev_ndcg


class StudentRegistry:
    """The registry of one MLflow tracking store."""

    def __init__(self, tracking_uri: str):
        from mlflow.tracking import MlflowClient

        self.tracking_uri = tracking_uri
        self.client = MlflowClient(tracking_uri)

    def register(self, name: str, checkpoint_dir: str | Path, run_id: str, tags: dict[str, object]) -> RegisteredVersion:
        """Log the checkpoint's files to the MLflow run and register them as a new version."""
        from mlflow.exceptions import MlflowException

        self.client.log_artifacts(run_id, str(checkpoint_dir), "student")
        try:
            self.client.create_registered_model(name, description="rr student rerankers of one collection")
        except MlflowException as exc:
            if exc.error_code != "RESOURCE_ALREADY_EXISTS":
                raise
        source = f"{self.client.get_run(run_id).info.artifact_uri}/student"
        version = self.client.create_model_version(name, source, run_id=run_id,
                                                   tags={k: str(v) for k, v in tags.items()})
        return _registered(version)

    def version(self, name: str, version_or_alias: str) -> RegisteredVersion:
        if version_or_alias.isdigit():
            found = self.client.get_model_version(name, version_or_alias)
        else:
            found = self.client.get_model_version_by_alias(name, version_or_alias)
        return _registered(found)

    def version_of_run(self, name: str, run_id: str) -> RegisteredVersion | None:
        found = self.client.search_model_versions(f"name = '{name}' and run_id = '{run_id}'")
        return _registered(found[0]) if found else None

    def champion(self, name: str) -> RegisteredVersion | None:
        from mlflow.exceptions import MlflowException

        try:
            return self.version(name, CHAMPION)
        except MlflowException:
            return None

    def promote(self, version: RegisteredVersion) -> None:
        self.client.set_registered_model_alias(version.name, CHAMPION, version.version)

    def download(self, uri: str, cache_dir: str | Path) -> tuple[Path, RegisteredVersion]:
        """A local folder with the files of `models:/<name>/<version or alias>`, cached per version and
        source: version numbers restart in every tracking store, so the number alone would hand one
        store's checkpoint to another."""
        name, _, ref = parse_model_uri(uri)
        version = self.version(name, ref)
        key = hashlib.sha256(version.source.encode()).hexdigest()[:12]
        target = Path(cache_dir) / "registry" / name / f"{version.version}-{key}"
        if not (target / "student").is_dir():
            import mlflow.artifacts

            staging = target.with_name(target.name + ".partial")
            mlflow.artifacts.download_artifacts(artifact_uri=version.source, dst_path=str(staging),
                                                tracking_uri=self.tracking_uri)
            staging.rename(target)
        return target / "student", version


def _registered(found) -> RegisteredVersion:
    """Ours from an MLflow ModelVersion."""
    return RegisteredVersion(found.name, str(found.version), dict(found.tags), found.source)


def parse_model_uri(uri: str) -> tuple[str, str, str]:
    """`models:/name/3` or `models:/name@alias` → (name, "version" or "alias", reference)."""
    if not uri.startswith("models:/"):
        raise ValueError(f"{uri!r} is not a registry URI (models:/<name>/<version> or models:/<name>@<alias>)")
    rest = uri[len("models:/"):]
    if "@" in rest:
        name, alias = rest.split("@", 1)
        return name, "alias", alias
    name, _, version = rest.partition("/")
    if not version.isdigit():
        raise ValueError(f"{uri!r}: expected models:/<name>/<version number> or models:/<name>@<alias>")
    return name, "version", version
