"""Which candidates the comparison and listwise teachers see: documented, seeded strategies."""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True)
class ComparisonPair:
    query_id: str
    doc_a: str
    doc_b: str
    reason: str  # "adjacent" or "label_disagreement"
    swapped: bool = False  # True for the repeated request with A and B exchanged


def comparison_pairs(
    ranked: dict[str, list[str]], direct_labels: dict[str, dict[str, int]], max_pairs_per_query: int,
    swap_fraction: float, seed: int,
) -> list[ComparisonPair]:
    """Per query: adjacent BM25 ranks (1-2, 2-3, ...) first, then pairs whose direct labels differ
    (largest difference first), at most `max_pairs_per_query`; a seeded sample of
    `swap_fraction` of them is also asked with A and B swapped, to measure position bias."""
    rng = random.Random(seed)
    pairs: list[ComparisonPair] = []
    for query_id in sorted(ranked):
        docs = ranked[query_id]
        labels = direct_labels.get(query_id, {})
        labelled = [d for d in docs if d in labels]
        disagreeing = sorted(
            ((a, b) for i, a in enumerate(labelled) for b in labelled[i + 1 :] if labels[a] != labels[b]),
            key=lambda ab: -abs(labels[ab[0]] - labels[ab[1]]),
        )
        chosen: list[ComparisonPair] = []
        seen: set[frozenset] = set()
        for (a, b), reason in [*((p, "adjacent") for p in zip(docs, docs[1:])),
                               *((p, "label_disagreement") for p in disagreeing)]:
            if a != b and frozenset((a, b)) not in seen and len(chosen) < max_pairs_per_query:
                seen.add(frozenset((a, b)))
                chosen.append(ComparisonPair(query_id, a, b, reason))
        pairs += chosen
        pairs += [ComparisonPair(p.query_id, p.doc_b, p.doc_a, p.reason, swapped=True)
                  for p in chosen if rng.random() < swap_fraction]
    return pairs


def sliding_windows(length: int, size: int, stride: int) -> list[tuple[int, int]]:
    """RankGPT's windows, from the bottom of the list to the top: [(start, end), ...]."""
    if size <= 0 or stride <= 0:
        raise ValueError("window size and stride must be positive")
    windows, end = [], length
    while True:
        start = max(0, end - size)
        windows.append((start, end))
        if start == 0:
            return windows
        end -= stride
