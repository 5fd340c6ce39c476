"""Ranking metrics through ir-measures (pytrec_eval underneath)."""

from __future__ import annotations

import ir_measures
from ir_measures import RR, R, nDCG

MEASURES = {"nDCG@10": nDCG @ 10, "nDCG@5": nDCG @ 5, "RR@10": RR @ 10, "R@100": R @ 100}


def evaluate(qrels: dict[str, dict[str, int]], run: dict[str, dict[str, float]]) -> dict[str, float]:
    """Mean of each measure over the queries that have qrels (ir-measures scores a query that is
    missing from the run as 0)."""
    aggregate = ir_measures.calc_aggregate(list(MEASURES.values()), qrels, run)
    return {name: float(aggregate.get(measure, 0.0)) for name, measure in MEASURES.items()}


def reranked(base_run: dict[str, dict[str, float]], new_scores: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
    """Rerank the top of each base list by new scores; documents without a new score keep their
    base order below the reranked ones."""
    run = {}
    for query_id, docs in base_run.items():
        ordered = sorted(docs, key=lambda d: -docs[d])
        top = new_scores.get(query_id, {})
        head = sorted((d for d in ordered if d in top), key=lambda d: (-top[d], ordered.index(d)))
        tail = [d for d in ordered if d not in top]
        total = len(ordered)
        run[query_id] = {d: float(total - i) for i, d in enumerate(head + tail)}
    return run
