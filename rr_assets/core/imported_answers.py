"""Teacher answers imported from files instead of asked of an endpoint: a teacher's earlier dump
(R2R's, rank_llm's) read, validated like live answers, and turned into the rows of the teacher
tables. Nothing is paid for: an imported answer costs no call.

One line = one answer: the passages the teacher saw (in the order it saw them), its ranking (best
first), and optionally its reasons. Two forms are read, told apart per line:
- R2R's (and rr's own): `query_id`, `shown`, `ranking`; optional `listwise_reason` (free text),
  `direct_reasons` and `listwise_reasons` ({passage id: text}), `model`.
- rank_llm's `Result`: `query` ({`qid`, `text`}), `candidates` (best first, each with `docid` and
  its first-stage `score`, whose order is the order the teacher saw); optional `model`.
A line's teacher model is its `model`, else the file's name (e.g. `gpt-4.jsonl` → gpt-4).

Bad input policy (each case is tested): a line that is not a JSON object, lacks a required key,
names an unknown query or passage, ranks a passage it was not shown, names a passage twice, leaves
shown passages unranked, or repeats an earlier answer is quarantined with its file, line and
reason; a file where more than `max_bad_fraction` of the lines are bad raises
TeacherAnswersError naming the file and its first bad lines."""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from rr_assets.core.collections import QuarantinedLine
from rr_assets.core.model_files import file_sha256


class TeacherAnswersError(ValueError):
    """A teacher answer file that cannot be imported at all; the message names the file."""


@dataclass(frozen=True)
class ImportedAnswer:
    """One teacher answer: the list it was shown, its ranking and its reasons (by passage id)."""

    query_id: str
    shown: tuple[str, ...]
    ranking: tuple[str, ...]
    model: str
    file: str
    line: int
    request_hash: str
    listwise_reason: str = ""
    direct_reasons: dict[str, str] = field(default_factory=dict)
    comparison_reasons: dict[str, str] = field(default_factory=dict)
    raw: str = ""


@dataclass(frozen=True)
class AnswerFile:
    """What one file gave: its answers, its bad lines, its content hash and the models it names."""

    path: str
    sha256: str
    answers: list[ImportedAnswer]
    quarantined: list[QuarantinedLine]

    @property
    def models(self) -> list[str]:
        return sorted({a.model for a in self.answers})


def _reasons(record: dict, key: str) -> dict[str, str]:
    value = record.get(key) or {}
    if not isinstance(value, dict):
        raise ValueError(f"{key!r} must map passage ids to texts")
    return {str(k): str(v).strip() for k, v in value.items() if str(v).strip()}


def _parse(record: dict, default_model: str) -> tuple[str, list[str], list[str], dict]:
    """(query id, shown, ranking, extras) of one line in either form; ValueError says what is wrong."""
    if "candidates" in record:
        query = record.get("query")
        if not isinstance(query, dict) or "qid" not in query:
            raise ValueError("rank_llm form: 'query' must be an object with 'qid'")
        candidates = record["candidates"]
        if not isinstance(candidates, list) or not all(isinstance(c, dict) and "docid" in c for c in candidates):
            raise ValueError("rank_llm form: 'candidates' must be a list of objects with 'docid'")
        ranking = [str(c["docid"]) for c in candidates]
        shown = [str(c["docid"]) for c in sorted(candidates, key=lambda c: -float(c.get("score", 0.0)))]
        return str(query["qid"]), shown, ranking, {"model": str(record.get("model") or default_model)}
    for key in ("query_id", "shown", "ranking"):
        if key not in record:
            raise ValueError(f"missing {key!r}")
    if not isinstance(record["shown"], list) or not isinstance(record["ranking"], list):
        raise ValueError("'shown' and 'ranking' must be lists of passage ids")
    extras = {"model": str(record.get("model") or default_model),
              "listwise_reason": str(record.get("listwise_reason") or "").strip(),
              "direct_reasons": _reasons(record, "direct_reasons"),
              "comparison_reasons": _reasons(record, "listwise_reasons")}
    return str(record["query_id"]), [str(d) for d in record["shown"]], [str(d) for d in record["ranking"]], extras


