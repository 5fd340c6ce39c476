"""Stage 2: a Lucene BM25 index of the corpus, built with pyserini."""

import time

import dagster as dg

from rr_assets.core.collections import Document
from rr_assets.core.retrieval import build_index
from rr_assets.partitions import collection_partitions
from rr_assets.resources import RRHome


@dg.asset(deps=["corpus"], partitions_def=collection_partitions, group_name="retrieval", kinds={"lucene"})
def bm25_index(context: dg.AssetExecutionContext, home: RRHome) -> dg.MaterializeResult:
    """Lucene index (Porter stemming, positions, raw text stored) under RR_HOME/indexes/<collection>."""
    collection = context.partition_key
    rows = home.warehouse().fetch_df(
        "SELECT doc_id, title, text FROM corpus WHERE collection = ? ORDER BY doc_id", [collection]
    )
    documents = [Document(r.doc_id, r.title or "", r.text) for r in rows.itertuples()]
    index_dir = home.dir("indexes") / collection
    started = time.monotonic()
    size = build_index(documents, index_dir)
    corpus_hash = home.warehouse().table_hash("corpus", {"collection": collection})
    return dg.MaterializeResult(
        metadata={"documents": size, "path": str(index_dir), "seconds": round(time.monotonic() - started, 2),
                  "corpus_hash": corpus_hash},
        data_version=dg.DataVersion(corpus_hash),
    )
