"""The student on the real Gemma 3 270M weights: training teaches, both inference modes, RL refinement
and the MLflow model registry."""

import json
import math
from dataclasses import replace

import pytest
import torch
from safetensors.torch import load_file

from rr_assets.core.collections import CollectionSource, load_collection
from rr_assets.core.registry import StudentRegistry
from rr_assets.core.reranker import StudentReranker
from rr_assets.core.rl import GRPORefiner
from rr_assets.core.settings import RLSettings, StudentSettings
from rr_assets.core.student_model import (
    StudentExample,
    choose_precision,
    label_token_ids,
    load_base_model,
    load_student,
    load_tokenizer,
    merged_adapter,
    score_pairs,
)
from rr_assets.core.tracking import mlflow_run
from rr_assets.core.training import StudentTrainer
from tests.conftest import DEMO_DIR

pytestmark = pytest.mark.integration
LABELS = (0, 1, 2)
SETTINGS = StudentSettings(epochs=8, group_size=4, batch_groups=2, gradient_accumulation=1, learning_rate=3e-4,
                           warmup_ratio=0.0, student_doc_words=40, generation_weight=0.2, score_batch_size=8)


def tiny_set(count: int = 4) -> list[StudentExample]:
    """`count` demo queries, each with its best document (label 2) and three documents of another
    domain (label 0); every judged document also carries an explanation."""
    collection = load_collection(CollectionSource("demo", str(DEMO_DIR)))
    queries = {q.query_id: q.text for q in collection.queries}
    docs = {d.doc_id: d.text for d in collection.documents}
    best = {}
    for r in sorted(collection.qrels, key=lambda r: -r.relevance):
        best.setdefault(r.query_id, r.doc_id)
    chosen = sorted(best)[:count]
    examples = []
    for i, q in enumerate(chosen):
        domain = best[q].split("-")[0]
        others = [d for d in sorted(docs) if not d.startswith(domain)][i * 3 : i * 3 + 3]
        examples.append(StudentExample(q, best[q], queries[q], docs[best[q]], 2, "It explains the cause the query asks about."))
        examples += [StudentExample(q, d, queries[q], docs[d], 0, "It is about another subject.") for d in others]
    return examples


def separated(scores: dict[tuple[str, str], float], examples: list[StudentExample]) -> int:
    """Queries whose positive outscores every one of their negatives."""
    count = 0
    for q in {e.query_id for e in examples}:
        group = [e for e in examples if e.query_id == q]
        positive = min(scores[q, e.doc_id] for e in group if e.label == 2)
        if all(scores[q, e.doc_id] < positive for e in group if e.label == 0):
            count += 1
    return count


@pytest.fixture(scope="module")
def trained(hf_base_model, tmp_path_factory):
    examples = tiny_set()
    precision = choose_precision("auto")
    out = tmp_path_factory.mktemp("student") / "ckpt"
    result = StudentTrainer(hf_base_model, SETTINGS, LABELS, precision).train(examples, out)
    return examples, out, result, precision


def test_training_teaches_what_the_untrained_model_does_not_know(hf_base_model, trained):
    examples, out, result, precision = trained
    pairs = [(e.query, e.document) for e in examples]
    tokenizer = load_tokenizer(hf_base_model)
    base = load_base_model(hf_base_model, precision).eval()
    before = score_pairs(base, tokenizer, label_token_ids(tokenizer, LABELS), LABELS, SETTINGS.student_doc_words, pairs,
                         8, precision)
    after = StudentReranker.load(out, precision).score(pairs, batch_size=8)
    keyed = lambda values: {(e.query_id, e.doc_id): v for e, v in zip(examples, values)}
    margin = lambda values: (sum(v for e, v in zip(examples, values) if e.label == 2) / 4
                             - sum(v for e, v in zip(examples, values) if e.label == 0) / 12)
    assert separated(keyed(after), examples) == 4
    assert margin(after) > 0.8
    assert separated(keyed(before), examples) < 4 or margin(before) < 0.3  # the base model alone does not
    assert all(math.isfinite(r["loss"]) for r in result.curve) and result.optimizer_steps == 16
    assert result.curve[-1]["pointwise"] < result.curve[0]["pointwise"]


