"""The checkpoint README written from card.json replaces peft's template and names the lineage."""

import json

import pytest

from rr_assets.core.checkpoints import card_markdown, write_card

pytestmark = pytest.mark.unit

CARD = {
    "name": "demo-grounded-rl", "stage": "rl", "collection": "demo", "base_model": "embedded",
    "prompt_variant": "grounded", "prompt_hash": "0123456789abcdef", "teacher_model": "gemma-3-270m",
    "adapter": "LoRA r=16 on ['q_proj']", "train_examples": 120, "listwise_target": "direct labels (8 groups)",
    "data_versions": {"train_pointwise": "120-aaaa", "teacher_judgments": "40-bbbb"},
    "result": {"optimizer_steps": 12, "epochs": 1.5, "stop_reason": "epochs", "precision": "cpu/float32",
               "best_dev_ndcg": 0.61, "first_stage_dev_ndcg": 0.58, "fusion_weight": 0.3},
    "dev_nDCG@10": 0.64, "rl_curve": [{"step": 1}, {"step": 2}], "rl_stop_reason": "finished",
    "from_checkpoint": "/h/checkpoints/demo-grounded", "dagster_run_id": "run-1", "mlflow_run_id": "mlf-2",
}


def test_the_card_names_prompt_teacher_data_and_runs():
    text = card_markdown(CARD)
    for fact in ("RL-refined", "the embedded Gemma 3 270M", "`grounded` (hash `0123456789abcdef`)", "`gemma-3-270m`",
                 "`train_pointwise`: `120-aaaa`", "`teacher_judgments`: `40-bbbb`", "`run-1`", "`mlf-2`",
                 "2 steps from `/h/checkpoints/demo-grounded`"):
        assert fact in text
    assert "| dev nDCG@10 | 0.6400 (first stage on the same queries: 0.5800) |" in text


def test_a_distilled_card_reads_its_dev_figure_from_the_result():
    distilled = {k: v for k, v in CARD.items() if k not in ("dev_nDCG@10", "rl_curve", "rl_stop_reason")}
    text = card_markdown({**distilled, "stage": "sft"})
    assert "distilled" in text and "| dev nDCG@10 | 0.6100" in text and "| RL |" not in text


def test_write_card_replaces_the_peft_template(tmp_path):
    (tmp_path / "README.md").write_text("# Model Card for Model ID\n[More Information Needed]\n")
    write_card(tmp_path, CARD)
    assert json.loads((tmp_path / "card.json").read_text()) == CARD
    assert "More Information Needed" not in (tmp_path / "README.md").read_text()