def _problem(query_id: str, shown: list[str], ranking: list[str], extras: dict, queries: set[str],
             documents: set[str]) -> str | None:
    """Why a parsed answer cannot be used, or None."""
    if query_id not in queries:
        return f"unknown query {query_id!r}"
    for name, ids in (("shown", shown), ("ranking", ranking)):
        repeated = [d for d, n in Counter(ids).items() if n > 1]
        if repeated:
            return f"passage {repeated[0]!r} appears twice in {name!r}"
    if len(shown) < 2:
        return "fewer than two passages shown"
    unknown = [d for d in shown if d not in documents]
    if unknown:
        return f"unknown passage {unknown[0]!r}"
    stray = [d for d in ranking if d not in shown]
    if stray:
        return f"the ranking names passage {stray[0]!r}, which was not in the list shown"
    if len(ranking) != len(shown):
        return f"the ranking leaves {len(shown) - len(ranking)} of the {len(shown)} shown passages out"
    for key in ("direct_reasons", "comparison_reasons"):
        stray = [d for d in extras.get(key, {}) if d not in shown]
        if stray:
            return f"a reason names passage {stray[0]!r}, which was not in the list shown"
    return None


def read_answer_file(path: str | Path, queries: set[str], documents: set[str],
                     max_bad_fraction: float = 0.5) -> AnswerFile:
    """Every usable answer of one file; bad lines are quarantined (see the module's policy)."""
    path = Path(path)
    if not path.is_file():
        raise TeacherAnswersError(f"{path}: teacher answer file not found")
    sha256 = file_sha256(path)
    answers, quarantined, seen, lines = [], [], set(), 0
    with path.open("rb") as handle:
        for line_no, raw in enumerate(handle, start=1):
            if not raw.strip():
                continue
            lines += 1
            text = raw.decode("utf-8", errors="replace")

            def bad(reason: str, line_no=line_no, text=text) -> None:
                quarantined.append(QuarantinedLine(str(path), line_no, reason, text.strip()[:200]))

            try:
                record = json.loads(raw.decode("utf-8"))
            except UnicodeDecodeError as exc:
                bad(f"invalid UTF-8 ({exc.reason})")
                continue
            except json.JSONDecodeError as exc:
                bad(f"not valid JSON ({exc.msg})")
                continue
            if not isinstance(record, dict):
                bad("expected a JSON object")
                continue
            try:
                query_id, shown, ranking, extras = _parse(record, path.stem)
            except (ValueError, TypeError) as exc:
                bad(str(exc))
                continue
            problem = _problem(query_id, shown, ranking, extras, queries, documents)
            key = (query_id, tuple(sorted(shown)), extras["model"])
            if problem is None and key in seen:
                problem = f"a second answer of {extras['model']} for the same list of query {query_id!r}"
            if problem:
                bad(problem)
                continue
            seen.add(key)
            answers.append(ImportedAnswer(query_id, tuple(shown), tuple(ranking), file=str(path), line=line_no,
                                          request_hash=f"imported:{sha256[:16]}:{line_no}", raw=text.strip(), **extras))
    if lines and len(quarantined) > max_bad_fraction * lines:
        first = "; ".join(f"line {q.line}: {q.reason}" for q in quarantined[:3])
        raise TeacherAnswersError(f"{path}: {len(quarantined)} of {lines} answers are bad ({first}); nothing of this "
                                  "file was imported, and what earlier imports wrote is kept")
    return AnswerFile(str(path), sha256, answers, quarantined)


# --- the teacher tables' rows ------------------------------------------------------------------

def rank_label(position: int, rank_labels: tuple[int, ...]) -> int:
    """The label of the passage at 0-based `position` of a teacher's ranking (past the end: the last)."""
    return rank_labels[min(position, len(rank_labels) - 1)]


def explanation_of(answer: ImportedAnswer, doc_id: str, reasons: tuple[str, ...]) -> str | None:
    """The teacher's reasons for one passage, the kinds in `reasons` ("direct", "comparison") joined."""
    parts = {"direct": answer.direct_reasons.get(doc_id), "comparison": answer.comparison_reasons.get(doc_id)}
    text = " ".join(parts[kind] for kind in reasons if parts.get(kind))
    return text or None


