"""Asset checks on teacher outputs: a Great Expectations suite and agreement with qrels."""

import dagster as dg

from rr_assets.core.validation import label_agreement, validate_judgments
from rr_assets.core.warehouse import named_sql
from rr_assets.resources import RRHome, TeacherResource


@dg.asset_check(asset="teacher_judgments", blocking=True,
                description="GX suite: schema, label domain, explanations, unique keys, parse-failure rate")
def teacher_judgments_gx_suite(
    context: dg.AssetCheckExecutionContext, home: RRHome, teacher: TeacherResource
) -> dg.AssetCheckResult:
    variant = teacher.variant()
    frame = home.warehouse().fetch_df(
        "SELECT * FROM teacher_judgments WHERE collection = ? AND prompt_variant = ?",
        [context.partition_key, variant.name],
    )
    outcome = validate_judgments(frame, variant.labels, teacher.max_parse_failure_rate)
    failure_rate = float(frame["label"].isna().mean()) if len(frame) else 1.0
    return dg.AssetCheckResult(
        passed=outcome.passed,
        metadata={"rows": len(frame), "parse_failure_rate": round(failure_rate, 4),
                  "failed_expectations": dg.MetadataValue.json(outcome.failed_expectations),
                  "expectations": dg.MetadataValue.json(outcome.details)},
    )


@dg.asset_check(asset="teacher_judgments",
                description="Teacher labels vs qrels (accuracy, Cohen's kappa); warns under min_agreement")
def teacher_agrees_with_qrels(
    context: dg.AssetCheckExecutionContext, home: RRHome, teacher: TeacherResource
) -> dg.AssetCheckResult:
    rows = home.warehouse().fetch_df(
        named_sql("judgment_agreement"),
        {"collection": context.partition_key, "prompt_variant": teacher.variant().name},
    )
    agreement = label_agreement(rows["teacher"].astype(int).tolist(), rows["gold"].astype(int).tolist())
    return dg.AssetCheckResult(
        passed=agreement.accuracy >= teacher.min_agreement,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={"pairs": agreement.pairs, "accuracy": round(agreement.accuracy, 4),
                  "cohen_kappa": round(agreement.kappa, 4), "min_agreement": teacher.min_agreement},
    )
