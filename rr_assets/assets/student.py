"""Stage 6: the LoRA student: base model folder, checkpoint, and its scores on held-out queries."""

import json
import time
from dataclasses import asdict
from datetime import datetime, timezone

import dagster as dg
import pandas as pd

from rr_assets.core.retrieval import Candidate, write_trec_run
from rr_assets.core.scoring import StudentReranker
from rr_assets.core.student_format import StudentExample
from rr_assets.core.training import train_lora
from rr_assets.core.warehouse import named_sql
from rr_assets.partitions import collection_and_variant, collection_variant_partitions
from rr_assets.resources import RRHome, StudentSettings, TeacherResource, Tracker


@dg.asset(group_name="student", kinds={"transformers"})
def student_base_model(student: StudentSettings) -> dg.MaterializeResult:
    """A local transformers folder of the base model; the embedded GGUF is dequantized once."""
    started = time.monotonic()
    folder = student.prepare_base_model()
    return dg.MaterializeResult(
        metadata={"path": str(folder), "base_model": student.base_model, "seconds": round(time.monotonic() - started, 1)},
        data_version=dg.DataVersion(f"{student.base_model}:{folder}"),
    )


def checkpoint_name(collection: str, variant: str) -> str:
    return f"{collection}-{variant}"


@dg.asset(deps=["train_pointwise", "train_pairwise", "train_listwise", student_base_model],
          partitions_def=collection_variant_partitions, group_name="student", kinds={"peft", "torch"})
def student_checkpoint(
    context: dg.AssetExecutionContext, home: RRHome, student: StudentSettings, teacher: TeacherResource, tracker: Tracker
) -> dg.MaterializeResult:
    """LoRA adapter trained with α·pairwise + β·listwise + γ·generation losses; card.json records
    the prompt variant, teacher and the data versions it was trained on."""
    collection, variant_name = collection_and_variant(context)
    variant = teacher.variant(variant_name)
    warehouse = home.warehouse()
    where = {"collection": collection, "prompt_variant": variant.name}
    rows = warehouse.fetch_df(
        "SELECT * FROM train_pointwise WHERE collection = ? AND prompt_variant = ? ORDER BY query_id, doc_id",
        [collection, variant.name],
    )
    examples = [StudentExample(r.query_id, r.doc_id, r.query, r.document, int(r.label), r.explanation)
                for r in rows.itertuples()]
    settings = student.train_settings(variant.labels)
    compared = warehouse.fetch_df(
        "SELECT query_id, preferred_doc_id, other_doc_id FROM train_pairwise "
        "WHERE collection = ? AND prompt_variant = ? AND source = 'comparison'", [collection, variant.name])
    preferences = frozenset(compared.itertuples(index=False, name=None))
    name = checkpoint_name(collection, variant.name)
    out_dir = home.dir("checkpoints") / name
    data_versions = {
        "train_pointwise": warehouse.table_hash("train_pointwise", where),
        "train_pairwise": warehouse.table_hash("train_pairwise", where),
        "train_listwise": warehouse.table_hash("train_listwise", where),
        "teacher_judgments": warehouse.table_hash("teacher_judgments", where),
        "corpus": warehouse.table_hash("corpus", {"collection": collection}),
    }
    params = {**asdict(settings), "collection": collection, "prompt_variant": variant.name,
              "prompt_hash": variant.content_hash, "teacher_model": teacher.model, "base_model": student.base_model,
              "train_examples": len(examples), "comparison_preferences": len(preferences)}
    base_dir = student.prepare_base_model()
    with tracker.run(context, params) as tracked:

        def log_step(record: dict) -> None:
            context.log.info(f"train {record}")
            tracked.metrics({k: v for k, v in record.items() if k != "step"}, record["step"])

        result = train_lora(base_dir, examples, settings, out_dir, log=log_step, preferences=preferences)
        card = {
            "name": name, "collection": collection, "base_model": student.base_model,
            "base_model_dir": str(base_dir), "prompt_variant": variant.name,
            "prompt_hash": variant.content_hash, "teacher_model": teacher.model,
            "teacher_endpoint": teacher.endpoint_label(), "data_versions": data_versions,
            "train_examples": len(examples), "comparison_preferences": len(preferences),
            "train_settings": asdict(settings), "losses": result.losses,
            "device": result.device, "seconds": round(result.seconds, 1),
            "dagster_run_id": context.run.run_id, "dagster_home": context.instance.root_directory,
            "rr_home": home.path, "mlflow_run_id": tracked.run_id,
            "created_at": datetime.now(timezone.utc).isoformat(),
        }
        (out_dir / "card.json").write_text(json.dumps(card, indent=2))
        tracked.artifact(out_dir / "card.json")
    final = result.losses[-1]
    return dg.MaterializeResult(
        metadata={"path": str(out_dir), "train_examples": len(examples), "steps": result.steps,
                  "final_loss": final["loss"], "seconds": round(result.seconds, 1), "device": result.device,
                  "trainable_parameters": result.trainable_parameters, "prompt_variant": variant.name,
                  "prompt_hash": variant.content_hash, "mlflow_run_id": tracked.run_id},
        data_version=dg.DataVersion(f"{data_versions['train_pointwise']}:{context.run.run_id}"),
    )


@dg.asset(deps=[student_checkpoint, "bm25_candidates", "splits"], partitions_def=collection_variant_partitions,
          group_name="student", kinds={"torch", "duckdb"})
def student_scores(context: dg.AssetExecutionContext, home: RRHome, student: StudentSettings) -> dg.MaterializeResult:
    """Score-mode reranking of each evaluation query's top candidates by the student."""
    collection, variant_name = collection_and_variant(context)
    name = checkpoint_name(collection, variant_name)
    warehouse = home.warehouse()
    rows = warehouse.fetch_df(named_sql("eval_candidates"), {"collection": collection, "depth": student.rerank_depth})
    reranker = StudentReranker(home.dir("checkpoints") / name)
    started = time.monotonic()
    records = []
    for query_id, group in rows.groupby("query_id", sort=True):
        scored = reranker.score(group["query"].iloc[0], list(zip(group["doc_id"], group["document"])), student.batch_size)
        ranked = sorted(scored, key=lambda s: -s.score)
        records += [{"query_id": query_id, "doc_id": s.doc_id, "score": s.score, "rank": i}
                    for i, s in enumerate(ranked, start=1)]
    seconds = time.monotonic() - started
    frame = pd.DataFrame(records, columns=["query_id", "doc_id", "score", "rank"])
    frame.insert(0, "collection", collection)
    frame.insert(1, "checkpoint", name)
    warehouse.replace_rows("student_scores", {"collection": collection, "checkpoint": name}, frame)
    write_trec_run([Candidate(r.query_id, r.doc_id, r.rank, r.score) for r in frame.itertuples()],
                   home.dir("runs", collection) / f"student-{variant_name}.trec", f"student-{variant_name}")
    return dg.MaterializeResult(
        metadata={"pairs_scored": len(frame), "queries": int(frame["query_id"].nunique()), "checkpoint": name,
                  "seconds": round(seconds, 1), "pairs_per_second": round(len(frame) / max(seconds, 1e-9), 2)},
        data_version=dg.DataVersion(warehouse.table_hash("student_scores", {"collection": collection, "checkpoint": name})),
    )
