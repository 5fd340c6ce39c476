"""Asset checks beside the teacher assets: a Great Expectations suite per reasoning kind (blocking:
bad teacher data never reaches training), agreement with qrels, swap consistency and agreement
between teachers on shared lists (warnings)."""

import json
from types import SimpleNamespace

import dagster as dg

from rr_assets.core.imported_answers import teacher_agreement
from rr_assets.core.validation import label_agreement, validate_teacher_output
from rr_assets.partitions import collection_and_variant
from rr_assets.resources import RRHome, TeacherService

_KINDS = {"teacher_judgments": "direct", "teacher_comparisons": "comparison", "teacher_rankings": "listwise"}


def _gx_check(asset: str, kind: str) -> dg.AssetChecksDefinition:
    @dg.asset_check(asset=asset, name=f"{asset}_gx_suite", blocking=True,
                    description=f"GX suite for {kind} reasoning: schema, domains, unique keys, explanations, "
                                "parse-failure rate under the threshold")
    def gx_suite(context: dg.AssetCheckExecutionContext, home: RRHome,
                 teacher: dg.ResourceParam[TeacherService]) -> dg.AssetCheckResult:
        collection, variant_name = collection_and_variant(context)
        frame = home.warehouse().partition_rows(asset, {"collection": collection, "prompt_variant": variant_name})
        variant = teacher.variant(variant_name)
        outcome = validate_teacher_output(kind, frame, variant.labels, variant.max_parse_failure_rate,
                                          explanations_required=not variant.imported)
        failure_rate = float(frame["parse_error"].notna().mean()) if len(frame) else 1.0
        return dg.AssetCheckResult(
            passed=outcome.passed,
            metadata={"rows": len(frame), "parse_failure_rate": round(failure_rate, 4),
                      "failed_expectations": dg.MetadataValue.json(outcome.failed_expectations),
                      "expectations": dg.MetadataValue.json(outcome.details)},
        )

    return gx_suite


gx_checks = [_gx_check(asset, kind) for asset, kind in _KINDS.items()]


@dg.asset_check(asset="teacher_judgments",
                description="Teacher labels vs qrels grades on the variant's scale (accuracy, Cohen's kappa); warns under "
                            "min_agreement")
def teacher_agrees_with_qrels(
    context: dg.AssetCheckExecutionContext, home: RRHome, teacher: dg.ResourceParam[TeacherService]
) -> dg.AssetCheckResult:
    collection, variant_name = collection_and_variant(context)
    rows = home.warehouse().query("judgment_agreement", {"collection": collection, "prompt_variant": variant_name})
    variant = teacher.variant(variant_name)
    gold = [variant.scaled_label(g, m) for g, m in zip(rows["gold"], rows["max_relevance"])]
    agreement = label_agreement(rows["teacher"].astype(int).tolist(), gold)
    threshold = teacher.settings.min_agreement
    return dg.AssetCheckResult(
        passed=agreement.pairs == 0 or agreement.accuracy >= threshold,  # no qrels (msmarco-r2r): nothing to compare
        severity=dg.AssetCheckSeverity.WARN,
        metadata={"pairs": agreement.pairs, "accuracy": round(agreement.accuracy, 4),
                  "cohen_kappa": round(agreement.kappa, 4), "min_agreement": threshold},
    )


@dg.asset_check(asset="teacher_comparisons",
                description="Swapped comparisons agree with the originals (position bias); warns under the threshold")
def teacher_comparisons_swap_consistency(
    context: dg.AssetCheckExecutionContext, home: RRHome, teacher: dg.ResourceParam[TeacherService]
) -> dg.AssetCheckResult:
    collection, variant_name = collection_and_variant(context)
    row = home.warehouse().query("swap_consistency", {"collection": collection, "prompt_variant": variant_name}).iloc[0]
    consistency = float(row["consistency"])
    return dg.AssetCheckResult(
        passed=int(row["swapped_pairs"]) == 0 or consistency >= 1.0 - teacher.settings.max_swap_inconsistency,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={"swapped_pairs": int(row["swapped_pairs"]), "consistency": round(consistency, 4),
                  "first_position_rate": round(float(row["first_position_rate"]), 4)},
    )


@dg.asset_check(asset="teacher_rankings",
                description="Where several teachers ranked the same list (imported answers), the share of lists on "
                            "which each pair of teachers picks the same top passage; warns under min_agreement")
def teachers_agree_on_shared_lists(
    context: dg.AssetCheckExecutionContext, home: RRHome, teacher: dg.ResourceParam[TeacherService]
) -> dg.AssetCheckResult:
    collection, variant_name = collection_and_variant(context)
    rows = home.warehouse().partition_rows("teacher_rankings", {"collection": collection, "prompt_variant": variant_name})
    answers = [SimpleNamespace(query_id=r.query_id, model=r.model, shown=json.loads(r.input_doc_ids),
                               ranking=json.loads(r.ranked_doc_ids)) for r in rows.itertuples()]
    agreement = teacher_agreement(answers)
    threshold = teacher.settings.min_agreement
    return dg.AssetCheckResult(
        passed=all(a["same_top1"] >= threshold for a in agreement.values()),
        severity=dg.AssetCheckSeverity.WARN,
        metadata={"teacher_pairs": len(agreement), "shared_lists": sum(a["lists"] for a in agreement.values()),
                  "agreement": dg.MetadataValue.json(agreement), "min_agreement": threshold},
    )


all_checks = [*gx_checks, teacher_agrees_with_qrels, teacher_comparisons_swap_consistency, teachers_agree_on_shared_lists]
