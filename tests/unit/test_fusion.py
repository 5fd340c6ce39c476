import pytest

from rr_assets.core.fusion import FUSION_GRID, choose_fusion_weight, fuse
from rr_assets.core.metrics import ndcg_at_10

pytestmark = pytest.mark.unit

FIRST_STAGE = {"q": {"b": 3.0, "a": 2.0, "c": 1.0, "tail": 0.5}, "unscored": {"x": 1.0, "y": 2.0}}
RERANKER = {"q": {"a": 10.0, "b": 0.0, "c": 5.0, "not_a_candidate": 99.0}}


def order(run, query):
    return sorted(run[query], key=lambda d: -run[query][d])


def test_weight_one_is_the_reranker_and_weight_zero_the_first_stage():
    assert order(fuse(FIRST_STAGE, RERANKER, 1.0), "q") == ["a", "c", "b", "tail"]
    assert order(fuse(FIRST_STAGE, RERANKER, 0.0), "q") == ["b", "a", "c", "tail"]


def test_fused_scores_interpolate_min_max_normalised_scores():
    fused = fuse(FIRST_STAGE, RERANKER, 0.25)["q"]
    # first stage over the scored docs: b=1, a=0.5, c=0; reranker: a=1, c=0.5, b=0
    assert fused["b"] == pytest.approx(2.0 + 0.75)
    assert fused["a"] == pytest.approx(2.0 + 0.25 + 0.375)
    assert fused["c"] == pytest.approx(2.0 + 0.125)
    assert "not_a_candidate" not in fused
    assert fused["tail"] < min(fused[d] for d in "abc")


def test_queries_the_reranker_did_not_score_keep_the_first_stage():
    assert fuse(FIRST_STAGE, RERANKER, 0.7)["unscored"] == {"x": 1.0, "y": 2.0}


def test_the_chosen_weight_is_the_best_and_ties_go_nearest_one_half():
    qrels = {"q": {"a": 1}}
    first_stage = {"q": {"b": 2.0, "a": 1.0, "c": 0.5}}
    reranker = {"q": {"a": 1.0, "b": 0.0}}
    # every weight above 0.5 puts a first (nDCG 1); 0.55 is the nearest to 0.5
    assert choose_fusion_weight(qrels, first_stage, reranker) == (0.55, pytest.approx(1.0))
    assert FUSION_GRID[0] == 0.0 and FUSION_GRID[-1] == 1.0 and len(FUSION_GRID) == 21


def test_without_a_significant_gain_on_dev_the_first_stage_stands_alone():
    # Four dev queries: the reranker puts the relevant document first on one, and on the others
    # agrees with the first stage; the gain is real but not significant at 0.05.
    qrels = {f"q{i}": {"a": 1} for i in range(4)}
    first_stage = {"q0": {"b": 2.0, "a": 1.0}, **{f"q{i}": {"a": 2.0, "b": 1.0} for i in range(1, 4)}}
    reranker = {q: {"a": 1.0, "b": 0.0} for q in qrels}
    weight, value = choose_fusion_weight(qrels, first_stage, reranker)
    assert weight > 0 and value == pytest.approx(1.0)
    assert choose_fusion_weight(qrels, first_stage, reranker, max_p=0.05) == (0.0, pytest.approx(
        ndcg_at_10(qrels, first_stage)))
