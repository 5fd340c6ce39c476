"""Stage 6: the student: base model folder, distilled checkpoint, RL-refined checkpoint, scores on
the evaluation queries in both inference modes, and the registry's champion."""

import json
import shutil
import time
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import pandas as pd

from rr_assets.core.checkpoints import CARD_FILE, STUDENT_FILE, checkpoint_name, continued_from, weights_hash, write_card
from rr_assets.core.registry import (
    CHAMPION_GATE,
    DEV_METRIC_TAG,
    FIRST_STAGE_GATE,
    FIRST_STAGE_METRIC_TAG,
    FIRST_STAGE_P_TAG,
    RegisteredVersion,
    StudentRegistry,
    registered_name,
)
from rr_assets.core.reranker import StudentReranker
from rr_assets.core.rl import GRPORefiner
from rr_assets.core.settings import ExplainSettings, RLSettings, StudentSettings
from rr_assets.core.student_data import dev_set, held_out_explanation_quality, reasoning_targets, training_examples
from rr_assets.core.student_model import choose_precision
from rr_assets.core.training import StudentTrainer, evaluate_on_dev
from rr_assets.partitions import collection_and_variant, collection_variant_partitions
from rr_assets.resources import Collections, RRHome, StudentBase, TeacherService, Tracker

STUDENT_ASSET = dict(partitions_def=collection_variant_partitions, group_name="student", pool="student")


@dg.asset(group_name="student", kinds={"transformers"}, code_version="1")
def student_base_model(base: dg.ResourceParam[StudentBase]) -> dg.MaterializeResult:
    """A local transformers folder of the base model; the embedded GGUF is dequantized once."""
    started = time.monotonic()
    folder = base.prepare()
    return dg.MaterializeResult(
        metadata={"path": str(folder), "base_model": base.settings.base_model,
                  "seconds": round(time.monotonic() - started, 1)},
        data_version=dg.DataVersion(f"{base.settings.base_model}:{folder}"),
    )


def dev_tags(dev_ndcg: float | None, first_stage_dev_ndcg: float | None, p_value: float | None) -> dict[str, object]:
    """A registered version's dev figures: its nDCG@10, the first stage's on the same queries, and
    the paired t-test p between them ('' where there is no dev slice)."""
    return {tag: "" if value is None else value for tag, value in (
        (DEV_METRIC_TAG, dev_ndcg), (FIRST_STAGE_METRIC_TAG, first_stage_dev_ndcg), (FIRST_STAGE_P_TAG, p_value))}


def imported_models(files) -> str:
    """The teacher models that imported answer files name, joined."""
    return ", ".join(sorted({m.strip() for models in files["models"] for m in models.split(",") if m.strip()}))


def throttled(context, every_s: float = 15.0):
    """A Dagster log line at most every `every_s` seconds (and always when `force`)."""
    last = {"t": 0.0}

    def log(message: str, force: bool = False) -> None:
        if force or time.monotonic() - last["t"] >= every_s:
            last["t"] = time.monotonic()
            context.log.info(message)

    return log


LEARNED_CHECK, FIRST_STAGE_CHECK = "learned_on_dev", "beats_first_stage_on_dev"


@dg.asset(deps=["train_pointwise", "train_pairwise", "train_listwise", "splits", "first_stage_candidates", "qrels",
                student_base_model], kinds={"peft", "torch"}, code_version="5", **STUDENT_ASSET,
          check_specs=[
              dg.AssetCheckSpec(LEARNED_CHECK, asset="student_checkpoint",
                                description="Training beat the untrained model on the dev slice; warns when checkpoint "
                                            "selection kept step 0 (the student learned nothing the dev slice rewards)"),
              dg.AssetCheckSpec(FIRST_STAGE_CHECK, asset="student_checkpoint",
                                description="The student alone ranks the dev slice at least as well as the first stage; "
                                            "warns otherwise (a reranker below its first stage is a defect)")])
