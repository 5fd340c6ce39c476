"""MLflow runs for teacher, training and benchmark materialisations, tagged back to Dagster."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from mlflow.tracking import MlflowClient


def artifact_root(tracking_uri: str) -> str | None:
    """For a sqlite store, keep artifacts in an `artifacts/` folder beside the database file."""
    prefix = "sqlite:///"
    if tracking_uri.startswith(prefix):
        db = Path(tracking_uri[len(prefix) :]).resolve()
        db.parent.mkdir(parents=True, exist_ok=True)
        return (db.parent / "artifacts").as_uri()
    return None


class TrackedRun:
    """A thin handle over one MLflow run: params, metrics, artifacts."""

    def __init__(self, client: MlflowClient, run_id: str):
        self.client, self.run_id = client, run_id

    def params(self, values: dict) -> None:
        for key, value in values.items():
            self.client.log_param(self.run_id, key, str(value)[:6000])

    def metrics(self, values: dict, step: int | None = None) -> None:
        for key, value in values.items():
            self.client.log_metric(self.run_id, key.replace("@", "_at_"), float(value), step=step or 0)

    def artifact(self, path: str | Path, folder: str | None = None) -> None:
        self.client.log_artifact(self.run_id, str(path), folder)


def experiment_id(client: MlflowClient, experiment: str) -> str:
    """The experiment's id; it is created (with the store's tables) if it does not exist. Runs
    that create a new store at once race in MLflow's migrations: `rr run` calls this first."""
    found = client.get_experiment_by_name(experiment)
    return found.experiment_id if found else client.create_experiment(
        experiment, artifact_location=artifact_root(client.tracking_uri))


@contextmanager
def mlflow_run(tracking_uri: str, experiment: str, run_name: str, tags: dict[str, str]) -> Iterator[TrackedRun]:
    """Open a run; it ends FINISHED, or FAILED if the block raises."""
    client = MlflowClient(tracking_uri)
    run = client.create_run(experiment_id(client, experiment), run_name=run_name,
                            tags={k: str(v) for k, v in tags.items()})
    try:
        yield TrackedRun(client, run.info.run_id)
    except BaseException:
        client.set_terminated(run.info.run_id, "FAILED")
        raise
    client.set_terminated(run.info.run_id, "FINISHED")
