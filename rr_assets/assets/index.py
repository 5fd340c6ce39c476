"""Stage 2: a Lucene BM25 index of the corpus, built with pyserini (not for a candidate-only corpus)."""

import time

import dagster as dg

from rr_assets.core.collections import Document
from rr_assets.core.retrieval import build_index
from rr_assets.partitions import collection_partitions
from rr_assets.resources import Collections, RRHome


@dg.asset(deps=["corpus"], partitions_def=collection_partitions, group_name="retrieval", kinds={"lucene"}, code_version="1")
def bm25_index(context: dg.AssetExecutionContext, home: RRHome,
               collections: dg.ResourceParam[Collections]) -> dg.MaterializeResult:
    """Lucene index (Porter stemming, positions, raw text stored) under RR_HOME/indexes/<collection>;
    a collection with a given first-stage run is never re-retrieved, so it gets no index."""
    collection = context.partition_key
    warehouse = home.warehouse()
    corpus_hash = warehouse.table_hash("corpus", {"collection": collection})
    run = collections.source(collection).first_stage_run
    if run:
        return dg.MaterializeResult(metadata={"built": False, "reason": f"candidates come from {run}",
                                              "corpus_hash": corpus_hash},
                                    data_version=dg.DataVersion(f"no-index:{corpus_hash}"))
    rows = warehouse.query("corpus_documents", {"collection": collection})
    documents = [Document(r.doc_id, r.title or "", r.text) for r in rows.itertuples()]
    index_dir = home.dir("indexes") / collection
    started = time.monotonic()
    size = build_index(documents, index_dir)
    return dg.MaterializeResult(
        metadata={"built": True, "documents": size, "path": str(index_dir), "seconds": round(time.monotonic() - started, 2),
                  "corpus_hash": corpus_hash},
        data_version=dg.DataVersion(corpus_hash),
    )
