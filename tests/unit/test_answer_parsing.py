import pytest

from rr_assets.core.answer_parsing import parse_direct

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


def test_comparison_formats():
    from rr_assets.core.answer_parsing import parse_comparison

    assert parse_comparison("A explains the cause; B does not.\nPreferred: A").preferred == "A"
    assert parse_comparison('{"explanation": "B is on topic.", "preferred": "b"}').preferred == "B"
    missing = parse_comparison("Both are fine.")
    assert missing.preferred is None and missing.error == "no preferred document found"


def test_ranking_is_repaired_into_a_permutation():
    from rr_assets.core.answer_parsing import parse_ranking

    clean = parse_ranking("[3] names the principle.\nRanking: [3] > [1] > [2]", 3)
    assert clean.order == [2, 0, 1] and not clean.repaired and clean.error is None
    repaired = parse_ranking("Short.\nRanking: [2] > [2] > [9]", 3)
    assert repaired.order == [1, 0, 2] and repaired.repaired
    failed = parse_ranking("no idea", 3)
    assert failed.order == [0, 1, 2] and failed.error == "no ranking found"


def test_verdicts_are_found_in_broken_json():
    from rr_assets.core.answer_parsing import parse_comparison, parse_ranking

    broken = '{"explanation": "Docker\\\'s flag", "label": 2 }'
    parsed = parse_direct(broken, LABELS)
    assert parsed.label == 2 and parsed.explanation == "Docker\\'s flag"
    assert parse_comparison('{"explanation": "it\\\'s A", "preferred": "A"}').preferred == "A"
    ranking = parse_ranking('{"explanation": "Docker\\\'s flag..." ,"ranking": [3, 1, 2, 4] }', 4)
    assert ranking.order == [2, 0, 1, 3] and ranking.error is None


def test_grounded_explanation_keeps_the_given_label():
    from rr_assets.core.answer_parsing import parse_explanation

    parsed = parse_explanation(" The document names the cause of slow rising.", 2)
    assert (parsed.label, parsed.explanation, parsed.error) == (2, "The document names the cause of slow rising.", None)


def test_grounded_explanation_is_its_first_paragraph_without_a_label_line():
    from rr_assets.core.answer_parsing import parse_explanation

    assert parse_explanation("It is about tabs.\nRelevance: 2", 0).explanation == "It is about tabs."
    assert parse_explanation("It is about tabs.\n\nQuery: next question", 0).explanation == "It is about tabs."
    assert parse_explanation('{"explanation": "Buoyancy is explained.", ', 1).explanation == "Buoyancy is explained."


def test_an_empty_grounded_explanation_is_an_error():
    from rr_assets.core.answer_parsing import parse_explanation

    parsed = parse_explanation("  \n ", 1)
    assert parsed.label == 1 and parsed.explanation == "" and parsed.error == "empty explanation"


def test_a_label_line_alone_is_not_an_explanation():
    from rr_assets.core.answer_parsing import parse_explanation

    parsed = parse_explanation("Relevance: 1", 1)
    assert parsed.explanation == "" and parsed.error == "empty explanation"
