"""Stage 7: every system on the evaluation queries, against the first stage with significance;
published figures, cost per stage, training curves; metrics.json, report.md, a plot and MLflow."""

import json
import time
from pathlib import Path

import dagster as dg
import pandas as pd
import yaml

from rr_assets.config import RESOURCES_DIR
from rr_assets.core.checkpoints import CARD_FILE, figure
from rr_assets.core.compared_systems import FirstStage, FusedReranker, OrderedReranker, ScoredReranker, System, evaluate_systems
from rr_assets.core.metrics import nested
from rr_assets.core.prompts import list_variants
from rr_assets.core.reports import Report, Sample, StageCost, metrics_json, write_report
from rr_assets.core.settings import StudentSettings
from rr_assets.core.teacher import TeacherUsage
from rr_assets.core.training import TrainResult
from rr_assets.partitions import collection_partitions, latest_metadata, variant_key
from rr_assets.resources import Collections, RRHome, TeacherService, Tracker

PUBLISHED_FIGURES = RESOURCES_DIR / "published_figures.yaml"
COSTED_ASSETS = ("corpus", "bm25_index", "first_stage_candidates", "splits", "teacher_judgments", "teacher_comparisons",
                 "teacher_rankings", "teacher_injection_probe", "train_pointwise", "student_checkpoint",
                 "student_rl_checkpoint", "student_scores")


def _named(kind: str, variant: str, primary: str) -> str:
    return kind if variant == primary else f"{kind}:{variant}"


def _card(home: RRHome, name: str) -> dict:
    path = Path(home.path) / "checkpoints" / name / CARD_FILE
    return json.loads(path.read_text()) if path.exists() else {}


def variant_systems(home: RRHome, trained_on: str, variant: str, primary: str, frames: dict, depth: int) -> list[System]:
    """The systems one prompt variant contributes: the teacher's direct labels and listwise order (on
    the queries it judged), and the student in both modes, before and after RL, and fused."""
    name = lambda kind: _named(kind, variant, primary)  # noqa: E731
    systems: list[System] = []
    judged = frames["judgments"][frames["judgments"]["prompt_variant"] == variant]
    if len(judged):
        labels = nested(judged, "label")
        systems.append(ScoredReranker(name("teacher"), frozenset(labels), note="direct labels; only the queries it judged",
                                      scores=labels))
    orders = {r.query_id: json.loads(r.final_doc_ids)
              for r in frames["rankings"][frames["rankings"]["prompt_variant"] == variant].itertuples()}
    if orders:
        systems.append(OrderedReranker(name("teacher_listwise"), frozenset(orders), note="sliding windows",
                                       orders=orders))
    scores = frames["students"][frames["students"]["prompt_variant"] == variant]
    speed = {(r.stage, r.mode): r.pairs_per_s for r in frames["speed"][frames["speed"]["prompt_variant"] == variant].itertuples()}
    card = _card(home, f"{trained_on}-{variant}")
    for stage, kind in (("sft", "student"), ("rl", "student_rl")):
        score_mode = scores[(scores["stage"] == stage) & (scores["mode"] == "score")]
        if score_mode.empty:
            continue
        systems.append(ScoredReranker(name(kind), None, depth, speed.get((stage, "score")), "score mode",
                                      scores=nested(score_mode, "score")))
        weight = card.get("result", {}).get("fusion_weight")
        if stage == "sft" and weight is not None:
            systems.append(FusedReranker(name("student+first_stage"), None, depth, None,
                                         f"min–max interpolation, weight {weight} chosen on dev",
                                         scores=nested(score_mode, "score"), weight=weight))
        explained = scores[(scores["stage"] == stage) & (scores["mode"] == "explain")]
        if len(explained):
            subset = frozenset(explained["query_id"])
            systems.append(ScoredReranker(name(f"{kind}_explain"), subset, depth, speed.get((stage, "explain")),
                                          "explain mode (InteRank), fixed subset", scores=nested(explained, "score")))
            systems.append(ScoredReranker(name(f"{kind}_score_subset"), subset, depth, speed.get((stage, "score")),
                                          "score mode on the explain-mode subset",
                                          scores=nested(score_mode[score_mode["query_id"].isin(subset)], "score")))
    return systems


