"""Collections in BEIR layout: corpus.jsonl, queries.jsonl, qrels/<split>.tsv.

Bad input policy (each case is tested):
- a missing file, or a file where most lines are bad (likely not BEIR at all): CollectionError
  naming the file (and the first bad lines), nothing is loaded;
- a bad line (invalid UTF-8, not JSON, not an object, missing `_id`/`text`, empty text, a
  duplicate id after its first occurrence, a qrels row with the wrong column count, a
  non-integer score, or an unknown query or document): the line is quarantined with its file,
  line number and reason, and loading goes on;
- very long documents are kept whole here; the teacher and the student cut them to their budgets
  and the teacher records which documents it cut (`teacher_judgments.truncated`)."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field
from pathlib import Path


class CollectionError(ValueError):
    """Input that cannot be loaded at all; the message names the file (and line)."""


@dataclass(frozen=True)
class Document:
    doc_id: str
    title: str
    text: str


@dataclass(frozen=True)
class Query:
    query_id: str
    text: str


@dataclass(frozen=True)
class Qrel:
    query_id: str
    doc_id: str
    relevance: int


@dataclass(frozen=True)
class QuarantinedLine:
    file: str
    line: int
    reason: str
    excerpt: str


@dataclass(frozen=True)
class Collection:
    name: str
    documents: list[Document]
    queries: list[Query]
    qrels: list[Qrel]
    quarantined: list[QuarantinedLine] = field(default_factory=list)


class _Reader:
    """Reads one file line by line, quarantining bad lines; fails if most lines are bad."""

    def __init__(self, path: Path, max_bad_fraction: float):
        if not path.is_file():
            raise CollectionError(f"{path}: file not found")
        self.path, self.max_bad_fraction = path, max_bad_fraction
        self.quarantined: list[QuarantinedLine] = []
        self.lines = 0

    def bad(self, line_no: int, reason: str, raw: bytes | str) -> None:
        text = raw.decode("utf-8", errors="replace") if isinstance(raw, bytes) else raw
        self.quarantined.append(QuarantinedLine(str(self.path), line_no, reason, text.strip()[:200]))

    def lines_of(self):
        with self.path.open("rb") as handle:
            for line_no, raw in enumerate(handle, start=1):
                if raw.strip():
                    self.lines += 1
                    yield line_no, raw

    def finish(self) -> list[QuarantinedLine]:
        if self.lines and len(self.quarantined) > self.max_bad_fraction * self.lines:
            first = "; ".join(f"line {q.line}: {q.reason}" for q in self.quarantined[:3])
            raise CollectionError(
                f"{self.path}: {len(self.quarantined)} of {self.lines} lines are bad ({first}); is this a BEIR file?"
            )
        return self.quarantined


def _json_records(reader: _Reader, required: tuple[str, ...]):
    for line_no, raw in reader.lines_of():
        try:
            record = json.loads(raw.decode("utf-8"))
        except UnicodeDecodeError as exc:
            reader.bad(line_no, f"invalid UTF-8 ({exc.reason})", raw)
            continue
        except json.JSONDecodeError as exc:
            reader.bad(line_no, f"not valid JSON ({exc.msg})", raw)
            continue
        if not isinstance(record, dict):
            reader.bad(line_no, "expected a JSON object", raw)
            continue
        missing = [key for key in required if key not in record]
        if missing:
            reader.bad(line_no, f"missing {missing[0]!r}", raw)
            continue
        yield line_no, raw, record


def load_beir(name: str, folder: str | Path, qrels_split: str = "test", max_bad_fraction: float = 0.5) -> Collection:
    """Load a BEIR folder under the bad-input policy of this module."""
    folder = Path(folder)
    quarantined: list[QuarantinedLine] = []

    corpus = _Reader(folder / "corpus.jsonl", max_bad_fraction)
    documents, seen_docs = [], set()
    for line_no, raw, rec in _json_records(corpus, ("_id", "text")):
        doc_id, title, text = str(rec["_id"]), str(rec.get("title") or ""), str(rec["text"] or "")
        if doc_id in seen_docs:
            corpus.bad(line_no, f"duplicate id {doc_id!r} (the first occurrence is kept)", raw)
        elif not (title + text).strip():
            corpus.bad(line_no, f"document {doc_id!r} has no text", raw)
        else:
            seen_docs.add(doc_id)
            documents.append(Document(doc_id, title, text))
    quarantined += corpus.finish()

    queries_file = _Reader(folder / "queries.jsonl", max_bad_fraction)
    queries, seen_queries = [], set()
    for line_no, raw, rec in _json_records(queries_file, ("_id", "text")):
        query_id, text = str(rec["_id"]), str(rec["text"] or "")
        if query_id in seen_queries:
            queries_file.bad(line_no, f"duplicate id {query_id!r} (the first occurrence is kept)", raw)
        elif not text.strip():
            queries_file.bad(line_no, f"query {query_id!r} has no text", raw)
        else:
            seen_queries.add(query_id)
            queries.append(Query(query_id, text))
    quarantined += queries_file.finish()

    qrels_file = _Reader(folder / "qrels" / f"{qrels_split}.tsv", max_bad_fraction)
    qrels, seen_pairs = [], set()
    for line_no, raw in qrels_file.lines_of():
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            qrels_file.bad(line_no, f"invalid UTF-8 ({exc.reason})", raw)
            continue
        row = next(csv.reader(io.StringIO(text), delimiter="\t"))
        if line_no == 1 and row and row[0] == "query-id":
            qrels_file.lines -= 1
            continue
        if len(row) != 3:
            qrels_file.bad(line_no, f"expected 3 tab-separated columns, got {len(row)}", raw)
            continue
        query_id, doc_id, score = row
        try:
            relevance = int(score)
        except ValueError:
            qrels_file.bad(line_no, f"score {score!r} is not an integer", raw)
            continue
        if query_id not in seen_queries:
            qrels_file.bad(line_no, f"unknown query {query_id!r}", raw)
        elif doc_id not in seen_docs:
            qrels_file.bad(line_no, f"unknown document {doc_id!r}", raw)
        elif (query_id, doc_id) in seen_pairs:
            qrels_file.bad(line_no, f"duplicate judgment of ({query_id!r}, {doc_id!r})", raw)
        else:
            seen_pairs.add((query_id, doc_id))
            qrels.append(Qrel(query_id, doc_id, relevance))
    quarantined += qrels_file.finish()
    return Collection(name, documents, queries, qrels, quarantined)
