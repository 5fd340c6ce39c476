"""Reranking with a trained student: score mode (one forward pass per pair) and explain mode
(InteRank: write an explanation, then read the label after it; a query-likelihood student scores
as in score mode and its explanation is shown beside it), both batched."""

from __future__ import annotations

from pathlib import Path

from rr_assets.core.student_model import (
    Precision,
    StudentInfo,
    choose_precision,
    explain_prefix,
    generate_explanations,
    label_token_ids,
    load_student,
    score_pairs,
)


class StudentReranker:
    """A loaded student (model, tokenizer, StudentInfo, precision), ready to score (query, document)
    pairs: a checkpoint the trainer wrote (`load`), or the model the trainer is training, between
    steps. `token_budget` is the tokens per scoring forward pass (`score_pairs`; 0 = sized from
    free CUDA memory, pair batches on the CPU)."""

    def __init__(self, model, tokenizer, info: StudentInfo, precision: Precision, token_budget: int = 0):
        self.model, self.tokenizer, self.info, self.precision = model, tokenizer, info, precision
        self.token_budget = token_budget
        self.label_ids = label_token_ids(tokenizer, info.labels)

    @classmethod
    def load(cls, checkpoint_dir: str | Path, precision: Precision | None = None,
             token_budget: int = 0) -> StudentReranker:
        """A checkpoint with its adapter merged, its weights in bfloat16 on CUDA under bf16
        (`Precision.weight_dtype`)."""
        precision = precision or choose_precision()
        return cls(*load_student(checkpoint_dir, precision, merged=True), precision, token_budget)

    def score(self, pairs: list[tuple[str, str]], batch_size: int = 16, progress=None) -> list[float]:
        """Score of each (query, document): the expected label read at the label position, or log
        P(query | document) for a query-likelihood student; no explanation. `progress(done, total)`
        follows each batch."""
        return score_pairs(self.model, self.tokenizer, self.label_ids, self.info.labels, self.info.doc_words, pairs,
                           batch_size, self.precision, progress=progress, token_budget=self.token_budget,
                           score_with=self.info.score_with)

    def explain(self, pairs: list[tuple[str, str]], max_new_tokens: int = 48,
                batch_size: int = 8, progress=None) -> list[tuple[str, float]]:
        """(explanation, expected label read after it) of each (query, document); `progress(done,
        total)` follows each batch of explanations. On CUDA, generation runs with a static KV cache
        and a compiled decoding step (`generate_explanations`)."""
        prompts = [explain_prefix(q, d, self.info.doc_words) for q, d in pairs]
        explanations = generate_explanations(self.model, self.tokenizer, prompts, max_new_tokens, batch_size,
                                             self.precision, progress=progress,
                                             static_cache=self.precision.device.type == "cuda")
        scores = score_pairs(self.model, self.tokenizer, self.label_ids, self.info.labels, self.info.doc_words,
                             pairs, batch_size, self.precision, explanations=explanations,
                             token_budget=self.token_budget, score_with=self.info.score_with)
        return list(zip(explanations, scores))
