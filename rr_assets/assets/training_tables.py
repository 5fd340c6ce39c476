"""Stage 5: training tables from dbt_like_sql/ (one file = one table = one asset).

A model that filters on `$prompt_variant` is partitioned by collection × prompt variant; the
others by collection."""

from pathlib import Path

import dagster as dg

from rr_assets.core.sql_models import SqlModel, load_models, run_model
from rr_assets.partitions import collection_partitions, collection_variant_partitions
from rr_assets.resources import RRHome, SqlModelSettings


def _partition_values(context: dg.AssetExecutionContext) -> dict[str, str]:
    key = context.partition_key
    if isinstance(key, dg.MultiPartitionKey):
        return dict(key.keys_by_dimension)
    return {"collection": key}


def _sql_model_asset(model: SqlModel) -> dg.AssetsDefinition:
    by_variant = "prompt_variant" in model.partition_columns()

    @dg.asset(
        name=model.name,
        deps=list(model.refs),
        partitions_def=collection_variant_partitions if by_variant else collection_partitions,
        code_version=model.code_version,
        group_name="training_tables",
        kinds={"duckdb", "sql"},
        description=f"Built from {model.path.name}",
        pool="warehouse",
    )
    def sql_table(context: dg.AssetExecutionContext, home: RRHome, sql_models: SqlModelSettings) -> dg.MaterializeResult:
        partition = _partition_values(context)
        warehouse = home.warehouse()
        with warehouse.connect() as con:
            rows = run_model(con, model, {**partition, "eval_percent": sql_models.eval_percent})
        table_hash = warehouse.table_hash(model.name, partition)
        return dg.MaterializeResult(
            metadata={"rows": rows, "sql_file": model.path.name, "table_hash": table_hash},
            data_version=dg.DataVersion(table_hash),
        )

    return sql_table


def build_training_table_assets(folder: str | Path) -> list[dg.AssetsDefinition]:
    return [_sql_model_asset(model) for model in load_models(folder).values()]