def student_checkpoint(
    context: dg.AssetExecutionContext, home: RRHome, student: dg.ResourceParam[StudentSettings],
    base: dg.ResourceParam[StudentBase], teacher: dg.ResourceParam[TeacherService], tracker: Tracker,
    collections: dg.ResourceParam[Collections], explain: dg.ResourceParam[ExplainSettings],
):
    """The distilled student (R2R): LoRA (or full) fine-tuning with pairwise + listwise +
    generation losses over query groups, the best dev-slice checkpoint kept; registered in MLflow."""
    collection, variant_name = collection_and_variant(context)
    variant = teacher.variant(variant_name)
    warehouse = home.warehouse()
    where = {"collection": collection, "prompt_variant": variant.name}
    examples = training_examples(warehouse, where, student.max_train_queries, variant.held_out_percent)
    preferences, orders = reasoning_targets(warehouse, where)
    dev_collection = collections.source(collection).dev_from or collection
    dev = dev_set(warehouse, dev_collection, student)
    name = checkpoint_name(collection, variant.name)
    out_dir = home.dir("checkpoints") / name
    data_versions = {table: warehouse.table_hash(table, where)
                     for table in ("train_pointwise", "train_pairwise", "train_listwise", "teacher_judgments")}
    data_versions["corpus"] = warehouse.table_hash("corpus", {"collection": collection})
    imported = warehouse.partition_rows("imported_answer_files", where)
    training_data = {"collection": collection, "dev_collection": dev_collection,
                     "imported_answer_files": imported.drop(columns=["collection", "prompt_variant"]).to_dict("records"),
                     "continued_from": continued_from(student.init_from)}
    teacher_model = imported_models(imported) if variant.imported else teacher.settings.model
    precision = choose_precision(student.precision)
    params = {**asdict(student), "collection": collection, "prompt_variant": variant.name,
              "prompt_hash": variant.content_hash, "teacher_model": teacher_model, "precision_used": precision.name,
              "train_examples": len(examples), "train_queries": len({e.query_id for e in examples}),
              "comparison_preferences": len(preferences), "teacher_orders": len(orders),
              "dev_queries_used": len(dev.candidates) if dev else 0, "dev_collection": dev_collection,
              **{f"imported.{Path(f['file']).name}.sha256": f["sha256"] for f in training_data["imported_answer_files"]},
              **({"init_from.weights_sha256": training_data["continued_from"]["weights_sha256"]}
                 if student.init_from else {})}
    log_line = throttled(context)
    with tracker.run(context, params) as tracked:

        def log(kind: str, record: dict) -> None:
            if kind == "budget":
                context.log.warning(f"step {record['step']}: {record['note']}")
                return
            values = {k: v for k, v in record.items() if k not in ("step", "best") and isinstance(v, (int, float))}
            tracked.metrics({f"{kind}.{k}": v for k, v in values.items()}, record["step"])
            if kind == "dev":
                log_line(f"dev nDCG@10 {record['dev_nDCG@10']:.4f} at step {record['step']} (best {record['best']:.4f})",
                         force=True)
            else:
                log_line(f"training step {record['step']} (epoch {record['epoch']}): loss {record['loss']:.4f}, "
                         f"{record['pairs_per_s']} pairs/s")

        result = StudentTrainer(base.prepare(), student, variant.labels, precision, log).train(
            examples, out_dir, dev, preferences, orders)
        quality = held_out_explanation_quality(warehouse, where, variant.held_out_percent, out_dir, precision, explain)
        if quality:
            tracked.metrics({"explanations.BLEU": quality.bleu, "explanations.ROUGE-L": quality.rouge_l})
        card = {
            "name": name, "stage": "sft", "collection": collection, "base_model": student.base_model,
            "prompt_variant": variant.name, "prompt_hash": variant.content_hash,
            "teacher_model": teacher_model,
            "teacher_endpoint": "imported" if variant.imported else teacher.endpoint_label(),
            "data_versions": data_versions, "training_data": training_data,
            "train_examples": len(examples), "comparison_preferences": len(preferences), "teacher_orders": len(orders),
            "listwise_target": result.listwise_target,
            "listwise_groups": result.listwise_groups, "settings": asdict(student),
            "adapter": ("full fine-tuning" if student.lora_r == 0 else f"LoRA r={student.lora_r} on {list(student.lora_targets)}")
                       + (f", top {student.trained_layers} blocks trained" if student.trained_layers else ""),
            "result": {k: v for k, v in asdict(result).items() if k != "curve"}, "train_curve": result.curve,
            "explanation_quality": asdict(quality) if quality else None,
            "dagster_run_id": context.run.run_id, "dagster_home": context.instance.root_directory,
            "rr_home": home.path, "mlflow_run_id": tracked.run_id, "created_at": datetime.now(UTC).isoformat(),
        }
        write_card(out_dir, card)
        tracked.params({"listwise_target": card["listwise_target"]})
        version = tracker.registry().register(registered_name(collection), out_dir, tracked.run_id, {
            "stage": "sft", "prompt_variant": variant.name, "prompt_hash": variant.content_hash,
            "teacher_model": card["teacher_model"], "dagster_run_id": context.run.run_id, "dev_collection": dev_collection,
            **dev_tags(result.best_dev_ndcg, result.first_stage_dev_ndcg, result.first_stage_dev_p),
            **{f"data_version.{k}": v for k, v in data_versions.items()}})
    yield dg.MaterializeResult(
        metadata={"path": str(out_dir), "train_examples": len(examples), "optimizer_steps": result.optimizer_steps,
                  "epochs": result.epochs, "stop_reason": result.stop_reason, "seconds": round(result.seconds, 1),
                  "precision": result.precision, "trainable_parameters": result.trainable_parameters,
                  "best_dev_nDCG@10": result.best_dev_ndcg, "first_stage_dev_nDCG@10": result.first_stage_dev_ndcg,
                  "fusion_weight": result.fusion_weight, "listwise_target": card["listwise_target"],
                  "explanation_quality": dg.MetadataValue.json(card["explanation_quality"]),
                  "prompt_variant": variant.name, "prompt_hash": variant.content_hash,
                  "registered_version": version.uri, "mlflow_run_id": tracked.run_id},
        data_version=dg.DataVersion(weights_hash(out_dir)),
    )
    dev_facts = {"dev_queries": params["dev_queries_used"], "best_step": result.best_step,
                 "best_dev_nDCG@10": result.best_dev_ndcg,
                 "untrained_dev_nDCG@10": result.dev_curve[0]["dev_nDCG@10"] if result.dev_curve else None,
                 "first_stage_dev_nDCG@10": result.first_stage_dev_ndcg, "fused_dev_nDCG@10": result.fusion_dev_ndcg}
    for check, passed in ((LEARNED_CHECK, not result.kept_untrained), (FIRST_STAGE_CHECK, not result.below_first_stage)):
        yield dg.AssetCheckResult(check_name=check, passed=passed, severity=dg.AssetCheckSeverity.WARN,
                                  metadata=dev_facts)


