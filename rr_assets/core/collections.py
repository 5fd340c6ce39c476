"""Collections in BEIR layout: corpus.jsonl, queries.jsonl, qrels/<split>.tsv."""

from __future__ import annotations

import csv
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path


class CollectionError(ValueError):
    """Input that cannot be loaded; the message names the file and line."""


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
class Collection:
    name: str
    documents: list[Document]
    queries: list[Query]
    qrels: list[Qrel]

    def content_hash(self) -> str:
        """A hash of everything the collection holds, for data versions and lineage."""
        digest = hashlib.sha256()
        for d in self.documents:
            digest.update(f"d\t{d.doc_id}\t{d.title}\t{d.text}\n".encode())
        for q in self.queries:
            digest.update(f"q\t{q.query_id}\t{q.text}\n".encode())
        for r in self.qrels:
            digest.update(f"r\t{r.query_id}\t{r.doc_id}\t{r.relevance}\n".encode())
        return digest.hexdigest()


def _read_jsonl(path: Path, required: tuple[str, ...]):
    if not path.exists():
        raise CollectionError(f"{path}: file not found")
    with path.open("rb") as handle:
        for line_no, raw in enumerate(handle, start=1):
            if not raw.strip():
                continue
            try:
                record = json.loads(raw.decode("utf-8"))
            except UnicodeDecodeError as exc:
                raise CollectionError(f"{path} line {line_no}: invalid UTF-8 ({exc.reason})") from exc
            except json.JSONDecodeError as exc:
                raise CollectionError(f"{path} line {line_no}: not valid JSON ({exc.msg})") from exc
            if not isinstance(record, dict):
                raise CollectionError(f"{path} line {line_no}: expected a JSON object")
            for key in required:
                if key not in record:
                    raise CollectionError(f"{path} line {line_no}: missing {key!r}")
            yield line_no, record


def _unique(path: Path, line_no: int, seen: set[str], key: str) -> None:
    if key in seen:
        raise CollectionError(f"{path} line {line_no}: duplicate id {key!r}")
    seen.add(key)


def load_beir(name: str, folder: str | Path, qrels_split: str = "test") -> Collection:
    """Load a BEIR folder, failing on the first bad line with its file and line number."""
    folder = Path(folder)
    documents, seen_docs = [], set()
    corpus_path = folder / "corpus.jsonl"
    for line_no, rec in _read_jsonl(corpus_path, ("_id", "text")):
        doc_id = str(rec["_id"])
        _unique(corpus_path, line_no, seen_docs, doc_id)
        title, text = str(rec.get("title") or ""), str(rec["text"] or "")
        if not (title + text).strip():
            raise CollectionError(f"{corpus_path} line {line_no}: document {doc_id!r} has no text")
        documents.append(Document(doc_id, title, text))

    queries, seen_queries = [], set()
    queries_path = folder / "queries.jsonl"
    for line_no, rec in _read_jsonl(queries_path, ("_id", "text")):
        query_id = str(rec["_id"])
        _unique(queries_path, line_no, seen_queries, query_id)
        if not str(rec["text"]).strip():
            raise CollectionError(f"{queries_path} line {line_no}: query {query_id!r} has no text")
        queries.append(Query(query_id, str(rec["text"])))

    qrels_path = folder / "qrels" / f"{qrels_split}.tsv"
    if not qrels_path.exists():
        raise CollectionError(f"{qrels_path}: file not found")
    qrels = []
    with qrels_path.open(newline="", encoding="utf-8") as handle:
        for line_no, row in enumerate(csv.reader(handle, delimiter="\t"), start=1):
            if not row or (line_no == 1 and row[0] == "query-id"):
                continue
            if len(row) != 3:
                raise CollectionError(f"{qrels_path} line {line_no}: expected 3 columns, got {len(row)}")
            query_id, doc_id, score = row
            try:
                relevance = int(score)
            except ValueError as exc:
                raise CollectionError(f"{qrels_path} line {line_no}: score {score!r} is not an integer") from exc
            if query_id not in seen_queries:
                raise CollectionError(f"{qrels_path} line {line_no}: unknown query {query_id!r}")
            if doc_id not in seen_docs:
                raise CollectionError(f"{qrels_path} line {line_no}: unknown document {doc_id!r}")
            qrels.append(Qrel(query_id, doc_id, relevance))
    return Collection(name, documents, queries, qrels)
