"""Collections in BEIR layout (corpus.jsonl, queries.jsonl, qrels/<split>.tsv), with named splits
and, optionally, a given first-stage run.

Bad input policy (each case is tested):
- a missing file, or a file where most lines are bad (likely not BEIR at all): CollectionError
  naming the file (and the first bad lines), nothing is loaded;
- a bad line (invalid UTF-8, not JSON, not an object, missing `_id`/`text`, empty text, a
  duplicate id after its first occurrence, a qrels row with the wrong column count, a
  non-integer score, or an unknown query or document; a run line that cannot be read or names an
  unknown query or document): the line is quarantined with its file, line number and reason, and
  loading goes on;
- a query judged in two splits: CollectionError naming the query (training and evaluation queries
  never overlap);
- qrels naming documents absent from a candidate-only corpus (one with a given run) are kept: they
  count in the ideal DCG;
- very long documents are kept whole here; the teacher and the student cut them to their budgets
  and the teacher records which documents it cut (`teacher_judgments.truncated`)."""

from __future__ import annotations

import csv
import hashlib
import io
import json
from dataclasses import dataclass, field
from pathlib import Path

from rr_assets.core.first_stage import Candidate, read_run


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
    split: str


@dataclass(frozen=True)
class QuarantinedLine:
    file: str
    line: int
    reason: str
    excerpt: str


@dataclass(frozen=True)
class CollectionSource:
    """One entry of a config's `collections`: where the collection is and how it is split."""

    name: str
    path: str
    eval_split: str = "test"  # the qrels split whose queries evaluate
    train_split: str = ""  # the qrels split whose queries train; "" = a hash split of eval_split's queries
    first_stage_run: str = ""  # a TREC run or RankGPT JSON whose candidates replace rr's BM25
    first_stage_name: str = ""  # the first stage's name in reports; "" = "bm25", or "first_stage" for a given run
    dev_split: str = ""  # a qrels split whose queries are all dev queries (a collection for model selection)
    teacher_answers: tuple[str, ...] = ()  # teacher answer files an `imported` prompt variant reads
    student_from: str = ""  # evaluate the student trained on that collection here (every judged query evaluates)
    dev_from: str = ""  # select this collection's student on that collection's dev queries

    @property
    def first_stage_label(self) -> str:
        return self.first_stage_name or ("first_stage" if self.first_stage_run else "bm25")

    @property
    def qrels_splits(self) -> tuple[str, ...]:
        return tuple(s for s in (self.train_split, self.eval_split, self.dev_split) if s)

    @property
    def trained_on(self) -> str:
        """The collection whose student reranks this one (itself, unless `student_from`)."""
        return self.student_from or self.name


@dataclass(frozen=True)
class Collection:
    name: str
    documents: list[Document]
    queries: list[Query]
    qrels: list[Qrel]
    quarantined: list[QuarantinedLine] = field(default_factory=list)
    candidates: list[Candidate] | None = None  # from a given first-stage run
    run_sha256: str = ""


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


def _read_documents(path: Path, max_bad_fraction: float, quarantined: list) -> list[Document]:
    corpus = _Reader(path, max_bad_fraction)
    documents, seen = [], set()
    for line_no, raw, rec in _json_records(corpus, ("_id", "text")):
        doc_id, title, text = str(rec["_id"]), str(rec.get("title") or ""), str(rec["text"] or "")
        if doc_id in seen:
            corpus.bad(line_no, f"duplicate id {doc_id!r} (the first occurrence is kept)", raw)
        elif not (title + text).strip():
            corpus.bad(line_no, f"document {doc_id!r} has no text", raw)
        else:
            seen.add(doc_id)
            documents.append(Document(doc_id, title, text))
    quarantined += corpus.finish()
    return documents


def _read_queries(path: Path, max_bad_fraction: float, quarantined: list) -> list[Query]:
    queries_file = _Reader(path, max_bad_fraction)
    queries, seen = [], set()
    for line_no, raw, rec in _json_records(queries_file, ("_id", "text")):
        query_id, text = str(rec["_id"]), str(rec["text"] or "")
        if query_id in seen:
            queries_file.bad(line_no, f"duplicate id {query_id!r} (the first occurrence is kept)", raw)
        elif not text.strip():
            queries_file.bad(line_no, f"query {query_id!r} has no text", raw)
        else:
            seen.add(query_id)
            queries.append(Query(query_id, text))
    quarantined += queries_file.finish()
    return queries


