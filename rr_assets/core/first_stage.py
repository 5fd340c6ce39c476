"""First-stage runs: candidate lists from rr's own BM25 or given by the user, as a TREC run file or
the RankGPT/rank_llm JSON that rerankers exchange ({"query", "hits": [{"docid", "content", "score"}]})."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class Candidate:
    query_id: str
    doc_id: str
    rank: int
    score: float


@dataclass(frozen=True)
class BadLine:
    line: int
    reason: str
    excerpt: str


@dataclass
class GivenRun:
    """A run file read whole: its candidates (ranked from 1 per query by score, then file order),
    the texts it carries (JSON runs) and its content hash."""

    path: str
    sha256: str
    candidates: list[Candidate] = field(default_factory=list)
    documents: dict[str, str] = field(default_factory=dict)
    queries: dict[str, str] = field(default_factory=dict)
    bad_lines: list[BadLine] = field(default_factory=list)


class RunFormatError(ValueError):
    """A run file that is neither TREC nor RankGPT JSON; the message names the file and line."""


def _ranked(rows: list[tuple[str, str, float]]) -> list[Candidate]:
    """Per query, ranks from 1 by descending score (file order breaks ties), first occurrence kept."""
    by_query: dict[str, list[tuple[str, float, int]]] = {}
    seen: set[tuple[str, str]] = set()
    for position, (query_id, doc_id, score) in enumerate(rows):
        if (query_id, doc_id) not in seen:
            seen.add((query_id, doc_id))
            by_query.setdefault(query_id, []).append((doc_id, score, position))
    return [Candidate(q, d, rank, s) for q, hits in by_query.items()
            for rank, (d, s, _) in enumerate(sorted(hits, key=lambda h: (-h[1], h[2])), start=1)]


def _read_trec(path: Path, run: GivenRun) -> None:
    rows = []
    for line_no, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), start=1):
        if not line.strip():
            continue
        parts = line.split()
        if len(parts) != 6:
            reason = f"expected 6 columns (qid Q0 docid rank score tag), got {len(parts)}"
            run.bad_lines.append(BadLine(line_no, reason, line[:200]))
            continue
        try:
            rows.append((parts[0], parts[2], float(parts[4])))
        except ValueError:
            run.bad_lines.append(BadLine(line_no, f"score {parts[4]!r} is not a number", line[:200]))
            continue
    run.candidates = _ranked(rows)


def _json_records(path: Path, text: str) -> list[tuple[int, object]]:
    if text.lstrip().startswith("["):
        try:
            return list(enumerate(json.loads(text), start=1))
        except json.JSONDecodeError as exc:
            raise RunFormatError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno})") from exc
    records = []
    for line_no, line in enumerate(text.splitlines(), start=1):
        if line.strip():
            try:
                records.append((line_no, json.loads(line)))
            except json.JSONDecodeError as exc:
                records.append((line_no, exc))
    return records


def _read_json(path: Path, run: GivenRun) -> None:
    rows = []
    for where, record in _json_records(path, path.read_text(encoding="utf-8", errors="replace")):
        if isinstance(record, Exception) or not isinstance(record, dict) or "hits" not in record:
            run.bad_lines.append(BadLine(where, "expected an object with 'query' and 'hits'", str(record)[:200]))
            continue
        query = record.get("query")
        hits = record["hits"] or []
        query_id = (query.get("qid") if isinstance(query, dict) else None) or record.get("qid") or (
            hits[0].get("qid") if hits and isinstance(hits[0], dict) else None)
        if query_id is None:
            run.bad_lines.append(BadLine(where, "no query id (query.qid, qid or hits[].qid)", str(record)[:200]))
            continue
        query_id = str(query_id)
        text = query.get("text") if isinstance(query, dict) else query
        if text:
            run.queries.setdefault(query_id, str(text))
        for i, hit in enumerate(hits):
            if not isinstance(hit, dict) or "docid" not in hit:
                run.bad_lines.append(BadLine(where, f"hit {i} has no 'docid'", str(hit)[:200]))
                continue
            doc_id = str(hit["docid"])
            try:
                score = float(hit["score"]) if "score" in hit else -float(hit.get("rank", i + 1))
            except (TypeError, ValueError):
                run.bad_lines.append(BadLine(where, f"hit {i} has a score that is not a number", str(hit)[:200]))
                continue
            if hit.get("content"):
                run.documents.setdefault(doc_id, str(hit["content"]))
            rows.append((query_id, doc_id, score))
    run.candidates = _ranked(rows)


def read_run(path: str | Path) -> GivenRun:
    """Read a TREC run (`qid Q0 docid rank score tag`) or RankGPT/rank_llm JSON (a list or JSONL)."""
    path = Path(path)
    if not path.is_file():
        raise RunFormatError(f"{path}: first-stage run file not found")
    data = path.read_bytes()
    run = GivenRun(str(path), hashlib.sha256(data).hexdigest())
    first = data.lstrip()[:1]
    (_read_json if first in (b"[", b"{") else _read_trec)(path, run)
    if not run.candidates:
        first_bad = "; ".join(f"line {b.line}: {b.reason}" for b in run.bad_lines[:3])
        raise RunFormatError(f"{path}: no candidates could be read ({first_bad or 'empty file'})")
    if len(run.bad_lines) > len(run.candidates):
        raise RunFormatError(f"{path}: {len(run.bad_lines)} bad lines, e.g. line {run.bad_lines[0].line}: "
                             f"{run.bad_lines[0].reason}; is this a TREC run or RankGPT JSON?")
    return run


def write_trec_run(candidates: list[Candidate], path: str | Path, tag: str) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as handle:
        for c in candidates:
            handle.write(f"{c.query_id} Q0 {c.doc_id} {c.rank} {c.score:.6f} {tag}\n")
