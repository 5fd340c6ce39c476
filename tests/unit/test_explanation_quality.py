import pytest

from rr_assets.core.explanation_quality import explanation_quality

pytestmark = pytest.mark.unit


def test_identical_explanations_score_full_marks_and_unrelated_ones_near_zero():
    references = ["The passage names the capital of France, which the query asks for.",
                  "It describes symptoms of the flu but not their treatment."]
    same = explanation_quality(references, references)
    assert same.pairs == 2 and same.bleu == pytest.approx(100.0) and same.rouge_l == pytest.approx(1.0)
    other = explanation_quality(["Bananas grow in warm climates.", "Tabs can be pinned."], references)
    assert other.bleu < 5 and other.rouge_l < 0.2
    closer = explanation_quality(["The passage names the capital of Spain.", "It describes flu symptoms."], references)
    assert other.rouge_l < closer.rouge_l < same.rouge_l and other.bleu < closer.bleu < same.bleu


def test_explanations_and_references_must_pair_up():
    with pytest.raises(ValueError, match="1 explanations for 2 references"):
        explanation_quality(["a"], ["a", "b"])
