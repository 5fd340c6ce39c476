"""The student's fast paths give what the plain ones give: batches by tokens score as pairs one at a
time, explanations generated over a static KV cache (what CUDA runs, compiled there) are the
dynamic cache's, word for word, at temperature 0, training passes split by tokens give the same losses
and gradients, gradient checkpointing trains the same steps, and a bf16 frozen base (CUDA's) trains a
float32 adapter.
In float32 on the CPU, with the real Gemma 3 270M weights and a tiny Gemma 3 whose sliding window
the prompts overflow."""

from dataclasses import replace

import pytest
import torch
from safetensors.torch import load_file

from rr_assets.core import training
from rr_assets.core.reranker import StudentReranker
from rr_assets.core.student_model import (
    Precision,
    StudentInfo,
    checkpoint_activations,
    explain_prefix,
    generate_explanations,
    label_token_ids,
    load_base_model,
    load_tokenizer,
    score_pairs,
)
from rr_assets.core.training import DevSet, StudentTrainer
from tests.conftest import demo_pairs
from tests.integration.test_student import SETTINGS, tiny_set

pytestmark = pytest.mark.integration
LABELS = (0, 1, 2)
FLOAT32 = Precision(torch.device("cpu"), False)


@pytest.fixture(scope="module")
def base(hf_base_model):
    return load_base_model(hf_base_model, FLOAT32).eval(), load_tokenizer(hf_base_model)


@pytest.fixture(scope="module")
def tiny_checkpoint(hf_base_model, tmp_path_factory):
    """A full-weights student checkpoint of a tiny, untrained Gemma 3 (sliding window of 8 tokens) with
    the real tokenizer."""
    from transformers import Gemma3ForCausalLM, Gemma3TextConfig

    tokenizer = load_tokenizer(hf_base_model)
    torch.manual_seed(0)
    config = Gemma3TextConfig(vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=4,
                              num_attention_heads=2, num_key_value_heads=1, head_dim=32, sliding_window=8,
                              layer_types=["sliding_attention", "full_attention"] * 2, pad_token_id=tokenizer.pad_token_id)
    folder = tmp_path_factory.mktemp("tiny") / "ckpt"
    Gemma3ForCausalLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    StudentInfo(str(folder), LABELS, doc_words=24, adapter="full").write(folder)
    return folder


@pytest.fixture(scope="module")
def tiny(tiny_checkpoint):
    return StudentReranker.load(tiny_checkpoint, FLOAT32)


def pairs(n: int) -> list[tuple[str, str]]:
    return [(p.query, p.document) for p in demo_pairs(n)]


def test_token_budget_batches_score_as_pairs_one_at_a_time(base):
    model, tokenizer = base
    ids = label_token_ids(tokenizer, LABELS)

    def score(token_budget: int) -> tuple[list[float], int]:
        passes = []
        values = score_pairs(model, tokenizer, ids, LABELS, 12, pairs(5), 1, FLOAT32,
                             progress=lambda done, total: passes.append(done), token_budget=token_budget)
        return values, len(passes)

    alone, one_pass_each = score(token_budget=0)  # batch_size 1 on the CPU: no padding at all
    budgeted, budget_passes = score(token_budget=150)  # two pairs of 72-74 tokens a pass
    together, single_pass = score(token_budget=10**6)  # one pass, padded to the longest pair
    assert one_pass_each == 5 and 1 < budget_passes < 5 and single_pass == 1
    assert budgeted == pytest.approx(alone, abs=1e-4)
    assert together == pytest.approx(alone, abs=1e-4)


def test_the_static_cache_explains_word_for_word_as_the_dynamic_one(base):
    model, tokenizer = base
    prompts = [explain_prefix(q, d, 12) for q, d in pairs(4)]
    dynamic = generate_explanations(model, tokenizer, prompts, 6, 4, FLOAT32)  # one left-padded batch
    static = generate_explanations(model, tokenizer, prompts, 6, 4, FLOAT32, static_cache=True)
    assert static == dynamic and all(dynamic)


