"""Every system in a benchmark answers one question, as rank_llm's Reranker facade does: "rerank
these first-stage candidates". A new system is one small class."""

from __future__ import annotations

from dataclasses import dataclass, field

from rr_assets.core.fusion import fuse
from rr_assets.core.metrics import Comparison, compare, evaluate, per_query, reranked

Run = dict[str, dict[str, float]]


@dataclass
class System:
    """A named reranker of the first stage; `queries` are the evaluation queries it covers (None =
    all of them), `rerank_depth` how deep it reorders, `pairs_per_s` its measured speed."""

    name: str
    queries: frozenset[str] | None = None
    rerank_depth: int | None = None
    pairs_per_s: float | None = None
    note: str = ""

    def run(self, first_stage: Run) -> Run:
        raise NotImplementedError


@dataclass
class FirstStage(System):
    def run(self, first_stage: Run) -> Run:
        return first_stage


@dataclass
class ScoredReranker(System):
    """Reorders each query's scored candidates by score; the rest keep first-stage order below."""

    scores: Run = field(default_factory=dict)

    def run(self, first_stage: Run) -> Run:
        return reranked(first_stage, self.scores)


@dataclass
class OrderedReranker(System):
    """Reorders each query's candidates into a given order (a listwise teacher's)."""

    orders: dict[str, list[str]] = field(default_factory=dict)

    def run(self, first_stage: Run) -> Run:
        return reranked(first_stage, {q: {d: float(len(docs) - i) for i, d in enumerate(docs)}
                                      for q, docs in self.orders.items()})


@dataclass
class FusedReranker(System):
    """Min–max score interpolation with the first stage, at a weight chosen on the dev slice."""

    scores: Run = field(default_factory=dict)
    weight: float = 0.5

    def run(self, first_stage: Run) -> Run:
        return fuse(first_stage, self.scores, self.weight)


@dataclass(frozen=True)
class SystemResult:
    name: str
    metrics: dict[str, float]
    queries: int
    rerank_depth: int | None
    pairs_per_s: float | None
    note: str
    versus_first_stage: Comparison | None  # on the same queries; None for the first stage itself


def evaluate_systems(qrels: dict[str, dict[str, int]], first_stage: Run, systems: list[System]) -> list[SystemResult]:
    """Metrics of each system on the queries it covers, and a paired comparison of its nDCG@10
    with the first stage's on exactly those queries."""
    baseline = per_query(qrels, first_stage)
    results = []
    for system in systems:
        scope = {q: r for q, r in qrels.items() if system.queries is None or q in system.queries}
        run = system.run(first_stage)
        versus = None if isinstance(system, FirstStage) else compare(per_query(scope, run), {q: baseline[q] for q in scope})
        results.append(SystemResult(system.name, evaluate(scope, run), len(scope), system.rerank_depth,
                                    system.pairs_per_s, system.note, versus))
    return results

