import pandas as pd
import pytest

from rr_assets.core.validation import label_agreement, validate_judgments

pytestmark = pytest.mark.integration


def judgments(**overrides) -> pd.DataFrame:
    frame = pd.DataFrame({
        "query_id": ["q1", "q1", "q2"], "doc_id": ["a", "b", "a"], "label": [2, 0, 1],
        "explanation": ["names the cause", "off topic", "background"], "raw": ["r1", "r2", "r3"],
        "parse_error": [None, None, None], "request_hash": ["h1", "h2", "h3"],
    })
    for column, values in overrides.items():
        frame[column] = values
    return frame


def test_clean_judgments_pass():
    outcome = validate_judgments(judgments(), (0, 1, 2), max_parse_failure_rate=0.2)
    assert outcome.passed and not outcome.failed_expectations


@pytest.mark.parametrize("overrides, failing", [
    ({"label": [2, 7, 1]}, "expect_column_values_to_be_in_set(label)"),
    ({"doc_id": ["a", "a", "a"], "query_id": ["q1", "q1", "q2"]}, "expect_compound_columns_to_be_unique"),
    ({"explanation": ["", "off topic", "background"]}, "expect_column_value_lengths_to_be_between(explanation)"),
    ({"label": [None, None, 1], "parse_error": ["no label found", "no label found", None]},
     "expect_column_values_to_not_be_null(label)"),
])
def test_planted_bad_rows_fail_the_suite(overrides, failing):
    outcome = validate_judgments(judgments(**overrides), (0, 1, 2), max_parse_failure_rate=0.2)
    assert not outcome.passed
    assert any(f.startswith(failing) for f in outcome.failed_expectations), outcome.failed_expectations


def test_agreement():
    perfect = label_agreement([2, 1, 0], [2, 1, 0])
    assert perfect.accuracy == 1.0 and perfect.kappa == pytest.approx(1.0)
    assert label_agreement([2, 2, 2], [0, 1, 2]).kappa == pytest.approx(0.0)
