"""Reranking with a trained student: score mode (one forward pass per pair) and explain mode
(InteRank: write an explanation, then read the label after it), both batched."""

from __future__ import annotations

from pathlib import Path

from rr_assets.core.student_model import (
    Precision,
    choose_precision,
    explain_prefix,
    generate_explanations,
    label_token_ids,
    load_student,
    score_pairs,
)


class StudentReranker:
    """A checkpoint the trainer wrote, ready to score (query, document) pairs."""

    def __init__(self, checkpoint_dir: str | Path, precision: Precision | None = None):
        self.precision = precision or choose_precision()
        self.model, self.tokenizer, self.info = load_student(checkpoint_dir, self.precision, merged=True)
        self.label_ids = label_token_ids(self.tokenizer, self.info.labels)

    def score(self, pairs: list[tuple[str, str]], batch_size: int = 16, progress=None) -> list[float]:
        """Expected label of each (query, document), read at the label position; no explanation.
        `progress(done, total)` follows each batch."""
        return score_pairs(self.model, self.tokenizer, self.label_ids, self.info.labels, self.info.doc_words, pairs,
                           batch_size, self.precision, progress=progress)

    def explain(self, pairs: list[tuple[str, str]], max_new_tokens: int = 48,
                batch_size: int = 8, progress=None) -> list[tuple[str, float]]:
        """(explanation, expected label read after it) of each (query, document); `progress(done,
        total)` follows each batch of explanations."""
        prompts = [explain_prefix(q, d, self.info.doc_words) for q, d in pairs]
        explanations = generate_explanations(self.model, self.tokenizer, prompts, max_new_tokens, batch_size,
                                             self.precision, progress=progress)
        scores = score_pairs(self.model, self.tokenizer, self.label_ids, self.info.labels, self.info.doc_words,
                             pairs, batch_size, self.precision, explanations=explanations)
        return list(zip(explanations, scores))
