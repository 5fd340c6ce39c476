"""Parsing teacher answers into judgments; unparseable answers keep their raw text and a reason."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

_LABEL_LINE = re.compile(r"(?:relevance|label|score)\s*[:=]\s*\**\s*(-?\d+)", re.IGNORECASE)
_JSON_OBJECT = re.compile(r"\{.*\}", re.DOTALL)


@dataclass(frozen=True)
class ParsedDirect:
    label: int | None
    explanation: str
    error: str | None


def parse_direct(text: str, labels: tuple[int, ...]) -> ParsedDirect:
    """Accept JSON ({"explanation", "label"}) or the few-shot text format
    ("<explanation>\\nRelevance: <label>"); anything else is an error with a reason."""
    text = text.strip()
    match = _JSON_OBJECT.search(text)
    if match:
        try:
            obj = json.loads(match.group(0))
        except json.JSONDecodeError:
            obj = None
        if isinstance(obj, dict) and "label" in obj:
            explanation = str(obj.get("explanation", "")).strip()
            return _checked(obj["label"], explanation, labels)
    label_match = _LABEL_LINE.search(text)
    if not label_match:
        explanation = text.split("\n")[0].strip()
        return ParsedDirect(None, explanation, "no label found")
    explanation = text[: label_match.start()].strip()
    if explanation.lower().startswith("explanation:"):
        explanation = explanation[len("explanation:") :].strip()
    return _checked(label_match.group(1), explanation, labels)


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