def judgment_rows(answers: list[ImportedAnswer], splits: dict[str, str], rank_labels: tuple[int, ...],
                  reasons: tuple[str, ...]) -> list[dict]:
    """One row per (query, passage) any teacher ranked: the label from its rank position, averaged
    over the answers that ranked it (half up), and the first answer's reasons for it that has any."""
    ranked: dict[tuple[str, str], list[tuple[int, ImportedAnswer]]] = defaultdict(list)
    for answer in answers:
        for position, doc_id in enumerate(answer.ranking):
            ranked[answer.query_id, doc_id].append((rank_label(position, rank_labels), answer))
    rows = []
    for (query_id, doc_id), found in sorted(ranked.items()):
        label = int(sum(value for value, _ in found) / len(found) + 0.5)
        explained = next((a for _, a in found if explanation_of(a, doc_id, reasons)), None)
        source = explained or found[0][1]
        rows.append({"query_id": query_id, "doc_id": doc_id, "split": splits.get(query_id, "train"), "label": label,
                     "label_source": "imported rank", "explanation": explanation_of(source, doc_id, reasons),
                     "raw": json.dumps({"models": sorted({a.model for _, a in found}),
                                        "ranks": [a.ranking.index(doc_id) + 1 for _, a in found]}),
                     "parse_error": None, "request_hash": source.request_hash, "truncated": False})
    return rows


def ranking_rows(answers: list[ImportedAnswer]) -> list[dict]:
    """One window per answer; each answer is its own list, so its final order is its own ranking."""
    rows, windows = [], Counter()
    for answer in answers:
        index = windows[answer.query_id]
        windows[answer.query_id] += 1
        order = json.dumps(list(answer.ranking))
        rows.append({"query_id": answer.query_id, "window_index": index, "start_rank": 0,
                     "input_doc_ids": json.dumps(list(answer.shown)), "ranked_doc_ids": order, "final_doc_ids": order,
                     "explanation": answer.listwise_reason or None, "raw": answer.raw, "parse_error": None,
                     "repaired": False, "request_hash": answer.request_hash, "model": answer.model})
    return rows


def comparison_rows(answers: list[ImportedAnswer]) -> list[dict]:
    """The pairs the rankings imply (A above B), one row per pair of a query: where several answers
    ranked both passages, the majority's preference (a tie gives no row)."""
    votes: dict[tuple[str, str, str], Counter] = defaultdict(Counter)
    hashes: dict[tuple[str, str, str], str] = {}
    for answer in answers:
        for i, better in enumerate(answer.ranking):
            for worse in answer.ranking[i + 1:]:
                key = (answer.query_id, *sorted((better, worse)))
                votes[key][better] += 1
                hashes.setdefault(key, answer.request_hash)
    rows = []
    for (query_id, doc_a, doc_b), counted in sorted(votes.items()):
        (preferred, top), *rest = counted.most_common()
        if rest and rest[0][1] == top:
            continue
        rows.append({"query_id": query_id, "doc_a": doc_a, "doc_b": doc_b, "reason": "teacher_order",
                     "swapped": False, "preferred_doc_id": preferred, "explanation": None,
                     "raw": json.dumps(dict(counted)), "parse_error": None, "request_hash": hashes[query_id, doc_a, doc_b]})
    return rows


def teacher_agreement(answers) -> dict[str, dict[str, float]]:
    """Per pair of teachers, on the lists both ranked (the same passages shown): how many, the
    share with the same top passage and the share with the same full ranking. `answers`: anything
    with query_id, model, shown and ranking."""
    by_list: dict[tuple[str, tuple[str, ...]], dict[str, tuple[str, ...]]] = defaultdict(dict)
    for answer in answers:
        by_list[answer.query_id, tuple(sorted(answer.shown))][answer.model] = tuple(answer.ranking)
    pairs: dict[str, list[tuple[bool, bool]]] = defaultdict(list)
    for rankings in by_list.values():
        models = sorted(rankings)
        for i, a in enumerate(models):
            for b in models[i + 1:]:
                pairs[f"{a} vs {b}"].append((rankings[a][0] == rankings[b][0], rankings[a] == rankings[b]))
    return {pair: {"lists": len(found), "same_top1": round(sum(t for t, _ in found) / len(found), 4),
                   "same_ranking": round(sum(r for _, r in found) / len(found), 4)}
            for pair, found in sorted(pairs.items())}
