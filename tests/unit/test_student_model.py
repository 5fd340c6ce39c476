import pytest
import torch

from rr_assets.core.student_model import (
    MAX_AUTO_TOKEN_BUDGET,
    Precision,
    auto_token_budget,
    cast_weights,
    choose_precision,
    clip_words,
    cpu_bf16_speedup,
    explain_prefix,
    explain_text,
    label_logits,
    score_text,
    token_batches,
    token_budget_for,
)

pytestmark = pytest.mark.unit


def test_clip_words_marks_a_cut():
    assert clip_words("one  two three", 5) == "one two three"
    assert clip_words("one two three", 2) == "one two ..."


def test_score_mode_puts_the_label_right_after_the_document():
    assert score_text("why?", "a b c", 2, doc_words=2) == "Query: why?\nDocument: a b ...\nRelevance: 2"


def test_explain_mode_is_the_prefix_then_explanation_then_label():
    prefix = explain_prefix("why?", "a b c", doc_words=10)
    assert prefix == "Query: why?\nDocument: a b c\nExplanation:"
    assert explain_text("why?", "a b c", "It answers.", 1, doc_words=10) == prefix + " It answers.\nRelevance: 1"


def test_explicit_precisions_and_an_unknown_one():
    assert not choose_precision("float32").bf16 and choose_precision("bfloat16").bf16
    assert choose_precision("float32").name.endswith("/float32")
    with pytest.raises(ValueError, match="precision must be one of"):
        choose_precision("fp8")


def test_bf16_speedup_is_measured_as_a_positive_ratio():
    assert cpu_bf16_speedup(size=32, repeats=1) > 0
    with choose_precision("float32").autocast():
        assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.float32


def tiny_gemma(hidden_size: int = 32, layers: int = 1):
    from transformers import Gemma3ForCausalLM, Gemma3TextConfig

    torch.manual_seed(0)
    config = Gemma3TextConfig(vocab_size=64, hidden_size=hidden_size, intermediate_size=2 * hidden_size,
                              num_hidden_layers=layers, num_attention_heads=2, num_key_value_heads=1, head_dim=16)
    return Gemma3ForCausalLM(config).eval()


def test_label_logits_stay_float32_under_bf16_autocast():
    model = tiny_gemma()
    batch = {"input_ids": torch.randint(0, 64, (4, 9)), "attention_mask": torch.ones(4, 9, dtype=torch.long)}
    with torch.no_grad():
        exact = label_logits(model, batch, [3, 4, 5])
        with choose_precision("bfloat16").autocast():
            mixed = label_logits(model, batch, [3, 4, 5])
    assert mixed.dtype == torch.float32
    # Not rounded to bf16: otherwise near-equal documents would tie on the label's expected value.
    assert not torch.equal(mixed, mixed.bfloat16().float())
    assert torch.allclose(mixed, exact, atol=0.1)


def test_weights_are_bfloat16_only_for_cuda_under_bf16():
    assert Precision(torch.device("cuda"), True).weight_dtype == torch.bfloat16
    assert Precision(torch.device("cuda"), False).weight_dtype == torch.float32
    assert Precision(torch.device("cpu"), True).weight_dtype == torch.float32  # a CPU keeps float32 under autocast
    assert Precision(torch.device("cpu"), True, bf16_weights=True).weight_dtype == torch.bfloat16
    assert Precision(torch.device("cuda"), False, bf16_weights=True).weight_dtype == torch.float32  # no autocast


def test_only_frozen_weights_are_cast_when_asked():
    model = tiny_gemma(hidden_size=64, layers=2)
    for name, parameter in model.named_parameters():
        parameter.requires_grad = ".layers.1." in name
    cast_weights(model, torch.bfloat16, frozen_only=True)
    dtypes = {(p.requires_grad, p.dtype) for p in model.parameters()}
    assert dtypes == {(True, torch.float32), (False, torch.bfloat16)}


def test_label_rows_stay_float32_over_bfloat16_weights():
    model = tiny_gemma(hidden_size=64, layers=2)
    batch = {"input_ids": torch.randint(0, 64, (4, 9)), "attention_mask": torch.ones(4, 9, dtype=torch.long)}
    with torch.no_grad():
        exact = label_logits(model, batch, [3, 4, 5])
        cast_weights(model, torch.bfloat16)
        with Precision(torch.device("cpu"), True).autocast():
            mixed = label_logits(model, batch, [3, 4, 5])
    assert model.get_output_embeddings().weight.dtype == torch.bfloat16
    assert {b.dtype for b in model.buffers() if b.is_floating_point()} == {torch.float32}  # rotary frequencies
    assert mixed.dtype == torch.float32 and not torch.equal(mixed, mixed.bfloat16().float())
    assert torch.allclose(mixed, exact, atol=0.1)


def test_token_batches_keep_the_longest_text_times_rows_within_the_budget():
    lengths = [5, 9, 3, 7, 7, 20, 4]
    # Shortest first (3, 4, 5 | 7, 7 | 9 | 20): 5 × 3 = 15 fits 16, 7 × 4 would not; 20 exceeds it and goes alone.
    assert token_batches(lengths, batch_size=2, token_budget=16) == [[2, 6, 0], [3, 4], [1], [5]]
    assert token_batches(lengths, batch_size=3, token_budget=0) == [[2, 6, 0], [3, 4, 1], [5]]
    assert token_batches([], batch_size=3, token_budget=16) == []


def test_the_automatic_token_budget_follows_free_memory_up_to_a_ceiling():
    from transformers import Gemma3TextConfig

    config = Gemma3TextConfig(hidden_size=640, intermediate_size=2048, num_attention_heads=4, num_key_value_heads=1,
                              head_dim=256)  # Gemma 3 270M
    one_gib = token_budget_for(config, 2**30)
    assert 2_000 < one_gib < 20_000 and token_budget_for(config, 2**31) in (2 * one_gib, 2 * one_gib + 1)
    assert token_budget_for(config, 140 * 2**30) == MAX_AUTO_TOKEN_BUDGET and token_budget_for(config, 0) == 1
    assert auto_token_budget(tiny_gemma(), torch.device("cpu")) == 0  # the CPU keeps batches of pairs