@dg.asset(deps=[student_checkpoint, "train_pointwise"], kinds={"torch"}, code_version="5", **STUDENT_ASSET)
def student_rl_checkpoint(
    context: dg.AssetExecutionContext, home: RRHome, rl: dg.ResourceParam[RLSettings],
    student: dg.ResourceParam[StudentSettings], tracker: Tracker, collections: dg.ResourceParam[Collections],
) -> dg.MaterializeResult:
    """InteRank's second stage: GRPO on explain-then-score from the distilled checkpoint, with a KL
    penalty to it; the refined checkpoint is evaluated on the dev slice and registered."""
    collection, variant_name = collection_and_variant(context)
    sft_dir = home.dir("checkpoints") / checkpoint_name(collection, variant_name)
    out_dir = home.dir("checkpoints") / checkpoint_name(collection, variant_name, "rl")
    if not rl.enabled:
        shutil.rmtree(out_dir, ignore_errors=True)
        return dg.MaterializeResult(metadata={"enabled": False}, data_version=dg.DataVersion("disabled"))
    warehouse = home.warehouse()
    where = {"collection": collection, "prompt_variant": variant_name}
    examples = training_examples(warehouse, where, student.max_train_queries)
    precision = choose_precision(student.precision)
    sft_card = json.loads((sft_dir / CARD_FILE).read_text())
    log_line = throttled(context)
    with tracker.run(context, {**asdict(rl), "collection": collection, "prompt_variant": variant_name,
                               "precision_used": precision.name, "from_checkpoint": str(sft_dir)}) as tracked:

        def log(record: dict) -> None:
            tracked.metrics({k: v for k, v in record.items() if k != "step"}, record["step"])
            log_line(f"RL step {record['step']}: reward {record['reward']:.3f}, KL {record['kl']:.4f}")

        result = GRPORefiner(rl, precision, log).refine(sft_dir, examples, out_dir)
        dev = dev_set(warehouse, collections.source(collection).dev_from or collection, student)
        compared = evaluate_on_dev(StudentReranker.load(out_dir, precision, student.score_token_budget), dev,
                                   student.score_batch_size) if dev else None
        value = compared.ndcg if compared else None
        card = {**sft_card, "name": out_dir.name, "stage": "rl", "from_checkpoint": str(sft_dir), "rl_settings": asdict(rl),
                "rl_curve": result.curve, "rl_stop_reason": result.stop_reason, "dev_nDCG@10": value,
                "dagster_run_id": context.run.run_id, "mlflow_run_id": tracked.run_id,
                "created_at": datetime.now(UTC).isoformat()}
        write_card(out_dir, card)
        version = tracker.registry().register(registered_name(collection), out_dir, tracked.run_id, {
            "stage": "rl", "prompt_variant": variant_name, "prompt_hash": sft_card["prompt_hash"],
            "teacher_model": sft_card["teacher_model"], "dagster_run_id": context.run.run_id,
            "from_mlflow_run": sft_card["mlflow_run_id"],
            **dev_tags(value, *((compared.first_stage_ndcg, compared.p_value) if compared else (None, None)))})
    return dg.MaterializeResult(
        metadata={"enabled": True, "path": str(out_dir), "steps": result.steps, "seconds": round(result.seconds, 1),
                  "final_reward": result.curve[-1]["reward"] if result.curve else None,
                  "final_kl": result.curve[-1]["kl"] if result.curve else None, "dev_nDCG@10": value,
                  "registered_version": version.uri, "mlflow_run_id": tracked.run_id},
        data_version=dg.DataVersion(weights_hash(out_dir)),
    )


