"""Fusion of a reranker with its first stage: per-query min–max normalised score interpolation,
with the weight chosen on the dev slice (never on evaluation queries)."""

from __future__ import annotations

from rr_assets.core.metrics import compare, ndcg_at_10, per_query

FUSION_GRID = tuple(round(0.05 * i, 2) for i in range(21))


def _minmax(scores: dict[str, float]) -> dict[str, float]:
    low, high = min(scores.values()), max(scores.values())
    return {d: (s - low) / (high - low) if high > low else 0.0 for d, s in scores.items()}


def fuse(first_stage: dict[str, dict[str, float]], reranker: dict[str, dict[str, float]],
         weight: float) -> dict[str, dict[str, float]]:
    """weight · reranker + (1 − weight) · first stage, both min–max normalised per query over the
    reranked documents; documents the reranker did not score keep their first-stage order below."""
    run = {}
    for query_id, docs in first_stage.items():
        scored = {d: s for d, s in reranker.get(query_id, {}).items() if d in docs}
        if not scored:
            run[query_id] = dict(docs)
            continue
        first = _minmax({d: docs[d] for d in scored})
        second = _minmax(scored)
        fused = {d: weight * second[d] + (1 - weight) * first[d] for d in scored}
        tail = sorted((d for d in docs if d not in scored), key=lambda d: -docs[d])
        run[query_id] = {**{d: 2.0 + v for d, v in fused.items()}, **{d: 1.0 - i / (len(tail) + 1) for i, d in enumerate(tail)}}
    return run


def choose_fusion_weight(qrels: dict[str, dict[str, int]], first_stage: dict[str, dict[str, float]],
                         reranker: dict[str, dict[str, float]], max_p: float = 1.0) -> tuple[float, float]:
    """(weight, nDCG@10) of the grid weight that does best on these (dev) queries; ties go to the
    weight nearest 0.5. The first stage alone (weight 0) unless the best fusion's gain over it has
    a paired t-test p below `max_p` (1.0: any gain will do)."""
    results = [(ndcg_at_10(qrels, fuse(first_stage, reranker, w)), -abs(w - 0.5), w) for w in FUSION_GRID]
    value, _, weight = max(results)
    if max_p < 1.0 and weight > 0.0:
        gain = compare(per_query(qrels, fuse(first_stage, reranker, weight)), per_query(qrels, first_stage))
        if not (gain.mean_difference > 0 and gain.p_value_t < max_p):
            return 0.0, ndcg_at_10(qrels, first_stage)
    return weight, value