def test_max_steps_overrides_epochs_and_anneals_the_rate_to_zero_there(hf_base_model, tmp_path):
    """One epoch is 4 groups, one per forward pass, 3 passes per step: a step of 3 passes and one of
    1. max_steps=3 trains into the second epoch, whose first step again takes 3 passes, and stops."""
    stepped = replace(SETTINGS, epochs=1, max_steps=3, batch_groups=1, gradient_accumulation=3)
    result = StudentTrainer(hf_base_model, stepped, LABELS, choose_precision("auto")).train(tiny_set(), tmp_path / "ckpt")
    assert result.optimizer_steps == 3 and result.stop_reason == "finished"
    assert [r["epoch"] for r in result.curve] == [0.75, 1.0, 1.75] and result.curve[-1]["lr"] == 0.0


def test_an_epochs_short_last_step_averages_over_the_passes_it_has(hf_base_model, tmp_path):
    """Four copies of one query group, learning rate 0: every pass has the same loss. With 3
    passes per step, the epoch's last step has 1 pass, and its loss (and gradient) must be that
    pass's, not a third of it."""
    examples = tiny_set()
    first = [e for e in examples if e.query_id == examples[0].query_id]
    copies = [replace(e, query_id=f"copy-{i}") for i in range(4) for e in first]
    frozen = replace(SETTINGS, epochs=1, batch_groups=1, gradient_accumulation=3, learning_rate=0.0,
                     generation_weight=0.0)
    result = StudentTrainer(hf_base_model, frozen, LABELS, choose_precision("auto")).train(copies, tmp_path / "ckpt")
    assert [r["epoch"] for r in result.curve] == [0.75, 1.0]
    assert result.curve[1]["loss"] == pytest.approx(result.curve[0]["loss"], rel=1e-2)


def test_the_time_budget_stops_training_cleanly_with_the_rate_annealed(hf_base_model, tmp_path):
    """Far more steps planned than fit in the budget: training stops at the budget with a low
    learning rate (decayed by time, not by steps) and still saves a loadable checkpoint."""
    budgeted = replace(SETTINGS, epochs=1000, time_budget_minutes=0.4)
    result = StudentTrainer(hf_base_model, budgeted, LABELS, choose_precision("auto")).train(tiny_set(), tmp_path / "ckpt")
    assert result.stop_reason == "time budget" and 1 <= result.optimizer_steps < 2000
    assert result.curve[-1]["lr"] < 0.5 * budgeted.learning_rate  # by steps it would still be ~0.99 of the peak
    assert len(StudentReranker.load(tmp_path / "ckpt").score([("a query", "a document")], batch_size=1)) == 1


def test_training_goes_on_from_a_checkpoint_in_its_top_blocks_only(hf_base_model, trained, tmp_path):
    """init_from starts from the trained adapter, not a fresh one; with trained_layers=1 only the top
    block's adapter moves, and the blocks below keep the checkpoint's values exactly."""
    _, out, _, precision = trained
    going_on = replace(SETTINGS, epochs=1, max_steps=2, init_from=str(out), trained_layers=1, learning_rate=1e-3)
    result = StudentTrainer(hf_base_model, going_on, LABELS, precision).train(tiny_set(), tmp_path / "more")
    before, after = load_file(out / "adapter_model.safetensors"), load_file(tmp_path / "more" / "adapter_model.safetensors")
    top = max(int(k.split(".layers.")[1].split(".")[0]) for k in before)
    moved = {k for k in before if not torch.equal(before[k], after[k])}
    assert before.keys() == after.keys() and moved
    assert all(f".layers.{top}." in k and "lora_" in k for k in moved)
    assert result.trainable_parameters == sum(v.numel() for k, v in before.items() if f".layers.{top}." in k)


def test_a_fresh_adapter_covers_only_the_trained_blocks(hf_base_model, tmp_path):
    settings = replace(SETTINGS, epochs=1, max_steps=1, trained_layers=2)
    StudentTrainer(hf_base_model, settings, LABELS, choose_precision("auto")).train(tiny_set(), tmp_path / "ckpt")
    blocks = {int(k.split(".layers.")[1].split(".")[0]) for k in load_file(tmp_path / "ckpt" / "adapter_model.safetensors")}
    assert blocks == {16, 17}  # Gemma 3 270M has 18 blocks
    assert len(StudentReranker.load(tmp_path / "ckpt").score([("a query", "a document")], batch_size=1)) == 1


