"""Stage 7: metrics of every system on the held-out queries, report.md and a plot."""

import json

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


def _system_name(kind: str, variant: str, primary: str) -> str:
    return kind if variant == primary else f"{kind}:{variant}"


@dg.asset(deps=["student_scores", "teacher_judgments", "teacher_rankings", "teacher_injection_probe", "bm25_candidates",
                "qrels", "splits"],
          partitions_def=collection_partitions, group_name="benchmark", kinds={"ir_measures", "mlflow"})
def benchmark_report(
    context: dg.AssetExecutionContext, home: RRHome, bm25: BM25Settings, teacher: TeacherResource, tracker: Tracker
) -> dg.MaterializeResult:
    """nDCG@10/5, RR@10 and R@100 of BM25 and, per prompt variant, the teacher's direct labels,
    its listwise order and the student, each reranking BM25; the first configured variant's
    systems are named `teacher`, `teacher_listwise` and `student`, others get `:<variant>`."""
    collection = context.partition_key
    warehouse = home.warehouse()
    params = {"collection": collection}
    candidates = warehouse.fetch_df(named_sql("eval_candidates"), {**params, "depth": bm25.depth})
    qrels = _nested(warehouse.fetch_df(named_sql("eval_qrels"), params), "relevance", int)
    bm25_run = _nested(candidates, "score")
    eval_queries = set(bm25_run)
    systems = {"bm25": evaluate(qrels, bm25_run)}
    variants = teacher.variant_names()
    primary = variants[0]
    judgments = warehouse.fetch_df(
        "SELECT j.prompt_variant, j.query_id, j.doc_id, j.label, j.explanation, q.text AS query "
        "FROM teacher_judgments j JOIN queries q USING (collection, query_id) "
        "WHERE j.collection = ? AND j.label IS NOT NULL ORDER BY j.query_id, j.doc_id", [collection])
    judgments = judgments[judgments["query_id"].isin(eval_queries)]
    rankings = warehouse.fetch_df(
        "SELECT DISTINCT prompt_variant, query_id, final_doc_ids FROM teacher_rankings WHERE collection = ?",
        [collection])
    student = warehouse.fetch_df(
        "SELECT checkpoint, query_id, doc_id, score FROM student_scores WHERE collection = ?", [collection])
    judged_queries = 0
    for variant in variants:
        labels = _nested(judgments[judgments["prompt_variant"] == variant], "label")
        if labels:
            systems[_system_name("teacher", variant, primary)] = evaluate(qrels, reranked(bm25_run, labels))
            judged_queries = max(judged_queries, len(labels))
        orders = {r.query_id: json.loads(r.final_doc_ids)
                  for r in rankings[rankings["prompt_variant"] == variant].itertuples() if r.query_id in eval_queries}
        if orders:
            listwise = {q: {d: float(len(docs) - i) for i, d in enumerate(docs)} for q, docs in orders.items()}
            systems[_system_name("teacher_listwise", variant, primary)] = evaluate(qrels, reranked(bm25_run, listwise))
        scores = student[student["checkpoint"] == f"{collection}-{variant}"]
        if len(scores):
            systems[_system_name("student", variant, primary)] = evaluate(qrels, reranked(bm25_run, _nested(scores, "score")))
    notes = [
        f"Rerankers reorder the BM25 top-k; documents below keep BM25 order. The teacher judged "
        f"{judged_queries} of {len(eval_queries)} evaluation queries (top {teacher.depth} candidates).",
        f"Prompt variants: {', '.join(variants)} (unsuffixed systems: {primary}); teacher model {teacher.model}.",
    ]
    probe = warehouse.fetch_df(
        "SELECT prompt_variant, count(*) AS pairs, avg(coalesce(injected_label, clean_label) - clean_label) AS shift, "
        "avg(CASE WHEN coalesce(injected_label, clean_label) > clean_label THEN 1.0 ELSE 0.0 END) AS raised "
        "FROM injection_probe WHERE collection = ? GROUP BY prompt_variant ORDER BY prompt_variant", [collection])
    injection = [f"{r.prompt_variant}: {r.pairs} judged pairs re-judged with planted instructions; mean label shift "
                 f"{r.shift:+.2f}, labels raised in {r.raised:.0%} of pairs" for r in probe.itertuples()]
    samples = [Sample(f"teacher ({r.prompt_variant})", r.query, r.doc_id, str(r.label), r.explanation)
               for r in judgments.head(5).itertuples()]
    with tracker.run(context, {"collection": collection, "prompt_variants": ",".join(variants)}) as tracked:
        paths = write_report(home.dir("reports", collection), collection, systems, len(qrels),
                             {"Notes": notes, "Prompt injection": injection}, samples)
        for system, values in systems.items():
            tracked.metrics({f"{system.replace(':', '.')}.{k}": v for k, v in values.items()})
        for path in paths.values():
            tracked.artifact(path)
    return dg.MaterializeResult(
        metadata={"metrics": dg.MetadataValue.json(systems), "queries": len(qrels),
                  "report": dg.MetadataValue.path(str(paths["report"])), "mlflow_run_id": tracked.run_id,
                  "nDCG@10": dg.MetadataValue.json({k: round(v["nDCG@10"], 4) for k, v in systems.items()})},
    )
