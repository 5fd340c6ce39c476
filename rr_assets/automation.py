"""Sensors that keep partitions in step with the world: prompt-variant folders and configured
collections; an edited variant gets its `prompt_templates` partition re-materialised."""

from __future__ import annotations

import dagster as dg

from rr_assets.core.prompts import list_variants, load_variant
from rr_assets.partitions import collection_partitions, prompt_variant_partitions

PROMPTS_JOB = "rr_prompts"


def _recorded_hash(instance: dg.DagsterInstance, variant: str) -> str | None:
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey("prompt_templates"), asset_partitions=[variant]), limit=1
    ).records
    if not records:
        return None
    return records[0].asset_materialization.metadata["prompt_hash"].value


def build_prompt_variant_sensor(prompts_dir: str) -> dg.SensorDefinition:
    @dg.sensor(job_name=PROMPTS_JOB, minimum_interval_seconds=30, default_status=dg.DefaultSensorStatus.RUNNING)
    def prompt_variant_sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult:
        """Adds a partition for each new folder in resources/prompts/, removes vanished ones, and
        re-materialises `prompt_templates` for every variant whose files changed."""
        folders = set(list_variants(prompts_dir))
        known = set(context.instance.get_dynamic_partitions(prompt_variant_partitions.name))
        runs = []
        for name in sorted(folders):
            content_hash = load_variant(prompts_dir, name).content_hash
            if _recorded_hash(context.instance, name) != content_hash:
                runs.append(dg.RunRequest(run_key=f"{name}:{content_hash}", partition_key=name))
        return dg.SensorResult(
            run_requests=runs,
            dynamic_partitions_requests=[
                prompt_variant_partitions.build_add_request(sorted(folders - known)),
                prompt_variant_partitions.build_delete_request(sorted(known - folders)),
            ],
        )

    return prompt_variant_sensor


def build_collection_sensor(collection_names: list[str]) -> dg.SensorDefinition:
    @dg.sensor(minimum_interval_seconds=60, default_status=dg.DefaultSensorStatus.RUNNING)
    def collection_sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult:
        """Adds a `collection` partition for every collection named in the config file."""
        known = set(context.instance.get_dynamic_partitions(collection_partitions.name))
        return dg.SensorResult(
            dynamic_partitions_requests=[collection_partitions.build_add_request(sorted(set(collection_names) - known))]
        )

    return collection_sensor
