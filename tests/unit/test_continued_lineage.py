"""A student trained on from a checkpoint records where it started, and that checkpoint's own
start, and `rr lineage` prints the whole chain."""

import json

import pytest

from rr_assets.core.checkpoints import CARD_FILE, continued_from, weights_hash
from rr_assets.lineage import Step, format_lineage

pytestmark = pytest.mark.unit


def test_a_continued_checkpoint_chains_its_starts_into_the_card_and_the_lineage(tmp_path):
    first = {"path": "/ckpt/first", "weights_sha256": "aa", "mlflow_run_id": "run-1", "optimizer_steps": 200,
             "training_data": {"collection": "c", "dev_collection": "d", "continued_from": None}}
    start = tmp_path / "second"
    start.mkdir()
    (start / "adapter_model.safetensors").write_bytes(b"weights")
    (start / CARD_FILE).write_text(json.dumps({"mlflow_run_id": "run-2", "result": {"optimizer_steps": 250},
                                               "training_data": {"collection": "c", "dev_collection": "d",
                                                                 "continued_from": first}}))
    record = continued_from(str(start))
    assert record["weights_sha256"] == weights_hash(start) and record["optimizer_steps"] == 250
    assert record["training_data"]["continued_from"] == first and continued_from("") is None

    card = {"base_model": "b", "prompt_variant": "v", "prompt_hash": "h", "teacher_model": "t", "mlflow_run_id": "run-3",
            "training_data": {"collection": "c", "dev_collection": "d", "imported_answer_files": [],
                              "continued_from": record}}
    step = Step("student_checkpoint", "c|v", "dagster-run", 1, None, None, {})
    text = format_lineage({"checkpoint": "/ckpt/third", "card": card, "lineage": step.to_json()})
    assert [line.strip() for line in text.splitlines() if "continued from" in line] == [
        f"continued from {start} (weights {weights_hash(start)}, 250 steps, MLflow run run-2)",
        "continued from /ckpt/first (weights aa, 200 steps, MLflow run run-1)"]
