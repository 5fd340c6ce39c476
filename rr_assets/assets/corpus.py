"""Stage 1: a collection's corpus, queries and qrels as DuckDB tables."""

import dagster as dg
import pandas as pd

from rr_assets.partitions import collection_partitions
from rr_assets.resources import CollectionSources, RRHome


@dg.multi_asset(
    specs=[
        dg.AssetSpec("corpus", description="Documents of the collection", kinds={"duckdb"}),
        dg.AssetSpec("queries", description="Queries of the collection", kinds={"duckdb"}),
        dg.AssetSpec("qrels", description="Graded relevance judgments (0-2)", kinds={"duckdb"}),
    ],
    partitions_def=collection_partitions,
    group_name="collection",
)
def collection_tables(context: dg.AssetExecutionContext, home: RRHome, sources: CollectionSources):
    name = context.partition_key
    collection = sources.load(name)
    warehouse = home.warehouse()
    quarantine = pd.DataFrame([q.__dict__ for q in collection.quarantined],
                              columns=["file", "line", "reason", "excerpt"])
    quarantine.insert(0, "collection", name)
    warehouse.replace_rows("quarantine", {"collection": name}, quarantine)
    for q in collection.quarantined[:20]:
        context.log.warning(f"quarantined {q.file} line {q.line}: {q.reason}")
    frames = {
        "corpus": pd.DataFrame([{"doc_id": d.doc_id, "title": d.title, "text": d.text} for d in collection.documents]),
        "queries": pd.DataFrame([{"query_id": q.query_id, "text": q.text} for q in collection.queries]),
        "qrels": pd.DataFrame(
            [{"query_id": r.query_id, "doc_id": r.doc_id, "relevance": r.relevance} for r in collection.qrels],
            columns=["query_id", "doc_id", "relevance"],
        ),
    }
    for table, frame in frames.items():
        frame.insert(0, "collection", name)
        warehouse.replace_rows(table, {"collection": name}, frame)
        yield dg.MaterializeResult(
            asset_key=table,
            metadata={"rows": len(frame), "source": sources.folders[name], "quarantined_lines": len(quarantine),
                      "preview": dg.MetadataValue.json(frame.head(3).to_dict("records"))},
            data_version=dg.DataVersion(warehouse.table_hash(table, {"collection": name})),
        )
