"""BM25 over a Lucene index, built and searched through pyserini."""

from __future__ import annotations

import shutil
from pathlib import Path

from rr_assets.core.collections import Document, Query
from rr_assets.core.first_stage import Candidate
from rr_assets.core.jvm import pyserini_lucene


def build_index(documents: list[Document], index_dir: str | Path, threads: int = 1) -> int:
    """Write a fresh Lucene index (positions, stored raw text) of the documents; returns its size."""
    index_dir = Path(index_dir)
    staging = index_dir.with_name(index_dir.name + ".building")
    shutil.rmtree(staging, ignore_errors=True)
    staging.parent.mkdir(parents=True, exist_ok=True)
    lucene = pyserini_lucene()
    indexer = lucene.LuceneIndexer(
        str(staging), args=["-index", str(staging), "-storePositions", "-storeRaw", "-threads", str(threads)]
    )
    for doc in documents:
        indexer.add_doc_dict({"id": doc.doc_id, "contents": f"{doc.title}\n{doc.text}".strip()})
    indexer.close()
    shutil.rmtree(index_dir, ignore_errors=True)
    staging.rename(index_dir)
    return lucene.LuceneSearcher(str(index_dir)).num_docs


def search(index_dir: str | Path, queries: list[Query], depth: int, k1: float, b: float) -> list[Candidate]:
    """Top-`depth` BM25 candidates per query, ranks from 1."""
    searcher = pyserini_lucene().LuceneSearcher(str(index_dir))
    searcher.set_bm25(k1, b)
    candidates = []
    for query in queries:
        for rank, hit in enumerate(searcher.search(query.text, k=depth), start=1):
            candidates.append(Candidate(query.query_id, hit.docid, rank, float(hit.score)))
    return candidates
