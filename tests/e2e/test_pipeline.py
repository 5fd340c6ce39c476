"""The whole asset graph on the demo collection, on a real Dagster instance in a temporary
DAGSTER_HOME: real Lucene, llama.cpp teacher, DuckDB, LoRA training, MLflow."""

import json
import os
import subprocess
import sys

import dagster as dg
import duckdb
import pytest
from mlflow.tracking import MlflowClient

from rr_assets.cli import materialize
from tests.conftest import PROJECT_ROOT

pytestmark = pytest.mark.e2e


def latest_metadata(instance, key: str) -> dict:
    event = instance.get_latest_materialization_event(dg.AssetKey(key))
    return {k: v.value for k, v in event.asset_materialization.metadata.items()}


TEACHER_ASSETS = ("teacher_judgments", "teacher_comparisons", "teacher_rankings")


def test_warehouse_tables(pipeline):
    config, _, _ = pipeline
    con = duckdb.connect(f"{config.home}/warehouse.duckdb", read_only=True)
    count = lambda table: con.execute(f"SELECT count(*) FROM {table} WHERE collection = 'demo'").fetchone()[0]
    assert count("corpus") == 400 and count("queries") == 55 and count("qrels") > 55
    assert count("candidates") > 55 * 50
    assert count("teacher_judgments") == 10 * 5
    assert count("teacher_comparisons") >= 10 * 4 and count("teacher_rankings") == 10 * 2
    assert count("train_pairwise") > 0 and count("train_listwise") > 0
    assert 0 < count("injection_probe") <= 12 and count("quarantine") == 0
    splits = dict(con.execute("SELECT split, count(*) FROM splits GROUP BY split").fetchall())
    assert set(splits) == {"train", "eval"} and splits["train"] + splits["eval"] == 55
    overlap = con.execute(
        "SELECT count(*) FROM train_pointwise t JOIN splits s USING (collection, query_id) WHERE s.split = 'eval'"
    ).fetchone()[0]
    assert count("train_pointwise") > 0 and overlap == 0
    assert count("student_scores") > 0
    assert con.execute("SELECT count(*) FROM teacher_requests").fetchone()[0] >= 50


def test_files_index_runs_checkpoint_and_report(pipeline):
    config, _, _ = pipeline
    home = config.home
    assert os.listdir(f"{home}/indexes/demo")
    for run in ("bm25", "student-default"):
        assert open(f"{home}/runs/demo/{run}.trec").readline().split()[1] == "Q0"
    card = json.load(open(f"{home}/checkpoints/demo-default/card.json"))
    assert card["prompt_variant"] == "default" and len(card["prompt_hash"]) == 16
    assert card["teacher_model"] == "gemma-3-270m" and card["base_model"] == "embedded"
    assert set(card["data_versions"]) == {"train_pointwise", "train_pairwise", "train_listwise", "teacher_judgments",
                                          "corpus"}
    assert len(card["losses"]) == 2 and card["mlflow_run_id"] and card["dagster_run_id"]
    assert os.path.exists(f"{home}/checkpoints/demo-default/adapter_model.safetensors")
    metrics = json.load(open(f"{home}/reports/demo/metrics.json"))
    assert metrics["collection"] == "demo" and isinstance(metrics["queries"], int) and metrics["queries"] > 0
    assert set(metrics["systems"]) == {"bm25", "teacher", "teacher_listwise", "student"}
    for values in metrics["systems"].values():
        assert {"nDCG@10", "nDCG@5", "RR@10", "R@100"} <= set(values)
        assert all(0.0 <= v <= 1.0 for v in values.values())
    assert open(f"{home}/reports/demo/metrics.png", "rb").read(4) == b"\x89PNG"
    report = open(f"{home}/reports/demo/report.md").read()
    assert "| student |" in report and "## Prompt injection" in report and "mean label shift" in report


def test_asset_checks_and_metadata(pipeline):
    _, instance, _ = pipeline
    keys = [dg.AssetCheckKey(dg.AssetKey(a), f"{a}_gx_suite") for a in TEACHER_ASSETS]
    records = instance.event_log_storage.get_latest_asset_check_execution_by_key(keys)
    assert {k.asset_key.path[0] for k in records} == set(TEACHER_ASSETS)
    assert all(r.status.value == "SUCCEEDED" for r in records.values())
    teacher = latest_metadata(instance, "teacher_judgments")
    assert teacher["rows"] == 50 and teacher["prompt_variant"] == "default"
    assert teacher["new_teacher_calls"] + teacher["cache_hits"] >= 50 and teacher["prompt_tokens"] > 0