def stage_costs(instance: dg.DagsterInstance, collection: str, trained_on: str, variants: list[str],
                answers: pd.DataFrame, teacher: TeacherService) -> list[StageCost]:
    """Each stage's latest materialisation (wall time, new teacher calls) and, for teacher stages, the
    answers its rows use with their tokens and estimated price; the teacher and training stages are
    those of the collection the student was trained on."""
    used = {(r.prompt_variant, r.stage): r for r in answers.itertuples()}
    costs = []
    for asset in COSTED_ASSETS:
        by_variant_of = collection if asset == "student_scores" else trained_on
        partitions = [(collection, None)] if asset in ("corpus", "bm25_index", "first_stage_candidates", "splits") else [
            (variant_key(by_variant_of, v), v) for v in variants]
        for partition, variant in partitions:
            meta = latest_metadata(instance, dg.AssetKey(asset), partition)
            if meta is None:
                continue
            label = asset if variant is None else f"{asset}[{variant}]"
            if by_variant_of != collection and variant is not None:
                label = f"{asset}[{by_variant_of}|{variant}]"
            row = used.get((variant, asset))
            prompt, completion = (int(row.prompt_tokens), int(row.completion_tokens)) if row else (0, 0)
            price = teacher.cost(TeacherUsage(prompt_tokens=prompt, completion_tokens=completion))
            costs.append(StageCost(label, meta.get("seconds"), int(meta.get("new_teacher_calls", 0)),
                                   int(row.answers) if row else int(meta.get("imported_answers", 0)), prompt, completion,
                                   round(price, 6), imported=bool(meta.get("imported", False))))
    return costs


@dg.asset(deps=["student_scores", "teacher_judgments", "teacher_rankings", "teacher_injection_probe",
                "first_stage_candidates", "qrels", "splits"],
          partitions_def=collection_partitions, group_name="benchmark", kinds={"ir_measures", "mlflow"}, code_version="2")
