import pytest

from rr_assets.core.metrics import evaluate, reranked

pytestmark = pytest.mark.unit


def test_reranked_moves_only_scored_documents_to_the_top():
    base = {"q": {"a": 3.0, "b": 2.0, "c": 1.0}}
    run = reranked(base, {"q": {"b": 0.9, "c": 0.1}})
    assert sorted(run["q"], key=lambda d: -run["q"][d]) == ["b", "c", "a"]


def test_evaluate_with_perfect_and_reversed_runs():
    qrels = {"q1": {"a": 2, "b": 1}, "q2": {"c": 1}}
    perfect = evaluate(qrels, {"q1": {"a": 2.0, "b": 1.0, "x": 0.0}, "q2": {"c": 1.0}})
    assert perfect["nDCG@10"] == pytest.approx(1.0) and perfect["RR@10"] == pytest.approx(1.0)
    missing_query = evaluate(qrels, {"q1": {"a": 2.0, "b": 1.0}})
    assert missing_query["RR@10"] == pytest.approx(0.5)
    assert set(perfect) == {"nDCG@10", "nDCG@5", "RR@10", "R@100"}
