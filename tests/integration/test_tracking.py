import pytest
from mlflow.tracking import MlflowClient

from rr_assets.core.registry import StudentRegistry
from rr_assets.core.tracking import mlflow_run

pytestmark = pytest.mark.integration


def test_runs_land_in_a_sqlite_store_with_dagster_tags(tmp_path):
    uri = f"sqlite:///{tmp_path}/mlruns/mlflow.db"
    artifact = tmp_path / "card.json"
    artifact.write_text("{}")
    with mlflow_run(uri, "rr-test", "teacher_judgments/demo", {"dagster.run_id": "abc"}) as run:
        run.params({"prompt_variant": "default"})
        run.metrics({"nDCG@10": 0.5})
        run.artifact(artifact)
    with pytest.raises(RuntimeError), mlflow_run(uri, "rr-test", "failing", {}):
        raise RuntimeError("boom")
    client = MlflowClient(uri)
    runs = client.search_runs([client.get_experiment_by_name("rr-test").experiment_id], order_by=["start_time"])
    finished = next(r for r in runs if r.info.run_name == "teacher_judgments/demo")
    assert finished.info.status == "FINISHED" and finished.data.tags["dagster.run_id"] == "abc"
    assert finished.data.params["prompt_variant"] == "default" and finished.data.metrics["nDCG_at_10"] == 0.5
    assert [a.path for a in client.list_artifacts(finished.info.run_id)] == ["card.json"]
    assert next(r for r in runs if r.info.run_name == "failing").info.status == "FAILED"


def test_two_stores_version_1_of_one_name_download_to_different_folders(tmp_path):
    """Version numbers restart per tracking store; a shared download cache must not mix them up."""
    cache, folders = tmp_path / "cache", []
    for store in ("a", "b"):
        checkpoint = tmp_path / f"checkpoint-{store}"
        checkpoint.mkdir()
        (checkpoint / "store.txt").write_text(store)
        uri = f"sqlite:///{tmp_path}/{store}.db"
        registry = StudentRegistry(uri)
        with mlflow_run(uri, "rr", "student_checkpoint/test", {}) as run:
            version = registry.register("rr-demo", checkpoint, run.run_id, {})
        assert version.version == "1"
        folders.append(registry.download("models:/rr-demo/1", cache)[0])
    assert folders[0] != folders[1]
    assert [(f / "store.txt").read_text() for f in folders] == ["a", "b"]