def benchmark_report(
    context: dg.AssetExecutionContext, home: RRHome, teacher: dg.ResourceParam[TeacherService],
    student: dg.ResourceParam[StudentSettings], collections: dg.ResourceParam[Collections], tracker: Tracker,
) -> dg.MaterializeResult:
    """nDCG@10/5, RR@10 and R@100 of the first stage and of every prompt variant's teacher and
    student on the evaluation queries, each with a paired test against the first stage."""
    started = time.monotonic()
    collection = context.partition_key
    warehouse = home.warehouse()
    params = {"collection": collection}
    candidates = warehouse.query("ranked_candidates", {**params, "split": "eval", "depth": 1_000_000, "queries": -1})
    qrels = nested(warehouse.query("split_qrels", {**params, "split": "eval"}), "relevance", int)
    first_stage = nested(candidates, "score")
    first_name = collections.source(collection).first_stage_label
    trained_on = collections.source(collection).trained_on
    configured = teacher.variant_names()
    present = list(warehouse.query("student_variants", params)["prompt_variant"])
    variants = [v for v in configured if v in present] + [v for v in present if v not in configured]
    primary = variants[0] if variants else configured[0]
    frames = {"judgments": warehouse.query("report_judgments", params),
              "rankings": warehouse.query("report_rankings", params),
              "students": warehouse.query("report_student_scores", params),
              "speed": warehouse.query("report_scoring_runs", params)}
    systems: list[System] = [FirstStage(first_name, rerank_depth=None, note="first stage")]
    for variant in variants:
        systems += variant_systems(home, trained_on, variant, primary, frames, student.rerank_depth)
    results = evaluate_systems(qrels, first_stage, systems)
    published = (yaml.safe_load(PUBLISHED_FIGURES.read_text()) or {}).get(collection, {}).get("figures", [])
    curves = {}
    for variant in variants:
        card = _card(home, f"{trained_on}-{variant}")
        if card.get("result", {}).get("dev_curve"):
            curves[variant] = {"dev": card["result"]["dev_curve"], "first_stage": card["result"]["first_stage_dev_ndcg"]}
    probe = warehouse.query("report_injection", params)
    label_sources = frames["judgments"]
    imported = {v for v in variants if v in list_variants(teacher.prompts_dir) and teacher.variant(v).imported}
    notes = [
        f"Rerankers reorder the first stage's top {student.rerank_depth}; documents below keep first-stage order."
        + ("" if imported == set(variants) else " Teacher rows cover only the evaluation queries the teacher judged (the "
           "top " + ", ".join(f"{teacher.settings.for_variant(v).judge_depth} ({v})" for v in variants if v not in imported)
           + ")."),
        f"Prompt variants: {', '.join(variants) or 'none'} (unsuffixed systems: {primary})"
        + ("." if imported == set(variants) else f"; teacher model {teacher.settings.model}."),
    ]
    if trained_on != collection:
        notes.append(f"Zero-shot: the student was trained on {trained_on} and selected on its dev collection; nothing "
                     f"was trained or tuned on {collection}.")
    for variant in variants:
        if variant in imported:
            files = warehouse.partition_rows("imported_answer_files", {"collection": trained_on, "prompt_variant": variant})
            notes.append(f"{variant}: the teacher's answers were imported ({int(files['answers'].sum())} answers of "
                         f"{', '.join(sorted(set(files['models'])))} from {len(files)} files; no teacher call).")
        if variant in list_variants(teacher.prompts_dir) and teacher.variant(variant).grounded:
            notes.append(f"{variant}: training labels come from the training qrels (judged documents, and the "
                         f"unjudged first-stage top {student.hard_negative_depth} as non-relevant hard negatives); "
                         "the teacher only explains some of them. Evaluation queries' qrels are never shown to anyone.")
        card = _card(home, f"{trained_on}-{variant}")
        if card:
            r = card["result"]
            notes.append(f"{variant} student: {card['adapter']}, {r['optimizer_steps']} optimizer steps "
                         f"({r['epochs']} epochs, stopped: {r['stop_reason']}), best dev nDCG@10 {figure(r['best_dev_ndcg'])} "
                         f"at step {r['best_step']} (first stage on dev: {figure(r['first_stage_dev_ndcg'])}; fused: "
                         f"{figure(r['fusion_dev_ndcg'])} at weight {r['fusion_weight']}), listwise target: "
                         f"{card['listwise_target']}, precision {r['precision']}.")
            quality = card.get("explanation_quality")
            if quality:
                notes.append(f"{variant} student's explanations (explain mode) of {quality['pairs']} pairs whose teacher "
                             f"reasons it never trained on: BLEU {quality['bleu']}, ROUGE-L {quality['rouge_l']} "
                             "(sacrebleu corpus BLEU, mean ROUGE-L F1).")
            if r.get("budget_note"):
                notes.append(f"{variant}: **less than one epoch trained**: {r['budget_note']}.")
            trained = TrainResult(**r)
            if trained.kept_untrained:
                notes.append(f"{variant}: **checkpoint selection kept the untrained model** (no later step beat step 0 "
                             "on the dev slice): its student rows are the base model's, not a distilled student's.")
            elif trained.below_first_stage:
                notes.append(f"{variant}: the student alone ranks the dev slice below the first stage "
                             f"({figure(r['best_dev_ndcg'])} against {figure(r['first_stage_dev_ndcg'])}).")
        rl = latest_metadata(context.instance, dg.AssetKey("student_rl_checkpoint"), variant_key(collection, variant))
        if rl is not None and not rl.get("enabled", True):
            notes.append(f"{variant}: no RL refinement (`rl.enabled: false`), so no `student_rl` rows.")
    injection = [f"{r.prompt_variant}: {r.pairs} judged pairs re-judged with planted instructions; mean label shift "
                 f"{r.shift:+.2f}, labels raised in {r.raised:.0%} of pairs" for r in probe.itertuples()]
    samples = [Sample(f"teacher ({r.prompt_variant})", r.query, r.doc_id, f"label {r.label}", r.explanation)
               for r in label_sources.head(3).itertuples()]
    query_texts = dict(zip(candidates["query_id"], candidates["query"]))
    explained = frames["students"][frames["students"]["explanation"].notna()].head(3)
    samples += [Sample(f"student {r.stage} ({r.prompt_variant}, explain mode)", query_texts.get(r.query_id, ""), r.doc_id,
                       f"score {r.score:.2f}", r.explanation) for r in explained.itertuples()]
    report = Report(collection, first_name, len(qrels), results, published,
                    stage_costs(context.instance, collection, trained_on, variants,
                                warehouse.query("report_teacher_answers", params), teacher), curves,
                    {"Notes": notes, "Prompt injection": injection}, samples)
    with tracker.run(context, {"collection": collection, "prompt_variants": ",".join(variants)}) as tracked:
        paths = write_report(home.dir("reports", collection), report)
        for result in results:
            tracked.metrics({f"{result.name.replace(':', '.').replace('+', '_plus_')}.{k}": v
                             for k, v in result.metrics.items()})
        for path in paths.values():
            tracked.artifact(path)
    content = metrics_json(report)
    return dg.MaterializeResult(
        metadata={"queries": len(qrels), "report": dg.MetadataValue.path(str(paths["report"])),
                  "mlflow_run_id": tracked.run_id, "seconds": round(time.monotonic() - started, 1),
                  "nDCG@10": dg.MetadataValue.json({k: round(v["nDCG@10"], 4) for k, v in content["systems"].items()}),
                  "details": dg.MetadataValue.json(content["details"])},
    )