def test_padding_and_batching_do_not_change_a_score(trained):
    examples, out, _, precision = trained
    reranker = StudentReranker.load(out, precision)
    pairs = [(e.query, e.document) for e in examples[:5]]
    batched = reranker.score(pairs, batch_size=5)
    alone = [reranker.score([p], batch_size=1)[0] for p in pairs]
    assert batched == pytest.approx(alone, abs=1e-4)


def test_merging_the_adapter_keeps_the_scores_and_unmerging_restores_the_weights(trained):
    examples, out, _, precision = trained
    pairs = [(e.query, e.document) for e in examples[:6]]
    model, tokenizer, info = load_student(out, precision)
    ids = label_token_ids(tokenizer, info.labels)
    score = lambda m: score_pairs(m, tokenizer, ids, info.labels, info.doc_words, pairs, 8, precision)
    tolerance = 2e-2 if precision.bf16 else 1e-4
    adapter = score(model)
    weights = {k: v.clone() for k, v in model.state_dict().items()}
    with merged_adapter(model):
        assert score(model) == pytest.approx(adapter, abs=tolerance)
    assert all(torch.allclose(weights[k], v, atol=1e-6) for k, v in model.state_dict().items())
    reranker = StudentReranker.load(out, precision)
    assert not hasattr(reranker.model, "peft_config")  # the scorer runs the merged weights
    assert reranker.score(pairs) == pytest.approx(adapter, abs=tolerance)


def test_batched_explain_mode_equals_unbatched(trained):
    examples, out, _, precision = trained
    reranker = StudentReranker.load(out, precision)
    pairs = [(e.query, e.document) for e in examples[:4]]
    batched = reranker.explain(pairs, max_new_tokens=12, batch_size=4)
    alone = [reranker.explain([p], max_new_tokens=12, batch_size=1)[0] for p in pairs]
    assert [e for e, _ in batched] == [e for e, _ in alone]
    assert all(e for e, _ in batched)
    assert [s for _, s in batched] == pytest.approx([s for _, s in alone], abs=1e-3)
    assert all(0.0 <= s <= 2.0 for _, s in batched)


def test_one_rl_step_changes_the_policy_and_keeps_the_kl_finite(trained, tmp_path):
    examples, out, _, precision = trained
    settings = RLSettings(pairs=2, samples_per_pair=3, pairs_per_step=2, steps=1, learning_rate=1e-3, max_new_tokens=8)
    result = GRPORefiner(settings, precision).refine(out, examples, tmp_path / "rl")
    before, after = load_file(out / "adapter_model.safetensors"), load_file(tmp_path / "rl" / "adapter_model.safetensors")
    assert set(before) == set(after)
    assert any(not torch.equal(before[k], after[k]) for k in before)
    step = result.curve[0]
    assert math.isfinite(step["kl"]) and step["kl"] >= 0 and math.isfinite(step["loss"]) and 0 <= step["reward"] <= 1
    assert json.loads((tmp_path / "rl" / "rr_student.json").read_text())["labels"] == list(LABELS)


def test_register_and_load_by_alias(trained, tmp_path):
    examples, out, _, precision = trained
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    registry = StudentRegistry(uri)
    with mlflow_run(uri, "rr", "student_checkpoint/test", {}) as run:
        version = registry.register("rr-demo", out, run.run_id, {"prompt_variant": "grounded", "dev_ndcg_at_10": 0.5})
    assert registry.champion("rr-demo") is None
    registry.promote(version)
    folder, found = registry.download("models:/rr-demo@champion", tmp_path / "cache")
    assert found.version == version.version and found.tags["prompt_variant"] == "grounded" and found.dev_ndcg == 0.5
    pairs = [(e.query, e.document) for e in examples[:3]]
    registered, trained = (StudentReranker.load(path, precision).score(pairs) for path in (folder, out))
    assert registered == pytest.approx(trained, abs=1e-5)
    assert registry.download(f"models:/rr-demo/{version.version}", tmp_path / "cache")[0] == folder
