"""Automation: sensors that keep partitions in step with the world (prompt-variant folders,
collection files) and observe their files when they change, a weekly refresh, and the automation
conditions under which stale downstream assets refresh themselves."""

from __future__ import annotations

import dagster as dg

from rr_assets.core.collections import CollectionSource, source_fingerprint
from rr_assets.core.prompts import list_variants, load_variant
from rr_assets.jobs import COLLECTION_JOB, OBSERVE_COLLECTIONS_JOB, OBSERVE_PROMPTS_JOB
from rr_assets.partitions import collection_partitions, prompt_variant_partitions


def observed_versions(instance: dg.DagsterInstance, asset: str, partitions: list[str]) -> dict[str, str | None]:
    """The data version of each partition of an observed source asset at its latest observation."""
    versions = {}
    for partition in partitions:
        record = instance.get_latest_data_version_record(dg.AssetKey(asset), is_source=True, partition_key=partition)
        versions[partition] = record.event_log_entry.asset_observation.data_version if record else None
    return versions


def build_prompt_variant_sensor(prompts_dir: str) -> dg.SensorDefinition:
    @dg.sensor(job_name=OBSERVE_PROMPTS_JOB, minimum_interval_seconds=30, default_status=dg.DefaultSensorStatus.RUNNING)
    def prompt_variant_sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult:
        """Adds a partition for each new folder in the prompts folder, removes vanished ones, and
        observes `prompt_templates` when a variant's files changed (downstream refreshes follow from
        the new data version)."""
        folders = sorted(list_variants(prompts_dir))
        known = set(context.instance.get_dynamic_partitions(prompt_variant_partitions.name))
        current = {name: load_variant(prompts_dir, name).content_hash for name in folders}
        recorded = observed_versions(context.instance, "prompt_templates", folders)
        changed = [name for name in folders if recorded[name] != current[name]]
        key = ",".join(f"{name}:{current[name]}" for name in changed)
        return dg.SensorResult(
            run_requests=[dg.RunRequest(run_key=key, tags={"rr/changed_variants": ",".join(changed)})] if changed else [],
            dynamic_partitions_requests=[
                prompt_variant_partitions.build_add_request(sorted(set(folders) - known)),
                prompt_variant_partitions.build_delete_request(sorted(known - set(folders))),
            ],
        )

    return prompt_variant_sensor


def build_collection_sensor(sources: tuple[CollectionSource, ...]) -> dg.SensorDefinition:
    @dg.sensor(job_name=OBSERVE_COLLECTIONS_JOB, minimum_interval_seconds=60, default_status=dg.DefaultSensorStatus.RUNNING)
    def collection_sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult:
        """Adds a `collection` partition for every configured collection, and observes
        `collection_files` when a collection's files are new or changed."""
        names = [s.name for s in sources]
        known = set(context.instance.get_dynamic_partitions(collection_partitions.name))
        current = {s.name: source_fingerprint(s) for s in sources}
        recorded = observed_versions(context.instance, "collection_files", names)
        changed = [name for name in names if recorded[name] != current[name]]
        key = ",".join(f"{name}:{current[name]}" for name in changed)
        return dg.SensorResult(
            run_requests=[dg.RunRequest(run_key=key, tags={"rr/changed_collections": ",".join(changed)})] if changed else [],
            dynamic_partitions_requests=[collection_partitions.build_add_request(sorted(set(names) - known))],
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


# Downstream assets refresh when what they read was updated (a new materialisation, or a new
# observed data version of the files); the teacher's cache makes repeated requests free.
REFRESH_WHEN_INPUTS_CHANGE = dg.AutomationCondition.eager()


def build_automation_sensor(running: bool) -> dg.AutomationConditionSensorDefinition:
    """The sensor that evaluates every asset's automation condition, each minute while it runs."""
    return dg.AutomationConditionSensorDefinition(
        "rr_automation", target=dg.AssetSelection.all(), minimum_interval_seconds=60,
        default_status=dg.DefaultSensorStatus.RUNNING if running else dg.DefaultSensorStatus.STOPPED)
