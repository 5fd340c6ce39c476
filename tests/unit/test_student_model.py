import pytest
import torch

from rr_assets.core.student_model import (
    choose_precision,
    clip_words,
    cpu_bf16_speedup,
    explain_prefix,
    explain_text,
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