# A collection may be reranked by the student of another (`student_from`): its scores follow the
# variant's checkpoints of every collection.
ANY_COLLECTIONS_CHECKPOINT = dg.MultiPartitionMapping({
    "collection": dg.DimensionPartitionMapping("collection", dg.AllPartitionMapping()),
    "prompt_variant": dg.DimensionPartitionMapping("prompt_variant", dg.IdentityPartitionMapping()),
})


@dg.asset(deps=[dg.AssetDep(student_checkpoint, partition_mapping=ANY_COLLECTIONS_CHECKPOINT),
                dg.AssetDep(student_rl_checkpoint, partition_mapping=ANY_COLLECTIONS_CHECKPOINT),
                "first_stage_candidates", "splits"],
          kinds={"torch", "duckdb"}, code_version="2", **STUDENT_ASSET)
def student_scores(context: dg.AssetExecutionContext, home: RRHome, student: dg.ResourceParam[StudentSettings],
                   explain: dg.ResourceParam[ExplainSettings],
                   collections: dg.ResourceParam[Collections]) -> dg.MaterializeResult:
    """Each checkpoint (distilled, and RL-refined when there is one) of the collection's student
    (its own, or that of `student_from`) reranks every evaluation query's top candidates in score
    mode, and a fixed subset of the queries in explain mode too."""
    collection, variant_name = collection_and_variant(context)
    trained_on = collections.source(collection).trained_on
    warehouse = home.warehouse()
    rows = warehouse.query("ranked_candidates", {"collection": collection, "split": "eval",
                                                  "depth": student.rerank_depth, "queries": -1})
    explained_queries = sorted(rows["query_id"].unique(), key=lambda q: q)[: explain.queries]
    precision = choose_precision(student.precision)
    frames, timings = [], []
    log_line = throttled(context)
    for stage in ("sft", "rl"):
        folder = home.dir("checkpoints") / checkpoint_name(trained_on, variant_name, stage)
        if not (folder / STUDENT_FILE).exists():
            continue
        reranker = StudentReranker.load(folder, precision, student.score_token_budget)
        for mode in ("score", "explain"):
            subset = rows if mode == "score" else rows[rows["query_id"].isin(explained_queries)]
            if subset.empty:
                continue
            pairs = list(zip(subset["query"], subset["document"]))
            started = time.monotonic()

            def progress(done: int, total: int, stage=stage, mode=mode, started=started) -> None:
                rate = done / max(time.monotonic() - started, 1e-9)
                log_line(f"{stage}/{mode}: {done}/{total} pairs scored ({rate:.2f} pairs/s)")

            if mode == "score":
                scores = reranker.score(pairs, student.score_batch_size, progress)
                explanations = [None] * len(pairs)
            else:
                explained = reranker.explain(pairs, explain.max_new_tokens, explain.batch_size, progress)
                explanations, scores = [e for e, _ in explained], [s for _, s in explained]
            seconds = time.monotonic() - started
            log_line(f"{stage}/{mode}: scored {len(pairs)} pairs in {seconds:.0f} s ({len(pairs) / seconds:.2f} pairs/s)",
                     force=True)
            frame = subset[["query_id", "doc_id"]].copy()
            frame["score"], frame["explanation"] = scores, explanations
            frame["rank"] = frame.groupby("query_id")["score"].rank(ascending=False, method="first").astype(int)
            frame["stage"], frame["mode"], frame["checkpoint"] = stage, mode, folder.name
            frames.append(frame)
            timings.append({"stage": stage, "mode": mode, "pairs": len(pairs), "queries": int(subset["query_id"].nunique()),
                            "seconds": round(seconds, 2), "pairs_per_s": round(len(pairs) / seconds, 2)})
    frame = pd.concat(frames, ignore_index=True)
    frame.insert(0, "collection", collection)
    frame.insert(1, "prompt_variant", variant_name)
    where = {"collection": collection, "prompt_variant": variant_name}
    warehouse.replace_rows("student_scores", where, frame)
    timing_frame = pd.DataFrame(timings)
    timing_frame.insert(0, "collection", collection)
    timing_frame.insert(1, "prompt_variant", variant_name)
    timing_frame["precision"] = precision.name
    warehouse.replace_rows("scoring_runs", where, timing_frame)
    return dg.MaterializeResult(
        metadata={"pairs_scored": len(frame), "queries": int(rows["query_id"].nunique()),
                  "explain_mode_queries": len(explained_queries), "precision": precision.name,
                  "timings": dg.MetadataValue.json(timings), "seconds": round(sum(t["seconds"] for t in timings), 1)},
        data_version=dg.DataVersion(warehouse.table_hash("student_scores", where)),
    )