def test_the_static_cache_follows_a_sliding_window_the_prompts_overflow(tiny):
    """Three batches of prompts of 83-87 tokens over a window of 8: the cache, sized once for the call,
    serves every batch, and the windowed layers' static cache rolls."""
    prompts = [explain_prefix(q, d, 24) for q, d in pairs(5)]
    explain = lambda **kw: generate_explanations(tiny.model, tiny.tokenizer, prompts, 12, 2, FLOAT32, **kw)
    assert explain(static_cache=True) == explain()


def test_the_reranker_scores_by_its_token_budget(tiny_checkpoint, tiny):
    passes = []
    budgeted = StudentReranker.load(tiny_checkpoint, FLOAT32, token_budget=10**6).score(
        pairs(5), batch_size=1, progress=lambda done, total: passes.append(done))
    assert passes == [5]
    assert budgeted == pytest.approx(tiny.score(pairs(5), batch_size=1), abs=1e-4)


def test_a_static_cache_under_bf16_autocast_needs_bfloat16_weights(tiny):
    with pytest.raises(ValueError, match="needs bfloat16 weights"):
        generate_explanations(tiny.model, tiny.tokenizer, ["Query: a\nDocument: b\nExplanation:"], 4, 1,
                              Precision(torch.device("cpu"), True), static_cache=True)


def test_checkpointed_blocks_run_twice_and_give_the_same_gradients(tiny_checkpoint):
    """With checkpointing, each block's forward runs again in the backward pass (its activations were
    not kept), and the gradients are the ones kept activations give."""
    ids = torch.randint(4, 1000, (2, 12), generator=torch.Generator().manual_seed(0))

    def one_pass(checkpointed: bool) -> tuple[int, list[torch.Tensor]]:
        model = load_base_model(tiny_checkpoint, FLOAT32).train()
        if checkpointed:
            checkpoint_activations(model)
        calls = []
        model.model.layers[0].mlp.register_forward_hook(lambda *_: calls.append(1))  # inside the checkpointed forward
        model(input_ids=ids, labels=ids).loss.backward()
        return len(calls), [p.grad for p in model.parameters() if p.grad is not None]

    (plain_calls, plain), (checkpointed_calls, checkpointed) = one_pass(False), one_pass(True)
    assert (plain_calls, checkpointed_calls) == (1, 2)
    assert len(plain) == len(checkpointed) and all(torch.allclose(a, b, atol=1e-6) for a, b in zip(plain, checkpointed))


def test_the_gradient_checkpointing_setting_trains_the_same_steps(tiny_checkpoint, tmp_path, monkeypatch):
    checkpointed_models = []
    monkeypatch.setattr(training, "checkpoint_activations",
                        lambda model: checkpointed_models.append(model) or checkpoint_activations(model))
    settings = replace(SETTINGS, epochs=1, max_steps=3)
    plain = StudentTrainer(str(tiny_checkpoint), settings, LABELS, FLOAT32).train(tiny_set(), tmp_path / "plain")
    assert not checkpointed_models
    checkpointed = StudentTrainer(str(tiny_checkpoint), replace(settings, gradient_checkpointing=True), LABELS,
                                  FLOAT32).train(tiny_set(), tmp_path / "checkpointed")
    assert len(checkpointed_models) == 1
    assert [r["loss"] for r in checkpointed.curve] == pytest.approx([r["loss"] for r in plain.curve], abs=1e-5)
    before, after = (load_file(tmp_path / name / "adapter_model.safetensors") for name in ("plain", "checkpointed"))
    assert before.keys() == after.keys() and all(torch.allclose(before[k], after[k], atol=1e-5) for k in before)


