"""The whole asset graph on the demo collection, on a real Dagster instance in a temporary
DAGSTER_HOME: real Lucene, llama.cpp teacher, DuckDB, LoRA training, MLflow."""

import json
import os
import subprocess
import sys
from pathlib import Path

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
    count = lambda table, where="TRUE": con.execute(
        f"SELECT count(*) FROM {table} WHERE collection = 'demo' AND {where}").fetchone()[0]
    assert count("corpus") == 400 and count("queries") == 55 and count("qrels") > 55
    assert count("first_stage_candidates") > 55 * 50
    judged = dict(con.execute("SELECT split, count(DISTINCT query_id) FROM teacher_judgments GROUP BY split").fetchall())
    assert judged == {"train": 6, "eval": 4}
    # grounded: the teacher explains the labels the training qrels give, and judges evaluation pairs itself
    for split, source in (("train", "qrels"), ("eval", "teacher")):
        assert count("teacher_judgments", f"split = '{split}' AND label_source = '{source}'") == count(
            "teacher_judgments", f"split = '{split}'")
    assert count("teacher_comparisons") > 0 and count("teacher_rankings") > 0
    assert count("train_pairwise") > 0 and count("train_listwise") > 0
    assert 0 < count("injection_probe") <= 12 and count("quarantine") == 0
    splits = dict(con.execute("SELECT split, count(*) FROM splits GROUP BY split").fetchall())
    assert set(splits) == {"train", "dev", "eval"} and sum(splits.values()) == 55
    overlap = con.execute(
        "SELECT count(*) FROM train_pointwise t JOIN splits s USING (collection, query_id) WHERE s.split <> 'train'"
    ).fetchone()[0]
    assert overlap == 0
    # every training query (not only those the teacher saw) trains the ranking losses, with hard negatives
    assert con.execute("SELECT count(DISTINCT query_id) FROM train_pointwise").fetchone()[0] == splits["train"]
    assert count("train_pointwise", "explanation IS NULL AND label = 0") > count("train_pointwise", "explanation IS NOT NULL")
    eval_scored = con.execute("SELECT count(DISTINCT query_id) FROM student_scores WHERE stage = 'sft' AND mode = 'score'"
                              ).fetchone()[0]
    assert eval_scored == splits["eval"]
    modes = set(con.execute("SELECT DISTINCT stage || '/' || mode FROM student_scores").fetchall())
    assert modes == {("sft/score",), ("sft/explain",), ("rl/score",), ("rl/explain",)}


def test_files_index_runs_checkpoint_and_report(pipeline):
    config, _, _ = pipeline
    home = config.home
    assert os.listdir(f"{home}/indexes/demo")
    assert Path(f"{home}/runs/demo/first_stage.trec").read_text().splitlines()[0].split()[1] == "Q0"
    card = json.loads(Path(f"{home}/checkpoints/demo-grounded/card.json").read_text())
    assert card["prompt_variant"] == "grounded" and len(card["prompt_hash"]) == 16
    assert card["teacher_model"] == "gemma-3-270m" and card["base_model"] == "embedded"
    assert set(card["data_versions"]) == {"train_pointwise", "train_pairwise", "train_listwise", "teacher_judgments",
                                          "corpus"}
    assert card["train_curve"] and card["result"]["dev_curve"][0]["step"] == 0 and card["mlflow_run_id"]
    assert card["listwise_target"].startswith(("teacher window order", "direct labels"))
    assert card["adapter"].startswith("LoRA r=16")
    assert card["result"]["fusion_weight"] is not None
    readme = Path(f"{home}/checkpoints/demo-grounded/README.md").read_text()
    assert card["prompt_hash"] in readme and card["mlflow_run_id"] in readme and "More Information Needed" not in readme
    for stage in ("demo-grounded", "demo-grounded-rl"):
        folder = f"{home}/checkpoints/{stage}"
        assert os.path.exists(f"{folder}/adapter_model.safetensors") and os.path.exists(f"{folder}/rr_student.json")
    metrics = json.loads(Path(f"{home}/reports/demo/metrics.json").read_text())
    assert metrics["collection"] == "demo" and metrics["queries"] == metrics["details"]["bm25"]["queries"] > 0
    assert {"bm25", "teacher", "teacher_listwise", "student", "student+first_stage", "student_rl", "student_explain",
            "student_score_subset"} <= set(metrics["systems"])
    for name, values in metrics["systems"].items():
        assert set(values) == {"nDCG@10", "nDCG@5", "RR@10", "R@100"} and all(0.0 <= v <= 1.0 for v in values.values())
        if name != "bm25":
            detail = metrics["details"][name]
            assert 0.0 <= detail["p_value_t"] <= 1.0 and detail["wins"] + detail["ties"] + detail["losses"] == detail["queries"]
    assert metrics["details"]["teacher"]["queries"] <= 4 and metrics["details"]["student_explain"]["queries"] == 2
    assert metrics["details"]["student"]["pairs_per_s"] > 0
    judged = next(c for c in metrics["costs"] if c["stage"] == "teacher_judgments[grounded]")
    assert judged["answers_used"] > 0 and judged["prompt_tokens"] > 0 and judged["seconds"] > 0
    assert Path(f"{home}/reports/demo/metrics.png").read_bytes()[:4] == b"\x89PNG"
    report = Path(f"{home}/reports/demo/report.md").read_text()
    assert "| student |" in report and "## Prompt injection" in report and "## Cost per stage" in report
    assert "p (t)" in report and "hard negatives" in report
    result = card["result"]  # the notes say when the kept checkpoint is untrained or below BM25 on dev
    assert ("checkpoint selection kept the untrained model" in report) == (result["best_step"] == 0)
    assert ("the student alone ranks the dev slice below the first stage" in report) == (
        result["best_step"] > 0 and result["best_dev_ndcg"] < result["first_stage_dev_ndcg"])


