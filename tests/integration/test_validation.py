"""The Great Expectations suites per reasoning kind, on clean rows and on planted bad rows."""

import json

import pandas as pd
import pytest

from rr_assets.core.validation import label_agreement, validate_teacher_output

pytestmark = pytest.mark.integration
LABELS = (0, 1, 2)


def direct(**overrides) -> pd.DataFrame:
    frame = pd.DataFrame({
        "query_id": ["q1", "q1", "q2"], "doc_id": ["a", "b", "a"], "label": [2, 0, 1],
        "explanation": ["names the cause", "off topic", "background"], "raw": ["r1", "r2", "r3"],
        "parse_error": [None, None, None], "request_hash": ["h1", "h2", "h3"],
    })
    return frame.assign(**overrides)


def comparisons(**overrides) -> pd.DataFrame:
    frame = pd.DataFrame({
        "query_id": ["q1", "q1"], "doc_a": ["a", "b"], "doc_b": ["b", "a"], "reason": ["adjacent", "adjacent"],
        "swapped": [False, True], "preferred_doc_id": ["a", "a"], "explanation": ["a explains it", "a again"],
        "raw": ["r", "r"], "parse_error": [None, None],
    })
    return frame.assign(**overrides)


def rankings(**overrides) -> pd.DataFrame:
    frame = pd.DataFrame({
        "query_id": ["q1", "q1"], "window_index": [0, 1], "input_doc_ids": [json.dumps(["c", "d"]), json.dumps(["a", "c"])],
        "ranked_doc_ids": [json.dumps(["d", "c"]), json.dumps(["c", "a"])], "explanation": ["d first", "c first"],
        "raw": ["r", "r"], "parse_error": [None, None],
    })
    return frame.assign(**overrides)


@pytest.mark.parametrize("kind, frame", [("direct", direct()), ("comparison", comparisons()), ("listwise", rankings())])
def test_clean_rows_pass(kind, frame):
    outcome = validate_teacher_output(kind, frame, LABELS, max_parse_failure_rate=0.2)
    assert outcome.passed, outcome.failed_expectations


@pytest.mark.parametrize("kind, frame, failing", [
    ("direct", direct(label=[2, 7, 1]), "expect_column_values_to_be_in_set(label)"),
    ("direct", direct(doc_id=["a", "a", "a"], query_id=["q1", "q1", "q2"]), "expect_compound_columns_to_be_unique"),
    ("direct", direct(explanation=["", "off topic", "background"]), "expect_column_value_lengths_to_be_between"),
    ("direct", direct(label=[None, None, 1], parse_error=["no label found", "no label found", None]),
     "expect_column_values_to_be_null(parse_error)"),
    ("comparison", comparisons(preferred_doc_id=["z", "a"]), "expect_column_values_to_be_in_set(preferred_is_a_or_b)"),
    ("comparison", comparisons(reason=["adjacent", "whim"]), "expect_column_values_to_be_in_set(reason)"),
    ("listwise", rankings(ranked_doc_ids=[json.dumps(["d", "x"]), json.dumps(["c", "a"])]),
     "expect_column_values_to_be_in_set(is_permutation)"),
    ("listwise", rankings(ranked_doc_ids=["not json", json.dumps(["c", "a"])]),
     "expect_column_values_to_be_json_parseable(ranked_doc_ids)"),
    ("listwise", rankings(window_index=[0, 0]), "expect_compound_columns_to_be_unique"),
])
def test_planted_bad_rows_fail_the_suite(kind, frame, failing):
    outcome = validate_teacher_output(kind, frame, LABELS, max_parse_failure_rate=0.2)
    assert not outcome.passed
    assert any(f.startswith(failing) for f in outcome.failed_expectations), outcome.failed_expectations


def test_agreement():
    perfect = label_agreement([2, 1, 0], [2, 1, 0])
    assert perfect.accuracy == 1.0 and perfect.kappa == pytest.approx(1.0)
    assert label_agreement([2, 2, 2], [0, 1, 2]).kappa == pytest.approx(0.0)