def test_a_bf16_base_trains_a_float32_adapter_and_stays_unrounded(tiny_checkpoint, tmp_path, monkeypatch):
    """Under bf16 weights (CUDA's default, forced here on the CPU) the frozen base is bfloat16 and the
    LoRA matrices float32; the loss follows float32 training's; dev scoring runs the adapter unmerged,
    so the base weights end bit for bit as they were cast (a merge and unmerge in bf16 would round them)."""
    models = []
    monkeypatch.setattr(training, "_adapted_model",
                        lambda *args, _adapted=training._adapted_model: models.append(_adapted(*args)) or models[-1])
    examples = tiny_set()
    dev = DevSet({e.query_id: e.query for e in examples},
                 {q: [(e.doc_id, e.document, -i) for i, e in enumerate(e for e in examples if e.query_id == q)]
                  for q in {e.query_id for e in examples}},
                 {e.query_id: {e.doc_id: e.label} for e in examples if e.label})
    settings = replace(SETTINGS, epochs=1, max_steps=3, eval_every=1, patience=5)
    plain = StudentTrainer(str(tiny_checkpoint), settings, LABELS, FLOAT32).train(examples, tmp_path / "plain", dev)
    bf16 = Precision(torch.device("cpu"), True, bf16_weights=True)
    trained = StudentTrainer(str(tiny_checkpoint), settings, LABELS, bf16).train(examples, tmp_path / "bf16", dev)
    model = models[-1]
    dtypes = {name: (p.requires_grad, p.dtype) for name, p in model.named_parameters()}
    assert {dtype for trains, dtype in dtypes.values() if trains} == {torch.float32}
    assert {dtype for trains, dtype in dtypes.values() if not trains} == {torch.bfloat16}
    base = load_base_model(tiny_checkpoint, FLOAT32).state_dict()
    for name, parameter in model.named_parameters():
        if "lora_" not in name:
            key = name.removeprefix("base_model.model.").replace(".base_layer", "")
            assert torch.equal(parameter, base[key].to(torch.bfloat16)), name
    assert len(trained.dev_curve) == len(plain.dev_curve) == 4
    assert [r["loss"] for r in trained.curve] == pytest.approx([r["loss"] for r in plain.curve], rel=0.05)
    saved = load_file(tmp_path / "bf16" / "adapter_model.safetensors")
    assert saved and {t.dtype for t in saved.values()} == {torch.float32}


@pytest.mark.parametrize("score_with", ["label", "query_likelihood"])
def test_training_passes_split_by_tokens_give_the_same_losses_and_gradients(tiny_checkpoint, score_with):
    """A batch of 2 groups × 4 texts in length-sorted passes of at most 120 padded tokens (texts run
    40-70 tokens: 2-3 passes) against one pass padded to its longest text."""
    examples = tiny_set()
    by_query = {}
    for e in examples:
        by_query.setdefault(e.query_id, []).append(e)
    batch = list(by_query.values())[:2]
    tokenizer = load_tokenizer(tiny_checkpoint)

    def losses_and_gradients(budget: int):
        model = load_base_model(tiny_checkpoint, FLOAT32).train()
        settings = replace(SETTINGS, score_with=score_with, train_token_budget=budget, generation_weight=0.0)
        passes = training._PassLosses(model, tokenizer, label_token_ids(tokenizer, LABELS), LABELS, settings,
                                      torch.device("cpu"))
        calls = []
        model.model.register_forward_hook(lambda _, args, kwargs, out: calls.append(kwargs["input_ids"].shape),
                                          with_kwargs=True)
        losses, _ = passes(batch, frozenset(), {})
        sum(losses.values()).backward()
        return {k: float(v.detach()) for k, v in losses.items()}, [p.grad for p in model.parameters()], calls

    whole, whole_grads, whole_calls = losses_and_gradients(0)
    split, split_grads, split_calls = losses_and_gradients(120)
    assert len(whole_calls) == 1 and len(split_calls) > 1
    assert all(rows * width <= 120 or rows == 1 for rows, width in split_calls)
    assert split == pytest.approx(whole, abs=1e-5)
    diffs = [float((a - b).abs().max() / a.abs().max()) for a, b in zip(whole_grads, split_grads) if a is not None]
    assert max(diffs) < 1e-4
