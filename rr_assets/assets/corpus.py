"""Stage 1: a collection's files, observed, and its corpus, queries and qrels as DuckDB tables."""

import time

import dagster as dg
import pandas as pd

from rr_assets.core.collections import source_fingerprint
from rr_assets.partitions import collection_partitions
from rr_assets.resources import Collections, RRHome


@dg.observable_source_asset(partitions_def=collection_partitions, group_name="collection")
def collection_files(collections: dg.ResourceParam[Collections]) -> dg.DataVersionsByPartition:
    """The files of each configured collection (and its given first-stage run), observed: the data
    version is a fingerprint of their paths, sizes and modification times."""
    return dg.DataVersionsByPartition(
        {name: dg.DataVersion(source_fingerprint(source)) for name, source in collections.sources.items()})


@dg.multi_asset(
    specs=[
        dg.AssetSpec("corpus", deps=[collection_files], description="Documents of the collection", kinds={"duckdb"},
                     code_version="1"),
        dg.AssetSpec("queries", deps=[collection_files], description="Queries of the collection", kinds={"duckdb"},
                     code_version="1"),
        dg.AssetSpec("qrels", deps=[collection_files], description="Graded relevance judgments, with their split",
                     kinds={"duckdb"}, code_version="1"),
    ],
    partitions_def=collection_partitions,
    group_name="collection",
    pool="warehouse",
)
def collection_tables(context: dg.AssetExecutionContext, home: RRHome, collections: dg.ResourceParam[Collections]):
    started = time.monotonic()
    name = context.partition_key
    collection = collections.load(name)
    warehouse = home.warehouse()
    quarantine = pd.DataFrame([q.__dict__ for q in collection.quarantined], columns=["file", "line", "reason", "excerpt"])
    quarantine = quarantine.drop_duplicates(["file", "line"])
    quarantine.insert(0, "collection", name)
    warehouse.replace_rows("quarantine", {"collection": name}, quarantine)
    for q in collection.quarantined[:20]:
        context.log.warning(f"quarantined {q.file} line {q.line}: {q.reason}")
    frames = {
        "corpus": pd.DataFrame([{"doc_id": d.doc_id, "title": d.title, "text": d.text} for d in collection.documents]),
        "queries": pd.DataFrame([{"query_id": q.query_id, "text": q.text} for q in collection.queries]),
        "qrels": pd.DataFrame([r.__dict__ for r in collection.qrels], columns=["query_id", "doc_id", "relevance", "split"]),
    }
    source = collections.source(name)
    for table, frame in frames.items():
        frame.insert(0, "collection", name)
        warehouse.replace_rows(table, {"collection": name}, frame)
        yield dg.MaterializeResult(
            asset_key=table,
            metadata={"rows": len(frame), "source": source.path, "quarantined_lines": len(quarantine),
                      "qrels_splits": dg.MetadataValue.json(list(source.qrels_splits)),
                      "seconds": round(time.monotonic() - started, 2),
                      "preview": dg.MetadataValue.json(frame.head(3).to_dict("records"))},
            data_version=dg.DataVersion(warehouse.table_hash(table, {"collection": name})),
        )
