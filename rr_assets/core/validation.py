"""Checks on teacher outputs: Great Expectations suites per reasoning kind, agreement with human
qrels, and swap consistency of comparisons."""

from __future__ import annotations

import os
from dataclasses import dataclass

import pandas as pd

os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")


@dataclass(frozen=True)
class SuiteOutcome:
    passed: bool
    failed_expectations: list[str]
    details: dict[str, object]


def _expectations(kind: str, labels: tuple[int, ...], max_failure_rate: float, explanation_chars: tuple[int, int]):
    """(expectations on all rows, expectations on parsed rows) for one reasoning kind."""
    import great_expectations.expectations as gxe

    explanation = [
        gxe.ExpectColumnValuesToNotBeNull(column="explanation"),
        gxe.ExpectColumnValueLengthsToBeBetween(column="explanation", min_value=explanation_chars[0],
                                                max_value=explanation_chars[1]),
    ]
    common = [gxe.ExpectTableRowCountToBeBetween(min_value=1), gxe.ExpectColumnValuesToNotBeNull(column="raw"),
              gxe.ExpectColumnValuesToBeNull(column="parse_error", mostly=1.0 - max_failure_rate)]
    if kind == "direct":
        return common + [
            gxe.ExpectTableColumnsToMatchSet(column_set=["query_id", "doc_id", "label", "explanation", "raw",
                                                         "parse_error", "request_hash"], exact_match=False),
            gxe.ExpectColumnValuesToBeInSet(column="label", value_set=list(labels)),
            gxe.ExpectCompoundColumnsToBeUnique(column_list=["query_id", "doc_id"]),
        ], explanation + [gxe.ExpectColumnValuesToNotBeNull(column="label")]
    if kind == "comparison":
        return common + [
            gxe.ExpectTableColumnsToMatchSet(column_set=["query_id", "doc_a", "doc_b", "preferred_doc_id", "swapped",
                                                         "explanation", "raw", "parse_error"], exact_match=False),
            gxe.ExpectCompoundColumnsToBeUnique(column_list=["query_id", "doc_a", "doc_b"]),
            gxe.ExpectColumnValuesToBeInSet(column="reason", value_set=["adjacent", "label_disagreement", "teacher_order"]),
            gxe.ExpectColumnValuesToBeInSet(column="preferred_is_a_or_b", value_set=[True]),
        ], explanation
    if kind == "listwise":
        return common + [
            gxe.ExpectTableColumnsToMatchSet(column_set=["query_id", "window_index", "input_doc_ids", "ranked_doc_ids",
                                                         "explanation", "raw", "parse_error"], exact_match=False),
            gxe.ExpectCompoundColumnsToBeUnique(column_list=["query_id", "window_index"]),
            gxe.ExpectColumnValuesToBeJsonParseable(column="ranked_doc_ids"),
            gxe.ExpectColumnValuesToBeInSet(column="is_permutation", value_set=[True]),
        ], explanation
    raise ValueError(f"unknown reasoning kind {kind!r}")


def _derived_columns(kind: str, frame: pd.DataFrame) -> pd.DataFrame:
    """Row-wise facts GX cannot express directly, as boolean columns the suite checks."""
    import json

    frame = frame.copy()
    if kind == "comparison" and len(frame):
        frame["preferred_is_a_or_b"] = [
            p is None or p != p or p in (a, b) for p, a, b in zip(frame["preferred_doc_id"], frame["doc_a"], frame["doc_b"])
        ]
    if kind == "listwise" and len(frame):
        def is_permutation(inputs: str, ranked: str) -> bool:
            try:
                return sorted(json.loads(inputs)) == sorted(json.loads(ranked))
            except (TypeError, ValueError):
                return False
        frame["is_permutation"] = [is_permutation(i, r) for i, r in zip(frame["input_doc_ids"], frame["ranked_doc_ids"])]
    return frame


def validate_teacher_output(
    kind: str, frame: pd.DataFrame, labels: tuple[int, ...], max_parse_failure_rate: float,
    explanation_chars: tuple[int, int] = (1, 2000), explanations_required: bool = True,
) -> SuiteOutcome:
    """Run the GX suite of one reasoning kind: schema, domains, unique keys, the parse-failure
    rate, and explanation presence and length on the rows that parsed (`explanations_required`
    False: length only, on the rows that have one, as for imported answers that give no reason
    for some passages)."""
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)  # rr prints its own progress
    batch_definition = (
        context.data_sources.add_pandas("rr").add_dataframe_asset(f"teacher_{kind}")
        .add_batch_definition_whole_dataframe("partition")
    )
    on_all, on_parsed = _expectations(kind, labels, max_parse_failure_rate, explanation_chars)
    frame = _derived_columns(kind, frame)
    parsed = frame[frame["parse_error"].isna()] if "parse_error" in frame else frame
    if not explanations_required:
        parsed = parsed[parsed["explanation"].notna()]
    failed, details = [], {}
    for scope, data, expectations in (("all rows", frame, on_all), ("parsed rows", parsed, on_parsed)):
        suite = context.suites.add(gx.ExpectationSuite(name=f"teacher_{kind}_{scope.replace(' ', '_')}"))
        for expectation in expectations:
            suite.add_expectation(expectation)
        result = batch_definition.get_batch(batch_parameters={"dataframe": data}).validate(suite)
        for item in result.results:
            column = item.expectation_config.kwargs.get("column", "")
            key = f"{item.expectation_config.type}({column})" if column else item.expectation_config.type
            details[f"{key} on {scope}"] = {"success": bool(item.success),
                                            "unexpected": item.result.get("unexpected_count")}
            if not item.success:
                failed.append(f"{key} on {scope}")
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