def best_registered(registry: StudentRegistry, home: RRHome, collection: str, variant: str) -> RegisteredVersion | None:
    """The better (by dev nDCG@10) of this partition's registered distilled and RL checkpoints."""
    found = []
    for stage in ("sft", "rl"):
        card = home.dir("checkpoints") / checkpoint_name(collection, variant, stage) / CARD_FILE
        if card.exists():
            version = registry.version_of_run(registered_name(collection), json.loads(card.read_text())["mlflow_run_id"])
            if version is not None and version.dev_ndcg is not None:
                found.append(version)
    return max(found, key=lambda v: v.dev_ndcg, default=None)


@dg.asset(deps=[student_checkpoint, student_rl_checkpoint], code_version="3", **STUDENT_ASSET,
          check_specs=[dg.AssetCheckSpec(FIRST_STAGE_GATE, asset="champion_candidate", blocking=True,
                                         description="On the dev slice the candidate alone ranks above the first stage, "
                                                     "with a paired t-test p below student.promotion_max_p; a failure "
                                                     "blocks the promotion"),
                       dg.AssetCheckSpec(CHAMPION_GATE, asset="champion_candidate", blocking=True,
                                         description="The candidate beats the registry's champion on dev: a larger "
                                                     "gain over the first stage, each on its own dev queries; a "
                                                     "failure blocks the promotion")])
