"""Stage 5: training tables from dbt_like_sql/ (one file = one table = one asset)."""

from pathlib import Path

import dagster as dg

from rr_assets.core.sql_models import SqlModel, load_models, run_model
from rr_assets.partitions import collection_partitions
from rr_assets.resources import RRHome, SqlModelSettings


def _sql_model_asset(model: SqlModel) -> dg.AssetsDefinition:
    @dg.asset(
        name=model.name,
        deps=list(model.refs),
        partitions_def=collection_partitions,
        code_version=model.code_version,
        group_name="training_tables",
        kinds={"duckdb", "sql"},
        description=f"Built from {model.path.name}",
    )
    def sql_table(context: dg.AssetExecutionContext, home: RRHome, sql_models: SqlModelSettings) -> dg.MaterializeResult:
        collection = context.partition_key
        warehouse = home.warehouse()
        with warehouse.connect() as con:
            rows = run_model(con, model, {"collection": collection, "eval_percent": sql_models.eval_percent})
        table_hash = warehouse.table_hash(model.name, {"collection": collection})
        return dg.MaterializeResult(
            metadata={"rows": rows, "sql_file": model.path.name, "table_hash": table_hash},
            data_version=dg.DataVersion(table_hash),
        )

    return sql_table


def build_training_table_assets(folder: str | Path) -> list[dg.AssetsDefinition]:
    return [_sql_model_asset(model) for model in load_models(folder).values()]
