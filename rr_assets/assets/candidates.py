"""Stage 3: BM25 candidate lists per query, into DuckDB and a TREC run file."""

import dagster as dg
import pandas as pd

from rr_assets.core.collections import Query
from rr_assets.core.retrieval import search, write_trec_run
from rr_assets.partitions import collection_partitions
from rr_assets.resources import BM25Settings, RRHome


@dg.asset(deps=["bm25_index", "queries"], partitions_def=collection_partitions, group_name="retrieval",
          kinds={"lucene", "duckdb"})
def bm25_candidates(context: dg.AssetExecutionContext, home: RRHome, bm25: BM25Settings) -> dg.MaterializeResult:
    """Top-`depth` BM25 (k1, b) candidates of every query."""
    collection = context.partition_key
    warehouse = home.warehouse()
    rows = warehouse.fetch_df("SELECT query_id, text FROM queries WHERE collection = ? ORDER BY query_id", [collection])
    queries = [Query(r.query_id, r.text) for r in rows.itertuples()]
    candidates = search(home.dir("indexes") / collection, queries, bm25.depth, bm25.k1, bm25.b)
    frame = pd.DataFrame([c.__dict__ for c in candidates], columns=["query_id", "doc_id", "rank", "score"])
    frame.insert(0, "collection", collection)
    warehouse.replace_rows("candidates", {"collection": collection}, frame)
    run_path = home.dir("runs", collection) / "bm25.trec"
    write_trec_run(candidates, run_path, "bm25")
    return dg.MaterializeResult(
        metadata={"rows": len(frame), "queries": len(queries), "k1": bm25.k1, "b": bm25.b, "depth": bm25.depth,
                  "run_file": str(run_path)},
        data_version=dg.DataVersion(warehouse.table_hash("candidates", {"collection": collection})),
    )
