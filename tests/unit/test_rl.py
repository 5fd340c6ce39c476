import pytest
import torch

from rr_assets.core.rl import group_advantages, kl_k3, label_reward, training_pairs
from rr_assets.core.student_model import StudentExample

pytestmark = pytest.mark.unit


def test_advantages_are_zero_when_a_group_earned_equal_rewards():
    advantages = group_advantages(torch.tensor([[0.5, 0.5, 0.5, 0.5], [1.0, 1.0, 1.0, 1.0]]))
    assert torch.equal(advantages, torch.zeros(2, 4))


def test_advantages_follow_the_reward_within_each_group():
    advantages = group_advantages(torch.tensor([[1.0, 0.0, 0.5, 0.5], [0.0, 0.0, 0.0, 1.0]]))
    first, second = advantages.tolist()
    assert first[0] > 0 > first[1] and first[2] == pytest.approx(0.0, abs=1e-6)
    assert second[3] > 0 > second[0] and second[0] == pytest.approx(second[1])
    assert advantages.sum(dim=1).tolist() == pytest.approx([0.0, 0.0], abs=1e-5)
    assert advantages[0, 0].item() == pytest.approx(1.0 / (2 ** -0.5), rel=1e-3)  # (1 − 0.5) / std


def test_label_reward_is_graded_by_distance_to_the_gold_label():
    rewards = label_reward(torch.tensor([2, 1, 0, 2]), torch.tensor([2, 2, 2, 0]), top_label=2)
    assert rewards.tolist() == pytest.approx([1.0, 0.5, 0.0, 0.0])


def test_k3_kl_is_never_negative_and_zero_for_equal_policies():
    policy = torch.tensor([-0.1, -2.0, -0.7, -3.0])
    reference = torch.tensor([-0.5, -1.0, -0.7, -0.2])
    kl = kl_k3(policy, reference)
    assert (kl >= 0).all() and kl[2].item() == 0.0 and kl[0].item() > 0
    assert torch.equal(kl_k3(policy, policy), torch.zeros(4))


def test_training_pairs_alternate_top_and_other_labels_and_are_seeded():
    examples = [StudentExample("q", f"d{i}", "q", "d", label, "") for i, label in enumerate([2, 2, 2, 0, 1, 0, 0, 1])]
    pairs = training_pairs(examples, count=6, seed=3)
    assert len(pairs) == 6 and len({p.doc_id for p in pairs}) == 6
    assert [p.label == 2 for p in pairs] == [True, False, True, False, True, False]
    assert pairs == training_pairs(examples, count=6, seed=3)
    assert len(training_pairs(examples, count=100, seed=3)) == len(examples)