def _read_qrels(path: Path, split: str, query_ids: set[str], doc_ids: set[str] | None, max_bad_fraction: float,
                quarantined: list) -> list[Qrel]:
    """`doc_ids` None: documents outside the corpus are kept (a candidate-only corpus)."""
    qrels_file = _Reader(path, max_bad_fraction)
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
        if query_id not in query_ids:
            qrels_file.bad(line_no, f"unknown query {query_id!r}", raw)
        elif doc_ids is not None and doc_id not in doc_ids:
            qrels_file.bad(line_no, f"unknown document {doc_id!r}", raw)
        elif (query_id, doc_id) in seen_pairs:
            qrels_file.bad(line_no, f"duplicate judgment of ({query_id!r}, {doc_id!r})", raw)
        else:
            seen_pairs.add((query_id, doc_id))
            qrels.append(Qrel(query_id, doc_id, relevance, split))
    quarantined += qrels_file.finish()
    return qrels


def load_collection(source: CollectionSource, max_bad_fraction: float = 0.5) -> Collection:
    """Load a BEIR folder (and its given run) under the bad-input policy of this module."""
    folder = Path(source.path)
    quarantined: list[QuarantinedLine] = []
    run = read_run(source.first_stage_run) if source.first_stage_run else None
    corpus_path, queries_path = folder / "corpus.jsonl", folder / "queries.jsonl"
    documents = _read_documents(corpus_path, max_bad_fraction, quarantined) if corpus_path.exists() or not (
        run and run.documents) else []
    queries = _read_queries(queries_path, max_bad_fraction, quarantined) if queries_path.exists() or not (
        run and run.queries) else []
    if run:
        known_docs, known_queries = {d.doc_id for d in documents}, {q.query_id for q in queries}
        documents += [Document(d, "", text) for d, text in run.documents.items() if d not in known_docs]
        queries += [Query(q, text) for q, text in run.queries.items() if q not in known_queries]
        quarantined += [QuarantinedLine(run.path, b.line, b.reason, b.excerpt) for b in run.bad_lines]
    query_ids, doc_ids = {q.query_id for q in queries}, {d.doc_id for d in documents}
    qrels: list[Qrel] = []
    for split in source.qrels_splits:
        qrels += _read_qrels(folder / "qrels" / f"{split}.tsv", split, query_ids, None if run else doc_ids,
                             max_bad_fraction, quarantined)
    splits_of: dict[str, set[str]] = {}
    for r in qrels:
        splits_of.setdefault(r.query_id, set()).add(r.split)
    both = sorted(q for q, s in splits_of.items() if len(s) > 1)
    if both:
        found = [s for s in source.qrels_splits if s in splits_of[both[0]]]
        raise CollectionError(f"{folder / 'qrels'}: query {both[0]!r} is judged in both {found[0]}.tsv and "
                              f"{found[1]}.tsv ({len(both)} such queries); training, dev and evaluation "
                              "queries must not overlap")
    candidates = None
    if run:
        candidates = []
        for c in run.candidates:
            if c.query_id not in query_ids or c.doc_id not in doc_ids:
                what = f"unknown query {c.query_id!r}" if c.query_id not in query_ids else f"unknown document {c.doc_id!r}"
                quarantined.append(QuarantinedLine(run.path, 0, f"{what} in the run", f"{c.query_id} {c.doc_id}"))
            else:
                candidates.append(c)
    return Collection(source.name, documents, queries, qrels, quarantined, candidates, run.sha256 if run else "")


def source_fingerprint(source: CollectionSource) -> str:
    """Changes when any file of the collection (or its given run) changes: path, size and
    modification time of each, hashed."""
    folder = Path(source.path)
    files = sorted(p for p in folder.rglob("*") if p.is_file()) if folder.is_dir() else []
    if source.first_stage_run:
        files.append(Path(source.first_stage_run))
    answers = {Path(f).resolve() for f in source.teacher_answers}  # observed on their own (teacher_answer_files)
    files = [f for f in files if f.resolve() not in answers]
    entries = [[str(p), p.stat().st_size, p.stat().st_mtime_ns] for p in files if p.exists()]
    return hashlib.sha256(json.dumps(entries).encode()).hexdigest()[:16]
