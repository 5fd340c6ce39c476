"""An API key planted in the environment reaches the teacher and nothing else: no log line, no
MLflow param or tag, no Dagster event, no warehouse row, no report, no file."""

import os
import secrets
import subprocess
import sys

import duckdb
import pytest
from mlflow.tracking import MlflowClient

from rr_assets.config import load_config
from tests.conftest import write_config
from tests.proxy import RecordingProxy

pytestmark = pytest.mark.e2e
SELECTION = " or ".join(f"key:{k}" for k in (
    "corpus", "queries", "qrels", "bm25_index", "first_stage_candidates", "splits", "teacher_judgments",
    "teacher_comparisons", "teacher_rankings", "teacher_injection_probe"))


def test_planted_key_is_used_but_never_recorded(tmp_path, teacher_url):
    key = f"sk-rr-planted-{secrets.token_hex(16)}"
    proxy = RecordingProxy(teacher_url)
    config_path = write_config(tmp_path / "config.yaml", tmp_path / "home", tmp_path / "mlruns",
                               teacher={"base_url": proxy.start(), "judge_depth": 3, "train_queries": 3,
                                        "eval_queries": 1, "api_key_env": "RR_PLANTED_KEY"})
    config = load_config(config_path)
    env = {**os.environ, "RR_PLANTED_KEY": key, "DAGSTER_HOME": str(tmp_path / "dagster"), "RR_HOME": config.home}
    (tmp_path / "dagster").mkdir()
    try:
        run = subprocess.run([sys.executable, "-m", "rr_assets.cli", "run", "-c", str(config_path), "--select", SELECTION],
                             env=env, capture_output=True, text=True, timeout=900)
    finally:
        proxy.stop()
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert {e.authorization for e in proxy.exchanges} == {f"Bearer {key}"}  # the key did reach the teacher

    assert key not in run.stdout and key not in run.stderr
    files = [p for p in tmp_path.rglob("*") if p.is_file() and p.name != "config.yaml"]
    assert len(files) > 10
    assert not [str(p) for p in files if key.encode() in p.read_bytes()]

    con = duckdb.connect(f"{config.home}/warehouse.duckdb", read_only=True)
    columns = con.execute("SELECT table_name, column_name FROM information_schema.columns "
                          "WHERE data_type = 'VARCHAR'").fetchall()
    for table, column in columns:
        hits = con.execute(f'SELECT count(*) FROM "{table}" WHERE "{column}" LIKE ?', [f"%{key}%"]).fetchone()[0]
        assert hits == 0, f"{table}.{column}"

    client = MlflowClient(config.mlflow_tracking_uri)
    runs = client.search_runs([client.get_experiment_by_name("rr").experiment_id])
    assert runs
    for run_info in runs:
        values = [*run_info.data.params.values(), *run_info.data.tags.values()]
        assert not any(key in value for value in values)
