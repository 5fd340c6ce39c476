import pytest

from rr_assets.core.compared_systems import FirstStage, FusedReranker, OrderedReranker, ScoredReranker, evaluate_systems

pytestmark = pytest.mark.unit

# Three queries; the first stage puts the relevant document second each time.
QRELS = {q: {f"{q}-good": 1} for q in ("q1", "q2", "q3")}
FIRST_STAGE = {q: {f"{q}-bad": 2.0, f"{q}-good": 1.0, f"{q}-other": 0.5} for q in QRELS}


def by_name(results):
    return {r.name: r for r in results}


def test_each_system_reranks_the_first_stage():
    first = FirstStage("bm25")
    assert first.run(FIRST_STAGE) is FIRST_STAGE
    scored = ScoredReranker("student", scores={"q1": {"q1-good": 0.9, "q1-bad": 0.1}})
    assert max(scored.run(FIRST_STAGE)["q1"], key=scored.run(FIRST_STAGE)["q1"].get) == "q1-good"
    ordered = OrderedReranker("teacher", orders={"q1": ["q1-other", "q1-good", "q1-bad"]})
    run = ordered.run(FIRST_STAGE)["q1"]
    assert sorted(run, key=lambda d: -run[d]) == ["q1-other", "q1-good", "q1-bad"]
    fused = FusedReranker("fused", scores={"q1": {"q1-good": 1.0, "q1-bad": 0.0}}, weight=1.0).run(FIRST_STAGE)["q1"]
    assert max(fused, key=fused.get) == "q1-good"


def test_evaluate_systems_compares_each_with_the_first_stage_on_its_queries():
    perfect = {q: {f"{q}-good": 1.0, f"{q}-bad": 0.0} for q in QRELS}
    results = by_name(evaluate_systems(QRELS, FIRST_STAGE, [
        FirstStage("bm25"),
        ScoredReranker("student", scores=perfect, rerank_depth=3, pairs_per_s=12.5, note="n"),
        ScoredReranker("teacher", queries=frozenset({"q1", "q2"}), scores=perfect),
        ScoredReranker("worse", scores={q: {f"{q}-other": 1.0, f"{q}-bad": 0.5, f"{q}-good": 0.0} for q in QRELS}),
    ]))
    assert results["bm25"].versus_first_stage is None and results["bm25"].queries == 3
    assert results["bm25"].metrics["nDCG@10"] < 1.0

    student = results["student"]
    assert student.metrics["nDCG@10"] == pytest.approx(1.0) and student.metrics["RR@10"] == pytest.approx(1.0)
    assert (student.rerank_depth, student.pairs_per_s, student.note) == (3, 12.5, "n")
    assert (student.versus_first_stage.wins, student.versus_first_stage.losses) == (3, 0)

    teacher = results["teacher"]
    assert teacher.queries == 2 and teacher.versus_first_stage.queries == 2 and teacher.versus_first_stage.wins == 2

    worse = results["worse"].versus_first_stage
    assert (worse.wins, worse.losses) == (0, 3) and worse.mean_difference < 0
