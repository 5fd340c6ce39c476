"""Explanation quality, R2R's own measure: corpus BLEU (sacrebleu) and mean ROUGE-L F1
(rouge-score) of the student's explanations against the teacher's reasons it never trained on."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ExplanationQuality:
    pairs: int
    bleu: float  # 0–100, sacrebleu's corpus BLEU
    rouge_l: float  # 0–1, mean ROUGE-L F1 (stemmed)


def explanation_quality(generated: list[str], references: list[str]) -> ExplanationQuality:
    """BLEU and ROUGE-L of `generated` against `references`, pair by pair."""
    import sacrebleu
    from rouge_score import rouge_scorer

    if len(generated) != len(references):
        raise ValueError(f"{len(generated)} explanations for {len(references)} references")
    if not generated:
        return ExplanationQuality(0, 0.0, 0.0)
    bleu = sacrebleu.corpus_bleu(generated, [references]).score
    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)
    rouge = sum(scorer.score(r, g)["rougeL"].fmeasure for g, r in zip(generated, references)) / len(generated)
    return ExplanationQuality(len(generated), round(bleu, 2), round(rouge, 4))