def test_asset_checks_and_metadata(pipeline):
    config, instance, _ = pipeline
    keys = [dg.AssetCheckKey(dg.AssetKey(a), f"{a}_gx_suite") for a in TEACHER_ASSETS]
    records = instance.event_log_storage.get_latest_asset_check_execution_by_key(keys)
    assert {k.asset_key.path[0] for k in records} == set(TEACHER_ASSETS)
    assert all(r.status.value == "SUCCEEDED" for r in records.values())
    teacher = latest_metadata(instance, "teacher_judgments")
    assert teacher["rows"] > 0 and teacher["prompt_variant"] == "grounded"
    assert teacher["new_teacher_calls"] + teacher["cache_hits"] >= teacher["rows"] and teacher["prompt_tokens"] > 0
    candidate = dg.AssetCheckKey(dg.AssetKey("champion_candidate"), "beats_champion")
    check = instance.event_log_storage.get_latest_asset_check_execution_by_key([candidate])[candidate]
    assert check.status.value == "SUCCEEDED"  # the first candidate always beats an empty registry
    # the student's dev-slice checks warn when training kept the untrained model or ranks below BM25
    result = json.loads(Path(f"{config.home}/checkpoints/demo-grounded/card.json").read_text())["result"]
    student = {name: dg.AssetCheckKey(dg.AssetKey("student_checkpoint"), name)
               for name in ("learned_on_dev", "beats_first_stage_on_dev")}
    records = instance.event_log_storage.get_latest_asset_check_execution_by_key(list(student.values()))
    passed = {name: records[key].status.value == "SUCCEEDED" for name, key in student.items()}
    assert passed == {"learned_on_dev": result["best_step"] > 0,
                      "beats_first_stage_on_dev": result["best_dev_ndcg"] >= result["first_stage_dev_ndcg"]}
    facts = records[student["learned_on_dev"]].event.dagster_event.event_specific_data.metadata
    assert facts["best_step"].value == result["best_step"] and facts["dev_queries"].value > 0


def test_mlflow_runs_lead_back_to_dagster(pipeline):
    config, instance, _ = pipeline
    client = MlflowClient(config.mlflow_tracking_uri)
    runs = client.search_runs([client.get_experiment_by_name("rr").experiment_id])
    by_asset = {r.data.tags["dagster.asset_key"]: r for r in runs}
    assert {*TEACHER_ASSETS, "student_checkpoint", "student_rl_checkpoint", "benchmark_report"} <= set(by_asset)
    student = by_asset["student_checkpoint"]
    assert instance.get_run_by_id(student.data.tags["dagster.run_id"]) is not None
    assert by_asset["teacher_judgments"].data.params["prompt_variant"] == "grounded"
    assert "student.nDCG_at_10" in by_asset["benchmark_report"].data.metrics
    assert "dev.dev_nDCG_at_10" in student.data.metrics and "train.loss" in student.data.metrics
    assert student.data.params["listwise_target"].startswith(("teacher window order", "direct labels"))
    versions = client.search_model_versions("name = 'rr-demo'")
    assert {v.tags["stage"] for v in versions} == {"sft", "rl"}
    # the alias names the candidate exactly when it ranked the dev slice above BM25 (promotion_max_p 1.0)
    gate = dg.AssetCheckKey(dg.AssetKey("champion_candidate"), "beats_first_stage")
    promoted = instance.event_log_storage.get_latest_asset_check_execution_by_key([gate])[gate].status.value == "SUCCEEDED"
    candidate = latest_metadata(instance, "champion_candidate")
    assert promoted == (candidate["candidate_dev_nDCG@10"] > candidate["first_stage_dev_nDCG@10"])
    assert set(client.get_registered_model("rr-demo").aliases) == ({"champion"} if promoted else set())
    if promoted:
        champion = client.get_model_version_by_alias("rr-demo", "champion")
        assert champion.tags["prompt_variant"] == "grounded" and champion.tags["prompt_hash"]


