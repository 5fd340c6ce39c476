"""Partitions: one per configured collection (dynamic, kept in step with the config file)."""

import dagster as dg

collection_partitions = dg.DynamicPartitionsDefinition(name="collection")
