"""Ranking metrics through ir-measures (pytrec_eval underneath), per-query comparisons and paired
significance tests."""

from __future__ import annotations

from dataclasses import dataclass

import ir_measures
import numpy as np
import pandas as pd
from ir_measures import RR, R, nDCG
from scipy import stats

MEASURES = {"nDCG@10": nDCG @ 10, "nDCG@5": nDCG @ 5, "RR@10": RR @ 10, "R@100": R @ 100}


def evaluate(qrels: dict[str, dict[str, int]], run: dict[str, dict[str, float]]) -> dict[str, float]:
    """Mean of each measure over the queries that have qrels (a query missing from the run scores 0)."""
    aggregate = ir_measures.calc_aggregate(list(MEASURES.values()), qrels, run)
    return {name: float(aggregate.get(measure, 0.0)) for name, measure in MEASURES.items()}


def per_query(qrels: dict[str, dict[str, int]], run: dict[str, dict[str, float]], measure: str = "nDCG@10") -> dict[str, float]:
    """The measure for every query that has qrels (0 for a query missing from the run)."""
    values = {m.query_id: float(m.value) for m in ir_measures.iter_calc([MEASURES[measure]], qrels, run)}
    return {q: values.get(q, 0.0) for q in qrels}


def ndcg_at_10(qrels: dict[str, dict[str, int]], run: dict[str, dict[str, float]]) -> float:
    return evaluate(qrels, run)["nDCG@10"]


def reranked(base_run: dict[str, dict[str, float]], new_scores: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
    """Rerank the top of each base list by new scores; documents without a new score keep their
    base order below the reranked ones."""
    run = {}
    for query_id, docs in base_run.items():
        ordered = sorted(docs, key=lambda d: -docs[d])
        position = {d: i for i, d in enumerate(ordered)}
        top = new_scores.get(query_id, {})
        head = sorted((d for d in ordered if d in top), key=lambda d: (-top[d], position[d]))
        tail = [d for d in ordered if d not in top]
        run[query_id] = {d: float(len(ordered) - i) for i, d in enumerate(head + tail)}
    return run


@dataclass(frozen=True)
class Comparison:
    """A system against a baseline on the same queries: per-query wins, ties and losses on the
    measure, and two-sided paired tests (t-test and a randomization test)."""

    queries: int
    wins: int
    ties: int
    losses: int
    mean_difference: float
    p_value_t: float
    p_value_randomization: float


def compare(system: dict[str, float], baseline: dict[str, float], permutations: int = 10_000, seed: int = 0,
            tie_tolerance: float = 1e-9) -> Comparison:
    """Paired comparison over the queries both have."""
    queries = sorted(set(system) & set(baseline))
    diff = np.array([system[q] - baseline[q] for q in queries])
    wins, losses = int((diff > tie_tolerance).sum()), int((diff < -tie_tolerance).sum())
    if len(diff) < 2 or not np.any(np.abs(diff) > tie_tolerance):
        return Comparison(len(queries), wins, len(queries) - wins - losses, losses, float(diff.mean()) if len(diff) else 0.0,
                          1.0, 1.0)
    p_t = float(stats.ttest_rel([system[q] for q in queries], [baseline[q] for q in queries]).pvalue)
    rng = np.random.default_rng(seed)
    signs = rng.choice([-1.0, 1.0], size=(permutations, len(diff)))
    observed = abs(diff.mean())
    p_random = float((np.abs((signs * diff).mean(axis=1)) >= observed - 1e-12).sum() + 1) / (permutations + 1)
    return Comparison(len(queries), wins, len(queries) - wins - losses, losses, float(diff.mean()), p_t, p_random)


def nested(frame: pd.DataFrame, value: str, cast=float) -> dict:
    """{query_id: {doc_id: value}} from a frame with query_id and doc_id columns."""
    result: dict = {}
    for row in frame.itertuples():
        result.setdefault(row.query_id, {})[row.doc_id] = cast(getattr(row, value))
    return result
