"""Stage 3: the first stage's candidate lists per query (rr's BM25, or a given run), into DuckDB and
a TREC run file."""

import time

import dagster as dg
import pandas as pd

from rr_assets.core.collections import Query
from rr_assets.core.first_stage import read_run, write_trec_run
from rr_assets.core.retrieval import search
from rr_assets.core.settings import RetrievalSettings
from rr_assets.partitions import collection_partitions
from rr_assets.resources import Collections, RRHome


@dg.asset(deps=["bm25_index", "queries", "corpus", "collection_files"], partitions_def=collection_partitions,
          group_name="retrieval", kinds={"lucene", "duckdb"}, pool="warehouse", code_version="1")
def first_stage_candidates(context: dg.AssetExecutionContext, home: RRHome, retrieval: dg.ResourceParam[RetrievalSettings],
                           collections: dg.ResourceParam[Collections]) -> dg.MaterializeResult:
    """Top-`first_stage_depth` candidates of every query: BM25 (k1, b) over the index, or the given
    run's candidates (queries and documents the collection lacks are left out)."""
    started = time.monotonic()
    collection = context.partition_key
    source = collections.source(collection)
    warehouse = home.warehouse()
    queries = [Query(r.query_id, r.text) for r in warehouse.query("collection_queries", {"collection": collection}).itertuples()]
    if source.first_stage_run:
        run = read_run(source.first_stage_run)
        known_docs = set(warehouse.query("corpus_documents", {"collection": collection})["doc_id"])
        known_queries = {q.query_id for q in queries}
        candidates = [c for c in run.candidates if c.rank <= retrieval.first_stage_depth
                      and c.query_id in known_queries and c.doc_id in known_docs]
        origin = {"first_stage": "given run", "run_file": run.path, "run_sha256": run.sha256}
    else:
        candidates = search(home.dir("indexes") / collection, queries, retrieval.first_stage_depth, retrieval.k1, retrieval.b)
        origin = {"first_stage": "bm25", "k1": retrieval.k1, "b": retrieval.b}
    frame = pd.DataFrame([c.__dict__ for c in candidates], columns=["query_id", "doc_id", "rank", "score"])
    frame.insert(0, "collection", collection)
    warehouse.replace_rows("first_stage_candidates", {"collection": collection}, frame)
    run_path = home.dir("runs", collection) / "first_stage.trec"
    write_trec_run(candidates, run_path, "first_stage")
    return dg.MaterializeResult(
        metadata={"rows": len(frame), "queries": int(frame["query_id"].nunique()), "depth": retrieval.first_stage_depth,
                  "run_file_written": str(run_path), "seconds": round(time.monotonic() - started, 2), **origin},
        data_version=dg.DataVersion(warehouse.table_hash("first_stage_candidates", {"collection": collection})),
    )
