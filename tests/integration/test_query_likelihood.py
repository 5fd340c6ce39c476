"""The student as a query-likelihood model on the real Gemma 3 270M: log P(query | document) read
right, and moved by the ranking losses."""

from dataclasses import replace

import pytest
import torch

from rr_assets.core.reranker import StudentReranker
from rr_assets.core.student_model import (
    StudentInfo,
    choose_precision,
    load_base_model,
    load_tokenizer,
    query_prompt,
    score_pairs,
)
from rr_assets.core.training import StudentTrainer
from tests.integration.test_student import LABELS, SETTINGS, tiny_set

pytestmark = pytest.mark.integration
QUERY_LIKELIHOOD = replace(SETTINGS, score_with="query_likelihood", generation_weight=0.0)


def test_a_score_is_the_summed_log_probability_of_the_query_tokens(hf_base_model):
    precision = choose_precision("float32")
    tokenizer, model = load_tokenizer(hf_base_model), load_base_model(hf_base_model, precision).eval()
    pairs = [("what makes rain fall", "Water vapour condenses into droplets that grow until they fall."),
             ("who built the first steam engine that pumped water out of mines", "Thomas Newcomen, 1712.")]
    scores = score_pairs(model, tokenizer, [], (), 40, pairs, 2, precision, score_with="query_likelihood")
    for (query, document), score in zip(pairs, scores):
        prompt = tokenizer(query_prompt(document, 40))["input_ids"]
        asked = tokenizer(f" {query}", add_special_tokens=False)["input_ids"]
        with torch.no_grad():
            logits = model(torch.tensor([prompt + asked])).logits[0, len(prompt) - 1 : -1].float()
        expected = torch.log_softmax(logits, dim=-1).gather(1, torch.tensor(asked)[:, None]).sum().item()
        assert score == pytest.approx(expected, abs=1e-3)
    assert scores == pytest.approx([score_pairs(model, tokenizer, [], (), 40, [p], 1, precision,
                                                score_with="query_likelihood")[0] for p in pairs], abs=1e-3)


def test_the_ranking_losses_move_a_query_likelihood_student_against_its_prior(hf_base_model, tmp_path):
    """Labels reversed (each query's true best document labelled 0, the off-topic ones 2): the base
    model's query likelihood prefers the true best; a few steps of the pairwise and listwise losses
    alone must turn that around. The checkpoint records how it scores, and the reranker reads it so."""
    reversed_labels = [replace(e, label=2 - e.label) for e in tiny_set(2)]
    pairs = [(e.query, e.document) for e in reversed_labels]

    def margin(scores: list[float]) -> float:
        """Mean score of the (reversed) label-2 documents minus that of the label-0 ones, per query."""
        preferred = [s for e, s in zip(reversed_labels, scores) if e.label == 2]
        other = [s for e, s in zip(reversed_labels, scores) if e.label == 0]
        return sum(preferred) / len(preferred) - sum(other) / len(other)

    precision = choose_precision("auto")
    tokenizer, base = load_tokenizer(hf_base_model), load_base_model(hf_base_model, precision).eval()
    before = score_pairs(base, tokenizer, [], (), QUERY_LIKELIHOOD.student_doc_words, pairs, 8, precision,
                         score_with="query_likelihood")
    settings = replace(QUERY_LIKELIHOOD, epochs=8, learning_rate=1e-3)
    result = StudentTrainer(hf_base_model, settings, LABELS, precision).train(reversed_labels, tmp_path / "ckpt")
    after = StudentReranker.load(tmp_path / "ckpt", precision).score(pairs, batch_size=8)
    assert StudentInfo.read(tmp_path / "ckpt").score_with == "query_likelihood"
    assert margin(before) < 0 < margin(after), (margin(before), margin(after))
    assert all(r["pointwise"] == 0.0 for r in result.curve)
