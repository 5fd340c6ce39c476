"""Automation: sensors that keep partitions in step with the world (prompt-variant folders,
collection files), a weekly refresh, and the automation conditions under which stale downstream
assets refresh themselves."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import dagster as dg

from rr_assets.core.prompts import list_variants, load_variant
from rr_assets.partitions import collection_partitions, prompt_variant_partitions

PROMPTS_JOB = "rr_prompts"
COLLECTION_JOB = "rr_collection"


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


def collection_fingerprint(folder: str) -> str:
    """Size and modification time of every file of a BEIR folder: changes when any file does."""
    files = sorted(p for p in Path(folder).rglob("*") if p.is_file())
    return json.dumps([[str(p.relative_to(folder)), p.stat().st_size, p.stat().st_mtime_ns] for p in files])


def _loaded(instance: dg.DagsterInstance, collection: str) -> bool:
    return bool(instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey("corpus"), asset_partitions=[collection]), limit=1
    ).records)


def build_collection_sensor(folders: dict[str, str]) -> dg.SensorDefinition:
    @dg.sensor(job_name=COLLECTION_JOB, minimum_interval_seconds=60, default_status=dg.DefaultSensorStatus.RUNNING)
    def collection_sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult:
        """Adds a `collection` partition for every configured collection and loads a collection
        whose files are new or changed since the last tick (the cursor keeps each folder's
        fingerprint); on the first tick, only collections never loaded are run."""
        known = set(context.instance.get_dynamic_partitions(collection_partitions.name))
        seen = json.loads(context.cursor) if context.cursor else None
        current = {name: collection_fingerprint(folder) for name, folder in folders.items()}
        if seen is None:
            changed = [name for name in sorted(current) if not _loaded(context.instance, name)]
        else:
            changed = [name for name in sorted(current) if seen.get(name) != current[name]]
        return dg.SensorResult(
            run_requests=[dg.RunRequest(run_key=f"{name}:{hashlib.sha256(current[name].encode()).hexdigest()[:16]}",
                                        partition_key=name) for name in changed],
            dynamic_partitions_requests=[collection_partitions.build_add_request(sorted(set(folders) - known))],
            cursor=json.dumps(current),
        )

    return collection_sensor


def build_weekly_refresh(collection_names: list[str]) -> dg.ScheduleDefinition:
    @dg.schedule(job_name=COLLECTION_JOB, cron_schedule="0 3 * * 1", execution_timezone="UTC",
                 default_status=dg.DefaultScheduleStatus.RUNNING)
    def weekly_refresh(context: dg.ScheduleEvaluationContext):
        """Mondays 03:00 UTC: re-load every collection; the automation conditions carry the refresh
        downstream (teacher requests already answered are free)."""
        return [dg.RunRequest(partition_key=name, run_key=f"{name}:{context.scheduled_execution_time:%Y-%m-%d}")
                for name in collection_names]

    return weekly_refresh


# Downstream assets refresh when what they read was materialised again; the teacher's cache makes
# repeated requests free, so refreshing a teacher partition only pays for new prompts.
REFRESH_WHEN_INPUTS_CHANGE = dg.AutomationCondition.eager()

automation_sensor = dg.AutomationConditionSensorDefinition(
    "rr_automation", target=dg.AssetSelection.all(), default_status=dg.DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=60,
)
