"""Checks on teacher outputs: a Great Expectations suite, and agreement with human qrels."""

from __future__ import annotations

import os
from dataclasses import dataclass

import pandas as pd

JUDGMENT_COLUMNS = ["query_id", "doc_id", "label", "explanation", "raw", "parse_error", "request_hash"]


@dataclass(frozen=True)
class SuiteOutcome:
    passed: bool
    failed_expectations: list[str]
    details: dict[str, object]


def validate_judgments(
    frame: pd.DataFrame, labels: tuple[int, ...], max_parse_failure_rate: float,
    explanation_chars: tuple[int, int] = (1, 2000),
) -> SuiteOutcome:
    """Run the GX suite for direct judgments: schema, label domain, explanation length on parsed
    rows, unique (query, document) keys and the parse-failure rate."""
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")
    import great_expectations as gx
    import great_expectations.expectations as gxe

    context = gx.get_context(mode="ephemeral")
    batch_definition = (
        context.data_sources.add_pandas("rr")
        .add_dataframe_asset("teacher_judgments")
        .add_batch_definition_whole_dataframe("partition")
    )
    suite = context.suites.add(gx.ExpectationSuite(name="teacher_judgments_direct"))
    suite.add_expectation(gxe.ExpectTableColumnsToMatchSet(column_set=JUDGMENT_COLUMNS, exact_match=False))
    suite.add_expectation(gxe.ExpectTableRowCountToBeBetween(min_value=1))
    suite.add_expectation(gxe.ExpectColumnValuesToBeInSet(column="label", value_set=list(labels)))
    suite.add_expectation(gxe.ExpectCompoundColumnsToBeUnique(column_list=["query_id", "doc_id"]))
    suite.add_expectation(gxe.ExpectColumnValuesToNotBeNull(column="raw"))
    suite.add_expectation(gxe.ExpectColumnValuesToNotBeNull(column="label", mostly=1.0 - max_parse_failure_rate))
    parsed = frame[frame["parse_error"].isna()] if "parse_error" in frame else frame
    parsed_suite = context.suites.add(gx.ExpectationSuite(name="teacher_judgments_parsed"))
    parsed_suite.add_expectation(gxe.ExpectColumnValuesToNotBeNull(column="explanation"))
    parsed_suite.add_expectation(
        gxe.ExpectColumnValueLengthsToBeBetween(
            column="explanation", min_value=explanation_chars[0], max_value=explanation_chars[1]
        )
    )
    failed, details = [], {}
    for name, data, checked in (("all rows", frame, suite), ("parsed rows", parsed, parsed_suite)):
        result = batch_definition.get_batch(batch_parameters={"dataframe": data}).validate(checked)
        for item in result.results:
            kind = item.expectation_config.type
            column = item.expectation_config.kwargs.get("column", "")
            key = f"{kind}({column})" if column else kind
            details[key] = {"success": bool(item.success), "unexpected": item.result.get("unexpected_count")}
            if not item.success:
                failed.append(f"{key} on {name}")
    return SuiteOutcome(not failed, failed, details)


@dataclass(frozen=True)
class Agreement:
    pairs: int
    accuracy: float
    kappa: float


def label_agreement(teacher: list[int], gold: list[int]) -> Agreement:
    """Exact-label accuracy and Cohen's kappa between teacher labels and qrels (unjudged = 0)."""
    from sklearn.metrics import cohen_kappa_score

    if not teacher:
        return Agreement(0, 0.0, 0.0)
    accuracy = sum(t == g for t, g in zip(teacher, gold)) / len(teacher)
    kappa = float(cohen_kappa_score(teacher, gold)) if len(set(teacher) | set(gold)) > 1 else 1.0
    return Agreement(len(teacher), accuracy, 0.0 if kappa != kappa else kappa)
