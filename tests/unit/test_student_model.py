import pytest
import torch

from rr_assets.core.student_model import (
    choose_precision,
    clip_words,
    cpu_bf16_speedup,
    explain_prefix,
    explain_text,
    label_logits,
    score_text,
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


def test_label_logits_stay_float32_under_bf16_autocast():
    from transformers import Gemma3ForCausalLM, Gemma3TextConfig

    torch.manual_seed(0)
    config = Gemma3TextConfig(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                              num_attention_heads=2, num_key_value_heads=1, head_dim=16)
    model = Gemma3ForCausalLM(config).eval()
    batch = {"input_ids": torch.randint(0, 64, (4, 9)), "attention_mask": torch.ones(4, 9, dtype=torch.long)}
    with torch.no_grad():
        exact = label_logits(model, batch, [3, 4, 5])
        with choose_precision("bfloat16").autocast():
            mixed = label_logits(model, batch, [3, 4, 5])
    assert mixed.dtype == torch.float32
    # Not rounded to bf16: otherwise near-equal documents would tie on the label's expected value.
    assert not torch.equal(mixed, mixed.bfloat16().float())
    assert torch.allclose(mixed, exact, atol=0.1)
