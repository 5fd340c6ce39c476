import math
import random

import pytest
import torch
import torch.nn.functional as F

from rr_assets.core.student_model import StudentExample, expected_label
from rr_assets.core.training import (
    DevSet,
    TrainResult,
    budget_shortfall,
    evaluate_on_dev,
    learning_rate_factor,
    listwise_label_loss,
    listwise_loss,
    listwise_order_loss,
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


def test_pairwise_loss_is_ranknet_on_one_pair():
    better = preference_matrix(group([1, 0]), frozenset())
    loss = pairwise_loss(torch.tensor([0.3, 1.0]), better)
    assert loss.item() == pytest.approx(F.softplus(torch.tensor(0.7)).item())


def test_comparison_preferences_join_the_label_order():
    better = preference_matrix(group([1, 1, 0]), frozenset({("q", "d1", "d0")}))
    assert better.tolist() == [[False, False, True], [True, False, True], [False, False, False]]


def test_listwise_label_loss_is_minimal_near_the_label_distribution():
    labels = torch.tensor([2, 1, 0])
    assert listwise_label_loss(labels.float(), labels) < listwise_label_loss(torch.tensor([0.0, 1.0, 2.0]), labels)


def test_plackett_luce_loss_of_two_documents_is_ranknet():
    # −log P(order [0, 1]) = −log softmax(s)[0], averaged over the one position that has a choice
    loss = listwise_order_loss(torch.tensor([2.0, 0.5]), [0, 1])
    assert loss.item() == pytest.approx(F.softplus(torch.tensor(-1.5)).item())
    assert listwise_order_loss(torch.tensor([2.0, 0.5]), [1, 0]) > loss


def test_teacher_order_and_labels_are_different_targets():
    # The labels say d0 > d1 > d2; the teacher ranked the window the other way round.
    examples = group([2, 1, 0])
    scores_a = torch.tensor([1.0, 0.5, 0.0], requires_grad=True)
    scores_b = torch.tensor([1.0, 0.5, 0.0], requires_grad=True)
    by_order, target_a = listwise_loss(scores_a, examples, [["d2", "d1", "d0"]])
    by_labels, target_b = listwise_loss(scores_b, examples, None)
    assert (target_a, target_b) == ("teacher_order", "labels")
    assert by_order.item() != pytest.approx(by_labels.item())
    by_order.backward()
    by_labels.backward()
    # Gradient descent raises d0 under the labels and lowers it under the teacher's order.
    assert scores_b.grad[0] < 0 < scores_a.grad[0]
    assert scores_a.grad[2] < 0 < scores_b.grad[2]


def test_teacher_order_needs_two_of_the_groups_documents():
    examples = group([2, 1, 0])
    scores = torch.tensor([0.2, 0.1, 0.0])
    # only d1 of the group was ranked (the others were outside the window): fall back to labels
    loss, target = listwise_loss(scores, examples, [["x", "d1", "y"]])
    assert target == "labels" and loss.item() == pytest.approx(listwise_label_loss(scores, torch.tensor([2, 1, 0])).item())
    # unknown documents in the order are skipped; d2 before d0 is the target
    loss, target = listwise_loss(scores, examples, [["x", "d2", "y", "d0"]])
    assert target == "teacher_order"
    assert loss.item() == pytest.approx(listwise_order_loss(scores, [2, 0]).item())


def test_several_teacher_orders_of_a_query_each_train_and_are_averaged():
    # Two lists of one query (or two teachers on one list): each order that ranks two of the
    # group's documents counts once; an order that ranks fewer is left out.
    examples = group([2, 1, 0])
    scores = torch.tensor([0.3, 0.1, 0.0])
    loss, target = listwise_loss(scores, examples, [["d0", "d1"], ["d2", "d0"], ["d1", "x"]])
    expected = (listwise_order_loss(scores, [0, 1]) + listwise_order_loss(scores, [2, 0])) / 2
    assert target == "teacher_order" and loss.item() == pytest.approx(expected.item())


def test_the_losses_gradients_raise_the_better_documents_and_a_step_lowers_them():
    scores = torch.tensor([0.5, 0.2, 0.1], requires_grad=True)
    labels = torch.tensor([0, 1, 2])  # d2 is the best and scores lowest
    better = preference_matrix(group([0, 1, 2]), frozenset())
    loss = pairwise_loss(scores, better) + listwise_label_loss(scores, labels)
    loss.backward()
    assert scores.grad[2] < 0 < scores.grad[0]  # descent raises the best document and lowers the worst
    with torch.no_grad():
        stepped = scores - 0.1 * scores.grad
        assert pairwise_loss(stepped, better) + listwise_label_loss(stepped, labels) < loss


def test_expected_label():
    logits = torch.tensor([[0.0, 0.0, 100.0], [100.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
    assert expected_label(logits, (0, 1, 2)).tolist() == pytest.approx([2.0, 0.0, 1.0])


def test_one_group_per_top_document_with_lower_labelled_others():
    examples = [StudentExample(f"q{q}", f"d{d}", "q", "d", label, "e")
                for q in range(3) for d, label in enumerate([0, 0, 1, 2, 2, 2])]
    groups = training_groups(examples, group_size=3, rng=random.Random(0))
    assert len(groups) == 3 * 3  # three top-labelled documents in each of three queries
    assert all(len(g) == 3 and len({e.query_id for e in g}) == 1 for g in groups)
    assert all(g[0].label == 2 and all(e.label < 2 for e in g[1:]) for g in groups)
    assert {(g[0].query_id, g[0].doc_id) for g in groups} == {(f"q{q}", f"d{d}") for q in range(3) for d in (3, 4, 5)}
    assert groups == training_groups(examples, group_size=3, rng=random.Random(0))


def test_a_query_of_one_label_is_split_into_groups_of_at_most_group_size():
    flat = [StudentExample("flat", f"d{d}", "q", "d", 1, "e") for d in range(4)]
    groups = training_groups(flat, group_size=3, rng=random.Random(0))
    assert sorted(len(g) for g in groups) == [1, 3]
    assert sorted(e.doc_id for g in groups for e in g) == ["d0", "d1", "d2", "d3"]


def test_small_queries_give_groups_smaller_than_group_size():
    examples = group([1, 0])
    [only] = training_groups(examples, group_size=8, rng=random.Random(1))
    assert [e.doc_id for e in only] == ["d0", "d1"]


class ByWordOverlap:
    """A stand-in reranker: scores a pair by the words its query and document share."""

    def score(self, pairs, batch_size):
        return [float(len(set(q.split()) & set(d.split()))) for q, d in pairs]


def test_the_dev_evaluation_scores_the_reranked_dev_slice_against_the_first_stage():
    dev = DevSet(queries={"q": "tides moon", "r": "red cats"},
                 candidates={"q": [("d1", "cats and dogs", 2.0), ("d2", "the moon drives tides", 1.0)],
                             "r": [("d3", "red cats nap", 2.0), ("d4", "blue dogs", 1.0)]},
                 qrels={"q": {"d2": 1}, "r": {"d3": 1}})
    assert dev.first_stage_run() == {"q": {"d1": 2.0, "d2": 1.0}, "r": {"d3": 2.0, "d4": 1.0}}
    compared = evaluate_on_dev(ByWordOverlap(), dev, batch_size=4)
    assert compared.ndcg == pytest.approx(1.0) and compared.first_stage_ndcg == pytest.approx((1 / math.log2(3) + 1) / 2)
    assert 0.0 < compared.p_value <= 1.0


def test_the_card_says_which_listwise_target_trained():
    assert TrainResult(listwise_groups={"labels": 5}).listwise_target == "direct labels"
    assert TrainResult(listwise_groups={"teacher_order": 3}).listwise_target == "teacher window order"
    assert TrainResult(listwise_groups={"teacher_order": 2, "labels": 648}).listwise_target == (
        "teacher window order (2 groups), direct labels (648 groups)")


def test_the_result_says_when_training_kept_the_untrained_model_or_ranks_below_the_first_stage():
    curve = [{"step": 0, "dev_nDCG@10": 0.23}, {"step": 80, "dev_nDCG@10": 0.69}]
    learned = TrainResult(dev_curve=curve, best_step=80, best_dev_ndcg=0.69, first_stage_dev_ndcg=0.83)
    assert not learned.kept_untrained and learned.below_first_stage
    kept_base = TrainResult(dev_curve=curve[:1], best_step=0, best_dev_ndcg=0.23, first_stage_dev_ndcg=0.2)
    assert kept_base.kept_untrained and not kept_base.below_first_stage
    no_dev_slice = TrainResult(optimizer_steps=12)  # the last state is kept, nothing to compare with
    assert not no_dev_slice.kept_untrained and not no_dev_slice.below_first_stage


def test_without_a_budget_the_schedule_is_linear_warmup_and_decay():
    from transformers import get_linear_schedule_with_warmup

    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    reference = get_linear_schedule_with_warmup(optimizer, 10, 100).lr_lambdas[0]
    assert [learning_rate_factor(step, 10, 100, 0.0) for step in range(101)] == pytest.approx(
        [reference(step) for step in range(101)])


def test_the_time_budget_anneals_the_rate_to_zero_before_the_last_step():
    assert learning_rate_factor(20, 10, 1000, 0.5) == pytest.approx(0.5)  # the budget runs out first
    assert learning_rate_factor(900, 10, 1000, 0.5) == pytest.approx(100 / 990)  # the steps do
    assert learning_rate_factor(20, 10, 1000, 1.2) == 0.0
    assert learning_rate_factor(5, 10, 1000, 0.9) == pytest.approx(0.5)  # warmup is not cut short


def test_a_budget_that_covers_less_than_an_epoch_is_said_with_the_queries_that_would_fit():
    # 5 steps in 50 s, 950 s left: 5 + 95 = 100 steps reachable of a 400-step epoch
    note = budget_shortfall(5, 50.0, 950.0, steps_planned=800, steps_per_epoch=400, train_queries=1000)
    assert note.startswith("the time budget covers about 100 optimizer steps, 0.25 of an epoch, at 10.0 s per step")
    assert "max_train_queries to about 250 (of 1000)" in note
    assert budget_shortfall(5, 50.0, 5000.0, steps_planned=800, steps_per_epoch=400, train_queries=1000) is None
    assert budget_shortfall(5, 50.0, 950.0, steps_planned=60, steps_per_epoch=400, train_queries=1000) is None