def champion_candidate(context: dg.AssetExecutionContext, home: RRHome, tracker: Tracker,
                       student: dg.ResourceParam[StudentSettings]):
    """This variant's best checkpoint (distilled or RL-refined, by dev nDCG@10), set against the
    first stage on the dev slice and against the collection's current `champion` in the MLflow
    model registry: it may be promoted only when it beats both."""
    collection, variant_name = collection_and_variant(context)
    registry = tracker.registry()
    candidate = best_registered(registry, home, collection, variant_name)
    if candidate is None:
        raise dg.Failure(f"no registered checkpoint of {collection}/{variant_name} has a dev nDCG@10 (is there a dev slice?)")
    champion = registry.champion(candidate.name)
    beats_first_stage, beats = candidate.beats_first_stage(student.promotion_max_p), candidate.beats(champion)
    against_first_stage = {"candidate": candidate.uri, "candidate_dev_nDCG@10": candidate.dev_ndcg,
                           "first_stage_dev_nDCG@10": candidate.first_stage_dev_ndcg, "p": candidate.first_stage_p,
                           "max_p": student.promotion_max_p}
    against_champion = {"candidate": candidate.uri, "candidate_dev_nDCG@10": candidate.dev_ndcg,
                        "candidate_dev_gain": candidate.dev_gain, "champion": champion.uri if champion else None,
                        "champion_dev_nDCG@10": champion.dev_ndcg if champion else None,
                        "champion_dev_gain": champion.dev_gain if champion else None}
    yield dg.MaterializeResult(metadata={**against_first_stage, **against_champion, FIRST_STAGE_GATE: beats_first_stage,
                                         CHAMPION_GATE: beats}, data_version=dg.DataVersion(candidate.uri))
    yield dg.AssetCheckResult(check_name=FIRST_STAGE_GATE, passed=beats_first_stage, metadata=against_first_stage)
    yield dg.AssetCheckResult(check_name=CHAMPION_GATE, passed=beats, metadata=against_champion)


@dg.asset(deps=[champion_candidate], code_version="2", **STUDENT_ASSET)
def champion(context: dg.AssetExecutionContext, home: RRHome, tracker: Tracker) -> dg.MaterializeResult:
    """Moves the collection's `champion` alias to the candidate (runs only when both its checks passed).
    The alias is shared by the collection's variants: when another variant's candidate was promoted
    since this one was checked and this one no longer beats it, the champion stays (`promoted` is
    false in the metadata)."""
    collection, variant_name = collection_and_variant(context)
    registry = tracker.registry()
    candidate = best_registered(registry, home, collection, variant_name)
    current = registry.champion(candidate.name)
    promoted = candidate.beats(current)
    if promoted:
        registry.promote(candidate)
    else:
        context.log.info(f"{candidate.uri} (dev nDCG@10 {candidate.dev_ndcg}, gain {candidate.dev_gain}) does not "
                         f"beat the champion {current.uri} ({current.dev_ndcg}, gain {current.dev_gain}): it stays")
    holder = candidate if promoted else current
    return dg.MaterializeResult(metadata={"champion": holder.uri, "dev_nDCG@10": holder.dev_ndcg, "promoted": promoted,
                                          "candidate": candidate.uri, "candidate_dev_nDCG@10": candidate.dev_ndcg},
                                data_version=dg.DataVersion(holder.uri))
