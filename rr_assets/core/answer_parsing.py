"""Parsing teacher answers into judgments; unparseable answers keep their raw text and a reason."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

# The verdict patterns also match inside broken JSON ('"label": 2'), which the JSON parser refused.
_LABEL_LINE = re.compile(r"(?:relevance|label|score)\"?\s*[:=]\s*\**\s*(-?\d+)", re.IGNORECASE)
_JSON_OBJECT = re.compile(r"\{.*\}", re.DOTALL)


_JSON_EXPLANATION_PREFIX = re.compile(r'^\{?\s*"explanation"\s*:\s*"', re.IGNORECASE)


def _clean(explanation: str) -> str:
    """The explanation part of a text answer, without the JSON wrapping of a broken JSON answer."""
    explanation = explanation.strip()
    if explanation.lower().startswith("explanation:"):
        explanation = explanation[len("explanation:"):]
    if _JSON_EXPLANATION_PREFIX.match(explanation):
        explanation = re.sub(r'["\s,]+$', "", _JSON_EXPLANATION_PREFIX.sub("", explanation))
    return explanation.strip()


def _json_answer(text: str, verdict: str) -> dict | None:
    """The JSON object in an answer, if there is one that parses and holds the verdict key."""
    match = _JSON_OBJECT.search(text)
    if not match:
        return None
    try:
        obj = json.loads(match.group(0))
    except json.JSONDecodeError:
        return None
    return obj if isinstance(obj, dict) and verdict in obj else None


def verdict_missing(parsed) -> bool:
    """The answer stopped before its verdict (label, preference or ranking): errors of that kind
    start with "no ", and a short follow-up request can still ask for the verdict."""
    return parsed.error is not None and parsed.error.startswith("no ")


@dataclass(frozen=True)
class ParsedDirect:
    label: int | None
    explanation: str
    error: str | None


def parse_direct(text: str, labels: tuple[int, ...]) -> ParsedDirect:
    """Accept JSON ({"explanation", "label"}) or the few-shot text format
    ("<explanation>\\nRelevance: <label>"); anything else is an error with a reason."""
    text = text.strip()
    obj = _json_answer(text, "label")
    if obj is not None:
        return _checked(obj["label"], str(obj.get("explanation", "")).strip(), labels)
    label_match = _LABEL_LINE.search(text)
    if not label_match:
        explanation = text.split("\n")[0].strip()
        return ParsedDirect(None, explanation, "no label found")
    return _checked(label_match.group(1), _clean(text[: label_match.start()]), labels)


def parse_explanation(text: str, label: int) -> ParsedDirect:
    """A grounded teacher's answer: only the explanation of a label it was given (its first paragraph)."""
    explanation = _clean(re.split(r"(?:^|\n)Relevance", text.strip().split("\n\n")[0])[0])
    return ParsedDirect(label, explanation, None if explanation else "empty explanation")


def _checked(raw_label, explanation: str, labels: tuple[int, ...]) -> ParsedDirect:
    try:
        label = int(raw_label)
    except (TypeError, ValueError):
        return ParsedDirect(None, explanation, f"label {raw_label!r} is not an integer")
    if label not in labels:
        return ParsedDirect(None, explanation, f"label {label} outside the scale {list(labels)}")
    if not explanation:
        return ParsedDirect(label, explanation, "empty explanation")
    return ParsedDirect(label, explanation, None)


_PREFERRED = re.compile(
    r"(?:preferred|winner|more relevant|answer)\"?\s*[:=]?\s*\**\s*\"?(?:document\s*)?\[?([AB])\]?\b", re.IGNORECASE
)
_RANKING = re.compile(r"ranking\"?\s*:", re.IGNORECASE)
_RANK_ID = re.compile(r"\[(\d+)\]")


@dataclass(frozen=True)
class ParsedComparison:
    preferred: str | None  # "A" or "B"
    explanation: str
    error: str | None


def parse_comparison(text: str) -> ParsedComparison:
    """Accept JSON ({"explanation", "preferred": "A"|"B"}) or "<explanation>\\nPreferred: A"."""
    text = text.strip()
    obj = _json_answer(text, "preferred")
    if obj is not None:
        preferred = str(obj["preferred"]).strip().upper()
        explanation = str(obj.get("explanation", "")).strip()
        if preferred not in ("A", "B"):
            return ParsedComparison(None, explanation, f"preferred {obj['preferred']!r} is not A or B")
        return ParsedComparison(preferred, explanation, None if explanation else "empty explanation")
    found = _PREFERRED.search(text)
    if not found:
        return ParsedComparison(None, text.split("\n")[0].strip(), "no preferred document found")
    explanation = _clean(text[: found.start()])
    return ParsedComparison(found.group(1).upper(), explanation, None if explanation else "empty explanation")


@dataclass(frozen=True)
class ParsedRanking:
    order: list[int]  # 0-based positions in the window, best first; always a full permutation
    explanation: str
    error: str | None
    repaired: bool = False


def parse_ranking(text: str, size: int) -> ParsedRanking:
    """RankGPT-style "[2] > [1] > [3]" after an explanation (or JSON {"explanation", "ranking"}).
    Out-of-range and repeated ids are dropped and missing ones appended in their original order
    (marked `repaired`); an answer with no usable id is an error and keeps the input order."""
    text = text.strip()
    ids: list[int] = []
    explanation = text
    obj = _json_answer(text, "ranking")
    if obj is not None:
        explanation = str(obj.get("explanation", "")).strip()
        raw = obj["ranking"]
        ids = [int(x) for x in (raw if isinstance(raw, list) else _RANK_ID.findall(str(raw))) if str(x).isdigit()]
    else:
        found = list(_RANKING.finditer(text))
        if found:
            explanation = _clean(text[: found[-1].start()])
            tail = text[found[-1].end():]
            ids = [int(x) for x in (_RANK_ID.findall(tail) or re.findall(r"\d+", tail.split("]")[0]))]
    order: list[int] = []
    for i in ids:
        if 1 <= i <= size and i - 1 not in order:
            order.append(i - 1)
    if not order:
        return ParsedRanking(list(range(size)), explanation, "no ranking found")
    repaired = len(order) != size or len(ids) != size
    order += [i for i in range(size) if i not in order]
    return ParsedRanking(order, explanation, None if explanation else "empty explanation", repaired)