def test_mlflow_runs_lead_back_to_dagster(pipeline):
    config, instance, _ = pipeline
    client = MlflowClient(config.mlflow_tracking_uri)
    runs = client.search_runs([client.get_experiment_by_name("rr").experiment_id])
    by_asset = {r.data.tags["dagster.asset_key"]: r for r in runs}
    assert {*TEACHER_ASSETS, "student_checkpoint", "benchmark_report"} <= set(by_asset)
    dagster_run = by_asset["student_checkpoint"].data.tags["dagster.run_id"]
    assert instance.get_run_by_id(dagster_run) is not None
    assert by_asset["teacher_judgments"].data.params["prompt_variant"] == "default"
    assert "student.nDCG_at_10" in by_asset["benchmark_report"].data.metrics


def test_unchanged_prompt_costs_no_teacher_calls(pipeline):
    config, instance, _ = pipeline
    paid_assets = (*TEACHER_ASSETS, "teacher_injection_probe")
    assert materialize(config, selection=" or ".join(f"key:{a}" for a in paid_assets))
    for asset in paid_assets:
        metadata = latest_metadata(instance, asset)
        assert metadata["new_teacher_calls"] == 0 and metadata["cache_hits"] == metadata["requests"] > 0


def test_rerank_cli_uses_the_checkpoint(pipeline, tmp_path):
    config, _, _ = pipeline
    docs = tmp_path / "docs.jsonl"
    docs.write_text('{"_id": "a", "text": "Yeast ferments faster when warm."}\n'
                    '{"_id": "b", "title": "Tabs", "text": "Browsers can pin tabs."}\n')
    out = subprocess.run(
        [sys.executable, "-m", "rr_assets.cli", "rerank", "--checkpoint", f"{config.home}/checkpoints/demo-default",
         "--query", "Why does dough rise slowly in winter?", "--docs", str(docs)],
        capture_output=True, text=True, check=True, timeout=300,
    )
    results = json.loads(out.stdout)["results"]
    assert sorted(r["doc_id"] for r in results) == ["a", "b"] and [r["rank"] for r in results] == [1, 2]


def test_dagster_definitions_validate():
    out = subprocess.run(
        [sys.executable, "-m", "dagster", "definitions", "validate", "-w", "workspace.yaml"],
        cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=300,
    )
    assert out.returncode == 0, out.stdout + out.stderr


def test_lineage_audit_walks_from_checkpoint_to_corpus(pipeline):
    config, _, _ = pipeline
    out = subprocess.run(
        [sys.executable, "-m", "rr_assets.cli", "lineage", f"{config.home}/checkpoints/demo-default", "--json"],
        capture_output=True, text=True, check=True, timeout=300,
    )
    lineage = json.loads(out.stdout)
    steps = {}

    def collect(step):
        steps.setdefault(step["asset"], step)
        for upstream in step["inputs"]:
            collect(upstream)

    collect(lineage["lineage"])
    assert {"student_checkpoint", "train_pointwise", "teacher_judgments", "prompt_templates", "bm25_candidates",
            "bm25_index", "corpus"} <= set(steps)
    teacher = steps["teacher_judgments"]
    assert teacher["prompt_variant"] == "default" and teacher["prompt_hash"] == lineage["card"]["prompt_hash"]
    assert teacher["teacher_model"] == "gemma-3-270m" and teacher["mlflow_run_id"]
    assert steps["bm25_candidates"]["k1"] == 0.9 and steps["bm25_candidates"]["b"] == 0.4
    assert steps["bm25_index"]["corpus_hash"] == steps["corpus"]["data_version"]
    assert steps["train_pointwise"]["table_hash"] == lineage["card"]["data_versions"]["train_pointwise"]
    assert all(s["dagster_run_id"] for s in steps.values())
    text = subprocess.run(
        [sys.executable, "-m", "rr_assets.cli", "lineage", f"{config.home}/checkpoints/demo-default"],
        capture_output=True, text=True, check=True, timeout=300,
    ).stdout
    assert "teacher_judgments[" in text and "prompt_hash=" in text and "(as above)" in text
