import pytest

from rr_assets.core.rationale import parse_direct

pytestmark = pytest.mark.unit
LABELS = (0, 1, 2)


def test_few_shot_text_format():
    parsed = parse_direct(" The document names the cause.\nRelevance: 2", LABELS)
    assert (parsed.label, parsed.explanation, parsed.error) == (2, "The document names the cause.", None)


def test_json_answer():
    parsed = parse_direct('Sure: {"explanation": "Partly related.", "label": 1}', LABELS)
    assert (parsed.label, parsed.explanation, parsed.error) == (1, "Partly related.", None)


def test_missing_label_is_kept_with_reason():
    parsed = parse_direct("It talks about ships.\nMore text", LABELS)
    assert parsed.label is None and parsed.error == "no label found" and parsed.explanation == "It talks about ships."


def test_label_outside_scale():
    assert parse_direct("x\nRelevance: 5", LABELS).error == "label 5 outside the scale [0, 1, 2]"


def test_empty_explanation_is_an_error():
    parsed = parse_direct("Relevance: 1", LABELS)
    assert parsed.label == 1 and parsed.error == "empty explanation"
