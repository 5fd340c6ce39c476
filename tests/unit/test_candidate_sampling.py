import pytest

from rr_assets.core.candidate_sampling import comparison_pairs, sliding_windows

pytestmark = pytest.mark.unit


def test_sliding_windows_cover_the_list_bottom_up():
    assert sliding_windows(10, 4, 2) == [(6, 10), (4, 8), (2, 6), (0, 4)]
    assert sliding_windows(3, 4, 2) == [(0, 3)]
    covered = {i for s, e in sliding_windows(23, 5, 3) for i in range(s, e)}
    assert covered == set(range(23))


def test_comparison_pairs_are_capped_seeded_and_swapped():
    ranked = {"q": ["a", "b", "c", "d"], "r": ["x", "y"]}
    labels = {"q": {"a": 0, "b": 0, "c": 2, "d": 1}}
    pairs = comparison_pairs(ranked, labels, max_pairs_per_query=4, swap_fraction=0.5, seed=1)
    originals = [p for p in pairs if not p.swapped]
    q_pairs = [p for p in originals if p.query_id == "q"]
    assert [(p.doc_a, p.doc_b, p.reason) for p in q_pairs[:3]] == [
        ("a", "b", "adjacent"), ("b", "c", "adjacent"), ("c", "d", "adjacent")]
    assert q_pairs[3].reason == "label_disagreement" and {q_pairs[3].doc_a, q_pairs[3].doc_b} == {"a", "c"}
    swapped = [p for p in pairs if p.swapped]
    assert all(any(o.doc_a == s.doc_b and o.doc_b == s.doc_a for o in originals) for s in swapped)
    assert pairs == comparison_pairs(ranked, labels, 4, 0.5, seed=1)
    assert len(comparison_pairs(ranked, labels, 4, 1.0, seed=1)) == 2 * len(originals)
