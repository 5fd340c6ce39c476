"""Partitions: collections (kept in step with the config) and prompt variants (one per folder in
resources/prompts/, kept in step by a sensor); teacher outputs and everything trained on them are
partitioned by both. Also the lookup of one partition's latest materialisation metadata."""

import dagster as dg

collection_partitions = dg.DynamicPartitionsDefinition(name="collection")
prompt_variant_partitions = dg.DynamicPartitionsDefinition(name="prompt_variant")
collection_variant_partitions = dg.MultiPartitionsDefinition(
    {"collection": collection_partitions, "prompt_variant": prompt_variant_partitions}
)


def collection_and_variant(context) -> tuple[str, str]:
    keys = context.partition_key.keys_by_dimension
    return keys["collection"], keys["prompt_variant"]


def variant_key(collection: str, variant: str) -> dg.MultiPartitionKey:
    return dg.MultiPartitionKey({"collection": collection, "prompt_variant": variant})


def latest_metadata(instance: dg.DagsterInstance, asset: dg.AssetKey, partition: str) -> dict | None:
    """The metadata values of `asset[partition]`'s latest materialisation; None when it has none."""
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=asset, asset_partitions=[partition]), limit=1).records
    return {k: v.value for k, v in records[0].asset_materialization.metadata.items()} if records else None
