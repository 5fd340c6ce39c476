import pytest

from rr_assets.core.metrics import compare, evaluate, ndcg_at_10, per_query, reranked

pytestmark = pytest.mark.unit


def test_reranked_moves_only_scored_documents_to_the_top():
    base = {"q": {"a": 3.0, "b": 2.0, "c": 1.0}}
    run = reranked(base, {"q": {"b": 0.9, "c": 0.1}})
    assert sorted(run["q"], key=lambda d: -run["q"][d]) == ["b", "c", "a"]
    assert reranked(base, {}) == {"q": {"a": 3.0, "b": 2.0, "c": 1.0}}


def test_evaluate_with_perfect_and_reversed_runs():
    qrels = {"q1": {"a": 2, "b": 1}, "q2": {"c": 1}}
    perfect = evaluate(qrels, {"q1": {"a": 2.0, "b": 1.0, "x": 0.0}, "q2": {"c": 1.0}})
    assert perfect["nDCG@10"] == pytest.approx(1.0) and perfect["RR@10"] == pytest.approx(1.0)
    missing_query = evaluate(qrels, {"q1": {"a": 2.0, "b": 1.0}})
    assert missing_query["RR@10"] == pytest.approx(0.5)
    assert set(perfect) == {"nDCG@10", "nDCG@5", "RR@10", "R@100"}
    reversed_run = {"q1": {"x": 3.0, "b": 2.0, "a": 1.0}, "q2": {"c": 1.0}}
    assert ndcg_at_10(qrels, reversed_run) < 1.0


def test_per_query_scores_every_judged_query():
    qrels = {"q1": {"a": 1}, "q2": {"c": 1}}
    values = per_query(qrels, {"q1": {"x": 2.0, "a": 1.0}})
    assert values["q2"] == 0.0 and 0.0 < values["q1"] < 1.0
    assert per_query(qrels, {"q1": {"x": 2.0, "a": 1.0}}, "RR@10")["q1"] == pytest.approx(0.5)


BASELINE = {f"q{i:02d}": 0.3 + 0.02 * i for i in range(20)}


def test_identical_runs_tie_everywhere():
    comparison = compare(BASELINE, dict(BASELINE))
    assert (comparison.queries, comparison.wins, comparison.ties, comparison.losses) == (20, 0, 20, 0)
    assert comparison.mean_difference == 0.0
    assert comparison.p_value_t == 1.0 and comparison.p_value_randomization == 1.0


def test_a_consistent_improvement_is_significant_in_both_tests():
    system = {q: v + 0.1 + 0.01 * (i % 3) for i, (q, v) in enumerate(BASELINE.items())}
    comparison = compare(system, BASELINE)
    assert (comparison.wins, comparison.ties, comparison.losses) == (20, 0, 0)
    assert comparison.mean_difference == pytest.approx(0.1095)
    assert comparison.p_value_t < 0.05 and comparison.p_value_randomization < 0.05
    assert compare(system, BASELINE) == comparison  # seeded


def test_a_mixed_difference_is_not_significant_and_counts_each_outcome():
    deltas = [0.1, -0.1] * 9 + [0.0, 0.05]
    system = {q: v + d for (q, v), d in zip(BASELINE.items(), deltas)}
    comparison = compare(system, BASELINE)
    assert (comparison.wins, comparison.ties, comparison.losses) == (10, 1, 9)
    assert comparison.p_value_t > 0.5 and comparison.p_value_randomization > 0.5


def test_compare_uses_only_the_queries_both_have():
    comparison = compare({"a": 1.0, "b": 0.5, "extra": 0.0}, {"a": 0.5, "b": 0.5})
    assert (comparison.queries, comparison.wins, comparison.ties) == (2, 1, 1)
