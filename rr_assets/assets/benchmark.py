"""Stage 7: metrics of every system on the held-out queries, report.md and a plot."""

import dagster as dg

from rr_assets.core.metrics import evaluate, reranked
from rr_assets.core.reports import Sample, write_report
from rr_assets.core.warehouse import named_sql
from rr_assets.partitions import collection_partitions
from rr_assets.resources import BM25Settings, RRHome, TeacherResource, Tracker


def _nested(frame, value: str, cast=float) -> dict:
    """{query_id: {doc_id: value}} from a frame with query_id and doc_id columns."""
    result: dict = {}
    for row in frame.itertuples():
        result.setdefault(row.query_id, {})[row.doc_id] = cast(getattr(row, value))
    return result


@dg.asset(deps=["student_scores", "teacher_judgments", "bm25_candidates", "qrels", "splits"],
          partitions_def=collection_partitions, group_name="benchmark", kinds={"ir_measures", "mlflow"})
def benchmark_report(
    context: dg.AssetExecutionContext, home: RRHome, bm25: BM25Settings, teacher: TeacherResource, tracker: Tracker
) -> dg.MaterializeResult:
    """nDCG@10/5, RR@10 and R@100 of BM25, the teacher's labels and the student, reranking BM25."""
    collection = context.partition_key
    variant = teacher.variant()
    warehouse = home.warehouse()
    params = {"collection": collection}
    candidates = warehouse.fetch_df(named_sql("eval_candidates"), {**params, "depth": bm25.depth})
    qrels = _nested(warehouse.fetch_df(named_sql("eval_qrels"), params), "relevance", int)
    bm25_run = _nested(candidates, "score")
    judgments = warehouse.fetch_df(
        "SELECT j.query_id, j.doc_id, j.label, j.explanation, q.text AS query FROM teacher_judgments j "
        "JOIN queries q USING (collection, query_id) "
        "WHERE j.collection = ? AND j.prompt_variant = ? AND j.label IS NOT NULL",
        [collection, variant.name],
    )
    eval_queries = set(bm25_run)
    teacher_labels = _nested(judgments[judgments["query_id"].isin(eval_queries)], "label")
    student = warehouse.fetch_df(
        "SELECT query_id, doc_id, score FROM student_scores WHERE collection = ? AND checkpoint = ?",
        [collection, f"{collection}-{variant.name}"],
    )
    systems = {"bm25": evaluate(qrels, bm25_run)}
    if teacher_labels:
        systems["teacher"] = evaluate(qrels, reranked(bm25_run, teacher_labels))
    if len(student):
        systems["student"] = evaluate(qrels, reranked(bm25_run, _nested(student, "score")))
    notes = [
        f"Rerankers reorder the BM25 top-k (teacher: top {teacher.depth} of the queries it judged, "
        f"{len(teacher_labels)} of {len(eval_queries)}); documents below keep BM25 order.",
        f"Prompt variant {variant.name} ({variant.content_hash}), teacher model {teacher.model}.",
    ]
    samples = [Sample("teacher", r.query, r.doc_id, str(r.label), r.explanation)
               for r in judgments[judgments["query_id"].isin(eval_queries)].head(5).itertuples()]
    with tracker.run(context, {"collection": collection, "prompt_variant": variant.name}) as tracked:
        paths = write_report(home.dir("reports", collection), collection, systems, len(qrels), notes, samples)
        for system, values in systems.items():
            tracked.metrics({f"{system}.{k}": v for k, v in values.items()})
        for path in paths.values():
            tracked.artifact(path)
    return dg.MaterializeResult(
        metadata={"metrics": dg.MetadataValue.json(systems), "queries": len(qrels),
                  "report": dg.MetadataValue.path(str(paths["report"])), "mlflow_run_id": tracked.run_id,
                  "nDCG@10": dg.MetadataValue.json({k: round(v["nDCG@10"], 4) for k, v in systems.items()})},
    )
