"""The `champion` alias on a real MLflow registry and a real Dagster instance: a candidate that does
not beat the first stage on the dev slice is never promoted, and across a collection's prompt
variants both candidates are checked before either is promoted (the order `rr run` takes), so the
second promotion must see the first. Champion and candidate compare by their dev gains over the first
stage, so a champion measured on another dev slice is compared like for like."""

import json

import dagster as dg
import pytest

from rr_assets.assets.student import champion, champion_candidate, dev_tags
from rr_assets.core.checkpoints import checkpoint_name
from rr_assets.core.registry import StudentRegistry, registered_name
from rr_assets.core.settings import StudentSettings
from rr_assets.core.tracking import mlflow_run
from rr_assets.partitions import collection_partitions, latest_metadata, prompt_variant_partitions, variant_key
from rr_assets.resources import RRHome, Tracker
from rr_assets.runs import outcome_of

pytestmark = pytest.mark.integration


def register(tmp_path, uri: str, variant: str, dev_ndcg: float, first_stage: float = 0.1, p: float = 0.01) -> str:
    """A registered version of the variant's checkpoint with its dev figures, and its card."""
    folder = tmp_path / "home" / "checkpoints" / checkpoint_name("demo", variant)
    folder.mkdir(parents=True)
    (folder / "weights.bin").write_bytes(variant.encode())
    with mlflow_run(uri, "rr", f"student_checkpoint/{variant}", {}) as run:
        version = StudentRegistry(uri).register(registered_name("demo"), folder, run.run_id,
                                                {"prompt_variant": variant, **dev_tags(dev_ndcg, first_stage, p)})
    (folder / "card.json").write_text(json.dumps({"mlflow_run_id": run.run_id}))
    return version.version


def harness(tmp_path, variants: list[str], promotion_max_p: float = 0.05):
    """(mlflow uri, instance, run(variant, *assets)): champion_candidate and champion (by default both)
    on one ephemeral instance."""
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions(collection_partitions.name, ["demo"])
    instance.add_dynamic_partitions(prompt_variant_partitions.name, variants)
    resources = {"home": RRHome(path=str(tmp_path / "home")), "tracker": Tracker(tracking_uri=uri),
                 "student": StudentSettings(promotion_max_p=promotion_max_p)}

    def run(variant: str, *assets) -> dg.ExecuteInProcessResult:
        return dg.materialize([champion_candidate, champion], selection=list(assets) or [champion_candidate, champion],
                              partition_key=variant_key("demo", variant), instance=instance, resources=resources,
                              raise_on_error=False)

    return uri, instance, run


def checks(result: dg.ExecuteInProcessResult) -> dict[str, bool]:
    return {e.check_name: e.passed for e in result.get_asset_check_evaluations()}


@pytest.mark.parametrize("dev_ndcg, first_stage, p", [(0.30, 0.35, 0.01), (0.40, 0.35, 0.20)])
def test_a_candidate_that_does_not_beat_the_first_stage_on_dev_is_not_promoted(tmp_path, dev_ndcg, first_stage, p):
    """Below the first stage on the dev slice, or above it without a significant paired test: the
    registry is empty, so the candidate beats the champion, but the alias stays unset and the run
    says why, with the figures."""
    uri, instance, run = harness(tmp_path, ["grounded"])
    register(tmp_path, uri, "grounded", dev_ndcg, first_stage, p)
    result = run("grounded")
    assert checks(result) == {"beats_first_stage": False, "beats_champion": True}
    assert StudentRegistry(uri).champion(registered_name("demo")) is None
    assert not any(e.asset_key == dg.AssetKey("champion") for e in result.get_asset_materialization_events())
    outcome = outcome_of(result)
    assert outcome.champion_kept and len(outcome.failed_checks) == 1
    assert outcome.failed_checks[0].startswith("champion_candidate: check beats_first_stage did not pass (")
    assert f"candidate_dev_nDCG@10 {dev_ndcg}" in outcome.failed_checks[0] and f"p {p}" in outcome.failed_checks[0]


def test_a_significant_dev_gain_over_the_first_stage_is_promoted(tmp_path):
    uri, instance, run = harness(tmp_path, ["grounded"])
    version = register(tmp_path, uri, "grounded", 0.40, 0.35, 0.01)
    assert checks(run("grounded")) == {"beats_first_stage": True, "beats_champion": True}
    assert StudentRegistry(uri).champion(registered_name("demo")).version == version


def test_a_candidate_overtaken_by_another_variants_promotion_leaves_the_champion(tmp_path):
    uri, instance, run = harness(tmp_path, ["default", "chat-json"])
    better, worse = register(tmp_path, uri, "default", 0.3), register(tmp_path, uri, "chat-json", 0.2)

    for variant in ("default", "chat-json"):  # no champion yet: both candidates pass both checks
        assert all(checks(run(variant, champion_candidate)).values())
    assert run("default", champion).success and run("chat-json", champion).success
    registry = StudentRegistry(uri)
    assert registry.champion(registered_name("demo")).version == better
    kept = latest_metadata(instance, dg.AssetKey("champion"), variant_key("demo", "chat-json"))
    assert kept["promoted"] is False and kept["champion"] == f"models:/rr-demo/{better}"
    assert kept["candidate"] == f"models:/rr-demo/{worse}"
    # The next check of the worse candidate fails, and blocks its promotion.
    assert checks(run("chat-json", champion_candidate)) == {"beats_first_stage": True, "beats_champion": False}


def test_champion_and_candidate_measured_on_different_dev_slices_compare_their_gains(tmp_path):
    """The champion scored 0.53 on an easier dev slice (its first stage 0.50 there); the candidate
    scores 0.50 on the config's new, harder slice (first stage 0.45): a larger gain, so it is promoted."""
    uri, instance, run = harness(tmp_path, ["default", "chat-json"])
    old = register(tmp_path, uri, "default", 0.53, first_stage=0.50, p=0.01)
    assert run("default").success
    new = register(tmp_path, uri, "chat-json", 0.50, first_stage=0.45, p=0.01)
    result = run("chat-json")
    assert checks(result) == {"beats_first_stage": True, "beats_champion": True}
    assert StudentRegistry(uri).champion(registered_name("demo")).version == new != old
    [evaluation] = [e for e in result.get_asset_check_evaluations() if e.check_name == "beats_champion"]
    gains = {k: round(v.value, 4) for k, v in evaluation.metadata.items() if k.endswith("_dev_gain")}
    assert gains == {"candidate_dev_gain": 0.05, "champion_dev_gain": 0.03}
