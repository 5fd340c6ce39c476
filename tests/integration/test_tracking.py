import pytest
from mlflow.tracking import MlflowClient

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
