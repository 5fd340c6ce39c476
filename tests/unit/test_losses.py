import pytest
import torch

from rr_assets.core.student_format import StudentExample
from rr_assets.core.training import (
    expected_label,
    listwise_loss,
    pairwise_loss,
    preference_matrix,
    training_groups,
)

pytestmark = pytest.mark.unit


def group(labels):
    return [StudentExample("q", f"d{i}", "q", "d", label, "e") for i, label in enumerate(labels)]


def test_pairwise_loss_prefers_correct_order():
    better = preference_matrix(group([2, 0, 1]), frozenset())
    right = pairwise_loss(torch.tensor([3.0, 0.0, 1.0]), better)
    wrong = pairwise_loss(torch.tensor([0.0, 3.0, 1.0]), better)
    assert right < wrong
    assert pairwise_loss(torch.tensor([1.0, 2.0]), preference_matrix(group([1, 1]), frozenset())).item() == 0.0


def test_comparison_preferences_join_the_label_order():
    better = preference_matrix(group([1, 1, 0]), frozenset({("q", "d1", "d0")}))
    assert better.tolist() == [[False, False, True], [True, False, True], [False, False, False]]


def test_listwise_loss_is_minimal_near_the_label_distribution():
    labels = torch.tensor([2, 1, 0])
    assert listwise_loss(labels.float(), labels) < listwise_loss(torch.tensor([0.0, 1.0, 2.0]), labels)


def test_losses_have_gradients():
    scores = torch.tensor([0.5, 0.2, 0.1], requires_grad=True)
    better = preference_matrix(group([0, 1, 2]), frozenset())
    (pairwise_loss(scores, better) + listwise_loss(scores, torch.tensor([0, 1, 2]))).backward()
    assert scores.grad is not None and scores.grad.abs().sum() > 0


def test_expected_label():
    logits = torch.tensor([[0.0, 0.0, 100.0], [100.0, 0.0, 0.0]])
    assert expected_label(logits, (0, 1, 2)).tolist() == pytest.approx([2.0, 0.0])


def test_groups_mix_labels_and_never_mix_queries():
    examples = [StudentExample(f"q{q}", f"d{d}", "q", "d", label, "e")
                for q in range(3) for d, label in enumerate([0, 0, 1, 2, 2, 2])]
    examples += [StudentExample("flat", f"d{d}", "q", "d", 1, "e") for d in range(4)]
    groups = training_groups(examples, group_size=3, seed=0)
    assert groups and all(len({e.query_id for e in g}) == 1 for g in groups)
    assert all(len({e.label for e in g}) >= 2 for g in groups)
    assert not any(g[0].query_id == "flat" for g in groups)
