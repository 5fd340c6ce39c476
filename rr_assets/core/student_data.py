"""The student's data as the warehouse holds it: a variant's training pairs, its comparison
preferences and listwise orders, the dev slice, and the held-out reasons its explanations are
measured against. Plain functions over a Warehouse, shared by the assets and benchmarks/."""

from __future__ import annotations

import json
from pathlib import Path

from rr_assets.core.explanation_quality import ExplanationQuality, explanation_quality
from rr_assets.core.reranker import StudentReranker
from rr_assets.core.settings import ExplainSettings, StudentSettings
from rr_assets.core.student_model import StudentExample
from rr_assets.core.training import DevSet
from rr_assets.core.warehouse import Warehouse


def dev_set(warehouse: Warehouse, collection: str, student: StudentSettings) -> DevSet | None:
    """The dev slice's top candidates and qrels (None when the collection has no dev queries)."""
    rows = warehouse.query("ranked_candidates", {"collection": collection, "split": "dev", "depth": student.rerank_depth,
                                                  "queries": student.dev_queries})
    if rows.empty:
        return None
    qrels: dict[str, dict[str, int]] = {}
    for r in warehouse.query("split_qrels", {"collection": collection, "split": "dev"}).itertuples():
        qrels.setdefault(r.query_id, {})[r.doc_id] = int(r.relevance)
    candidates = {q: [(r.doc_id, r.document, float(r.score)) for r in g.itertuples()]
                  for q, g in rows.groupby("query_id", sort=True)}
    return DevSet(dict(zip(rows["query_id"], rows["query"])), candidates, {q: qrels.get(q, {}) for q in candidates})


def training_examples(warehouse: Warehouse, where: dict[str, str], max_queries: int,
                      held_out_percent: int = 0) -> list[StudentExample]:
    """A variant's training pairs for the student (explanation "" where the teacher wrote none, or
    where it is held out for measuring the student's explanations)."""
    rows = warehouse.query("student_examples", {**where, "max_queries": max_queries, "held_out_percent": held_out_percent})
    return [StudentExample(r.query_id, r.doc_id, r.query, r.document, int(r.label), r.explanation)
            for r in rows.itertuples()]


def reasoning_targets(warehouse: Warehouse, where: dict[str, str]) -> tuple[frozenset, dict[str, list[list[str]]]]:
    """A variant's comparison preferences (query, preferred, other) and the teacher's listwise
    orders of each training query, for the pairwise and listwise losses."""
    preferences = frozenset(warehouse.query("comparison_preferences", where).itertuples(index=False, name=None))
    orders: dict[str, list[list[str]]] = {}
    for r in warehouse.query("teacher_orders", where).itertuples():
        orders.setdefault(r.query_id, []).append(json.loads(r.ranked_doc_ids))
    return preferences, orders


def held_out_explanation_quality(warehouse: Warehouse, where: dict[str, str], held_out_percent: int, checkpoint: Path,
                                 precision, explain: ExplainSettings) -> ExplanationQuality | None:
    """The trained student's explanations (explain mode) of held-out pairs against the teacher's
    reasons for them; None when the variant holds none out."""
    if held_out_percent <= 0 or explain.quality_pairs <= 0:
        return None
    rows = warehouse.query("held_out_reasons", {**where, "held_out_percent": held_out_percent,
                                                "pairs": explain.quality_pairs})
    if rows.empty:
        return None
    explained = StudentReranker.load(checkpoint, precision).explain(list(zip(rows["query"], rows["document"])),
                                                               explain.max_new_tokens, explain.batch_size)
    return explanation_quality([e for e, _ in explained], list(rows["explanation"]))
