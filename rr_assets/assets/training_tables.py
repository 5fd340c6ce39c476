"""Stage 5: the derived tables of dbt_like_sql/ (one file = one table = one asset): the splits and
the training tables. A model that filters on `$prompt_variant` is partitioned by collection ×
prompt variant; the others by collection. A model's header comment is its description."""

import time
from pathlib import Path

import dagster as dg

from rr_assets.core.settings import SplitSettings, StudentSettings
from rr_assets.core.sql_models import SqlModel, load_models, run_model
from rr_assets.partitions import collection_partitions, collection_variant_partitions
from rr_assets.resources import Collections, RRHome, TeacherService


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
        description=model.description,
        pool="warehouse",
    )
    def sql_table(context: dg.AssetExecutionContext, home: RRHome, splits: dg.ResourceParam[SplitSettings],
                  collections: dg.ResourceParam[Collections], teacher: dg.ResourceParam[TeacherService],
                  student: dg.ResourceParam[StudentSettings]) -> dg.MaterializeResult:
        started = time.monotonic()
        partition = _partition_values(context)
        source = collections.source(partition["collection"])
        params = {**partition, "train_split": source.train_split, "eval_split": source.eval_split,
                  "dev_split": source.dev_split, "student_from": source.student_from,
                  "eval_percent": splits.eval_percent, "dev_percent": splits.dev_percent,
                  "hard_negative_depth": student.hard_negative_depth}
        if "prompt_variant" in partition:
            variant = teacher.variant(partition["prompt_variant"])
            params.update(grounded=variant.grounded, max_label=max(variant.labels))
        warehouse = home.warehouse()
        with warehouse.connect() as con:
            result = run_model(con, model, params)
        for step in result.migrations:
            context.log.warning(f"{model.path.name}: table {model.name} {step}")
        table_hash = warehouse.table_hash(model.name, partition)
        return dg.MaterializeResult(
            metadata={"rows": result.rows, "sql_file": model.path.name, "table_hash": table_hash,
                      "seconds": round(time.monotonic() - started, 2)},
            data_version=dg.DataVersion(table_hash),
        )

    return sql_table


def build_sql_model_assets(folder: str | Path) -> list[dg.AssetsDefinition]:
    return [_sql_model_asset(model) for model in load_models(folder).values()]
