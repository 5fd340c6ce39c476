"""The student's text format, shared by training and scoring so both read the same positions."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class StudentExample:
    """One (query, document) pair with the teacher's label and explanation."""

    query_id: str
    doc_id: str
    query: str
    document: str
    label: int
    explanation: str


def clip_words(text: str, max_words: int) -> str:
    words = text.split()
    return " ".join(words[:max_words]) + (" ..." if len(words) > max_words else "")


def score_text(query: str, document: str, label: int, max_doc_words: int) -> str:
    """Score mode (one forward pass): the label token follows the document directly."""
    return f"Query: {query}\nDocument: {clip_words(document, max_doc_words)}\nRelevance: {label}"


def explain_prefix(query: str, document: str, max_doc_words: int) -> str:
    """Explain mode (InteRank): the student writes an explanation, then the label."""
    return f"Query: {query}\nDocument: {clip_words(document, max_doc_words)}\nExplanation:"


def explain_text(query: str, document: str, explanation: str, label: int, max_doc_words: int) -> str:
    return f"{explain_prefix(query, document, max_doc_words)} {explanation}\nRelevance: {label}"


def label_token_ids(tokenizer, labels: tuple[int, ...]) -> list[int]:
    """The token id of each label digit as it appears after 'Relevance: '."""
    ids = [tokenizer(f"Relevance: {label}", add_special_tokens=False)["input_ids"][-1] for label in labels]
    if len(set(ids)) != len(ids):
        raise ValueError(f"labels {labels} do not map to distinct tokens")
    return ids
