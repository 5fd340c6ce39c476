"""The `champion` alias across a collection's prompt variants, on a real MLflow registry and a real
Dagster instance: both variants' candidates are checked before either is promoted (the order
`rr run` takes), so the second promotion must see the first."""

import json

import dagster as dg
import pytest

from rr_assets.assets.student import champion, champion_candidate
from rr_assets.core.checkpoints import checkpoint_name
from rr_assets.core.registry import DEV_METRIC_TAG, StudentRegistry, registered_name
from rr_assets.core.tracking import mlflow_run
from rr_assets.partitions import collection_partitions, latest_metadata, prompt_variant_partitions, variant_key
from rr_assets.resources import RRHome, Tracker

pytestmark = pytest.mark.integration


def register(tmp_path, uri: str, variant: str, dev_ndcg: float) -> str:
    """A registered version of the variant's checkpoint with its dev figure, and its card."""
    folder = tmp_path / "home" / "checkpoints" / checkpoint_name("demo", variant)
    folder.mkdir(parents=True)
    (folder / "weights.bin").write_bytes(variant.encode())
    with mlflow_run(uri, "rr", f"student_checkpoint/{variant}", {}) as run:
        version = StudentRegistry(uri).register(registered_name("demo"), folder, run.run_id,
                                                {"prompt_variant": variant, DEV_METRIC_TAG: dev_ndcg})
    (folder / "card.json").write_text(json.dumps({"mlflow_run_id": run.run_id}))
    return version.version


def test_a_candidate_overtaken_by_another_variants_promotion_leaves_the_champion(tmp_path):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    better, worse = register(tmp_path, uri, "default", 0.3), register(tmp_path, uri, "chat-json", 0.2)
    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions(collection_partitions.name, ["demo"])
    instance.add_dynamic_partitions(prompt_variant_partitions.name, ["default", "chat-json"])
    resources = {"home": RRHome(path=str(tmp_path / "home")), "tracker": Tracker(tracking_uri=uri)}

    def run(asset, variant: str) -> dg.ExecuteInProcessResult:
        return dg.materialize([champion_candidate, champion], selection=[asset], partition_key=variant_key("demo", variant),
                              instance=instance, resources=resources, raise_on_error=False)

    for variant in ("default", "chat-json"):  # no champion yet: both candidates pass beats_champion
        assert run(champion_candidate, variant).get_asset_check_evaluations()[0].passed
    assert run(champion, "default").success and run(champion, "chat-json").success
    registry = StudentRegistry(uri)
    assert registry.champion(registered_name("demo")).version == better
    kept = latest_metadata(instance, dg.AssetKey("champion"), variant_key("demo", "chat-json"))
    assert kept["promoted"] is False and kept["champion"] == f"models:/rr-demo/{better}"
    assert kept["candidate"] == f"models:/rr-demo/{worse}"
    # The next check of the worse candidate fails, and blocks its promotion.
    assert not run(champion_candidate, "chat-json").get_asset_check_evaluations()[0].passed