def test_forced_rerun_of_an_unchanged_prompt_costs_no_teacher_calls(pipeline):
    config, instance, _ = pipeline
    paid_assets = (*TEACHER_ASSETS, "teacher_injection_probe")
    assert materialize(config, selection=" or ".join(f"key:{a}" for a in paid_assets), force=True)
    for asset in paid_assets:
        metadata = latest_metadata(instance, asset)
        assert metadata["new_teacher_calls"] == 0 and metadata["cache_hits"] == metadata["requests"] > 0


def test_rerank_cli_uses_the_checkpoint(pipeline, tmp_path):
    config, _, _ = pipeline
    docs = tmp_path / "docs.jsonl"
    docs.write_text('{"_id": "a", "text": "Yeast ferments faster when warm."}\n'
                    '{"_id": "b", "title": "Tabs", "text": "Browsers can pin tabs."}\n')
    for model, mode in ((f"{config.home}/checkpoints/demo-grounded", "score"), ("models:/rr-demo/1", "explain")):
        out = subprocess.run(
            [sys.executable, "-m", "rr_assets.cli", "rerank", "--model", model, "-c", config.source_file,
             "--query", "Why does dough rise slowly in winter?", "--docs", str(docs), "--mode", mode],
            capture_output=True, text=True, check=True, timeout=300,
        )
        results = json.loads(out.stdout)["results"]
        assert sorted(r["doc_id"] for r in results) == ["a", "b"] and [r["rank"] for r in results] == [1, 2]
        assert all(("explanation" in r) == (mode == "explain") for r in results)


def test_dagster_definitions_validate():
    out = subprocess.run(
        [sys.executable, "-m", "dagster", "definitions", "validate", "-w", "workspace.yaml"],
        cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=300,
    )
    assert out.returncode == 0, out.stdout + out.stderr


def test_lineage_audit_walks_from_checkpoint_to_corpus(pipeline):
    config, _, _ = pipeline
    out = subprocess.run(
        [sys.executable, "-m", "rr_assets.cli", "lineage", f"{config.home}/checkpoints/demo-grounded", "--json"],
        capture_output=True, text=True, check=True, timeout=300,
    )
    lineage = json.loads(out.stdout)
    steps = {}

    def collect(step):
        steps.setdefault(step["asset"], step)
        for upstream in step["inputs"]:
            collect(upstream)

    collect(lineage["lineage"])
    assert {"student_checkpoint", "train_pointwise", "teacher_judgments", "prompt_templates", "first_stage_candidates",
            "bm25_index", "corpus", "collection_files"} <= set(steps)
    teacher = steps["teacher_judgments"]
    assert teacher["prompt_variant"] == "grounded" and teacher["prompt_hash"] == lineage["card"]["prompt_hash"]
    assert teacher["teacher_model"] == "gemma-3-270m" and teacher["mlflow_run_id"]
    assert steps["prompt_templates"]["data_version"] == lineage["card"]["prompt_hash"]
    assert steps["first_stage_candidates"]["k1"] == 0.9 and steps["first_stage_candidates"]["b"] == 0.4
    assert steps["bm25_index"]["corpus_hash"] == steps["corpus"]["data_version"]
    assert steps["train_pointwise"]["table_hash"] == lineage["card"]["data_versions"]["train_pointwise"]
    assert all(s["dagster_run_id"] for s in steps.values())
    text = subprocess.run(
        [sys.executable, "-m", "rr_assets.cli", "lineage", "models:/rr-demo/1", "-c", config.source_file],
        capture_output=True, text=True, check=True, timeout=300,
    ).stdout
    assert "teacher_judgments[" in text and "prompt_hash=" in text and "(as above)" in text
