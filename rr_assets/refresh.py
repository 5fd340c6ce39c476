"""What `rr run` materialises: the assets and partitions that are missing or stale by Dagster's own
reckoning (code versions, which carry the settings each asset reads, and upstream data versions),
in dependency order. Each step is checked again just before it would run, so an upstream step that
produced the same data as before spares everything below it."""

from __future__ import annotations

import os
import random
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass

import dagster as dg
import psutil
from dagster._core.asset_graph_view.asset_graph_view import AssetGraphView, TemporalContext
from dagster._core.definitions.data_version import CachingStaleStatusResolver, StaleCauseCategory, StaleStatus
from dagster._time import get_current_datetime

from rr_assets.automation import COLLECTION_JOB, OBSERVE_ANSWERS_JOB, OBSERVE_COLLECTIONS_JOB, OBSERVE_PROMPTS_JOB
from rr_assets.definitions import BASE_MODEL_JOB, REPORT_JOB, VARIANT_JOB
from rr_assets.partitions import collection_partitions, collection_variant_partitions, latest_metadata, variant_key

RUN_PID_TAG, RUN_HOST_TAG = "rr/pid", "rr/host"
# Assets that run only for some collections: the per-variant stages only where a student is
# trained (not on a collection evaluated with another's student, nor on one that only selects),
# the scores and the report only where there are evaluation queries.
REPORTING_ASSETS = {dg.AssetKey("student_scores"), dg.AssetKey("benchmark_report")}
CHAMPION_CHECK = "beats_champion"
CANDIDATE_ASSET, CHAMPION_ASSET = dg.AssetKey("champion_candidate"), dg.AssetKey("champion")


@dataclass(frozen=True)
class Step:
    """One asset definition (a multi-asset's keys together) for one partition, and why it runs."""

    keys: tuple[dg.AssetKey, ...]
    partition: str | dg.MultiPartitionKey | None
    reason: str

    @property
    def label(self) -> str:
        return "+".join(k.to_user_string() for k in self.keys) + _partition_label(self.partition)


def _resolver(instance: dg.DagsterInstance, asset_graph) -> CachingStaleStatusResolver:
    view = AssetGraphView(temporal_context=TemporalContext(effective_dt=get_current_datetime(), last_event_id=None),
                          instance=instance, asset_graph=asset_graph)
    return CachingStaleStatusResolver(instance=instance, asset_graph=asset_graph, loading_context=view)


def _partition_label(key) -> str:
    if key is None:
        return ""
    if isinstance(key, dg.MultiPartitionKey):
        dims = key.keys_by_dimension
        return f"[{dims['collection']}|{dims['prompt_variant']}]"
    return f"[{key}]"


def _failed_evaluations(result: dg.ExecuteInProcessResult) -> list[dg.AssetCheckEvaluation]:
    """The check evaluations of a run that did not pass."""
    return [e.event_specific_data for e in result.all_events
            if e.event_type_value == "ASSET_CHECK_EVALUATION" and not e.event_specific_data.passed]


def _interrupted(result: dg.ExecuteInProcessResult) -> bool:
    """A step of the run failed because the process got SIGINT or SIGTERM."""
    return any(e.event_type_value == "STEP_FAILURE" and e.step_failure_data.error is not None
               and e.step_failure_data.error.cls_name == "DagsterExecutionInterruptedError" for e in result.all_events)


def _metadata_of(result: dg.ExecuteInProcessResult) -> dict:
    """The metadata of a one-asset run's materialisation."""
    return result.get_asset_materialization_events()[0].materialization.metadata


def failed_checks(result: dg.ExecuteInProcessResult) -> list[str]:
    """The checks of a run that did not pass, each with its scalar metadata, in words."""
    warnings = []
    for check in _failed_evaluations(result):
        facts = {k: v.value for k, v in check.metadata.items() if isinstance(v.value, (int, float, str))}
        warnings.append(f"{check.asset_key.to_user_string()}: check {check.check_name} did not pass ("
                        + ", ".join(f"{k} {round(v, 4) if isinstance(v, float) else v}" for k, v in facts.items()) + ")")
    return warnings


def why_stale(resolver: CachingStaleStatusResolver, key: dg.AssetKey, partition) -> str | None:
    """Why Dagster counts this asset partition as not up to date, in words; None when it is."""
    status = resolver.get_status(key, partition)
    if status == StaleStatus.FRESH:
        return None
    if status == StaleStatus.MISSING:
        return "never materialised"
    reasons = []
    for cause in resolver.get_stale_causes(key, partition):
        if cause.category == StaleCauseCategory.CODE:
            reasons.append("its code or settings changed")
        elif cause.dependency is not None:
            reasons.append(f"upstream {cause.dependency.asset_key.to_user_string()}"
                           f"{_partition_label(cause.dependency.partition_key)} changed")
        else:
            reasons.append(cause.reason)
    return "; ".join(dict.fromkeys(reasons)) or "stale"


def release_runs_of_dead_processes(instance: dg.DagsterInstance, say: Callable[[str], None] = print) -> None:
    """A run whose rr process on this host is gone (killed mid-way) stays "started" and keeps its
    pool slots, which would block every later run: mark it failed and free its slots."""
    unfinished = instance.get_run_records(
        dg.RunsFilter(statuses=[dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.STARTING]))
    for record in unfinished:
        run = record.dagster_run
        pid = int(run.tags.get(RUN_PID_TAG, 0))
        if pid and run.tags.get(RUN_HOST_TAG) == socket.gethostname() and not psutil.pid_exists(pid):
            instance.report_run_failed(run, f"the rr process that ran it (pid {pid}) is gone")
            instance.event_log_storage.free_concurrency_slots_for_run(run.run_id)
            say(f"marked run {run.run_id} failed: its process {pid} is gone")


def wait_for_pool_slot(instance: dg.DagsterInstance, pool: str, label: str, say: Callable[[str], None] = print,
                       poll_s: float = 1.0) -> None:
    """Sleep until `pool` has a free slot and no other run's step is queued for it, freeing the
    slots of dead runs meanwhile. rr waits here rather than inside Dagster's executor, whose wait
    for a pool busy-polls (a core at ~90%), and holds no claim while it waits, so a waiting rr
    killed by any signal leaves nothing behind."""
    said = False
    while True:
        release_runs_of_dead_processes(instance, say)
        info = instance.event_log_storage.get_concurrency_info(pool)
        queued = [step for step in info.pending_steps if step.assigned_timestamp is None]
        if info.limit is None or (len(info.claimed_slots) < info.limit and not queued):
            return
        if not said:
            holders = sorted({slot.run_id for slot in info.claimed_slots})
            say(f"{label}: waiting for a free slot of pool {pool!r} (limit {info.limit}; held by dagster run "
                f"{', '.join(holders) or 'none'}; {len(queued)} step(s) queued before it)")
            said = True
        time.sleep(poll_s * random.uniform(0.8, 1.2))  # jitter: two waiters rarely wake together


class Refresher:
    """Plans and runs the steps of a refresh on one Dagster instance."""

    def __init__(self, defs: dg.Definitions, instance: dg.DagsterInstance, collections: list[str],
                 variants: list[str], selection: set[dg.AssetKey] | None = None,
                 say: Callable[[str], None] = print, verbose: bool = False):
        self.defs, self.instance, self.say = defs, instance, say
        # The terminal gets rr's own progress lines; Dagster's DEBUG event stream goes to the run's
        # event log (the UI shows it), and to the terminal too when verbose.
        self.run_config = {"loggers": {"console": {"config": {"log_level": "DEBUG" if verbose else "INFO"}}}}
        self.collections, self.variants = collections, variants
        self.graph = defs.resolve_asset_graph()
        self.selection = selection
        self.jobs = {}
        for name in (COLLECTION_JOB, BASE_MODEL_JOB, VARIANT_JOB, REPORT_JOB):
            job = defs.resolve_job_def(name)
            for key in job.asset_layer.selected_asset_keys:
                self.jobs[key] = job

    def observe_sources(self) -> None:
        """Observe the collections' and prompt variants' files: new data versions where they changed."""
        for name in (OBSERVE_COLLECTIONS_JOB, OBSERVE_PROMPTS_JOB, OBSERVE_ANSWERS_JOB):
            self.defs.resolve_job_def(name).execute_in_process(instance=self.instance, tags=self._tags(),
                                                               run_config=self.run_config)

    def _tags(self) -> dict[str, str]:
        return {RUN_PID_TAG: str(os.getpid()), RUN_HOST_TAG: socket.gethostname()}

    def _partitions(self, key: dg.AssetKey) -> list:
        partitions_def = self.graph.get(key).partitions_def
        if partitions_def is None:
            return [None]
        sources = self.defs.resources["collections"]
        if key in REPORTING_ASSETS:
            collections = [c for c in self.collections if sources.reports(c)]
        elif partitions_def == collection_variant_partitions:
            collections = [c for c in self.collections if sources.trains(c)]
        else:
            collections = list(self.collections)
        if partitions_def == collection_partitions:
            return collections
        if partitions_def == collection_variant_partitions:
            return [variant_key(c, v) for c in collections for v in self.variants]
        return list(self.variants)

    def _units(self) -> list[tuple[dg.AssetKey, ...]]:
        """Materialisable asset definitions in dependency order, as tuples of their keys."""
        seen, units = set(), []
        for key in self.graph.toposorted_asset_keys:
            node = self.graph.get(key)
            if not node.is_materializable or key in seen or key not in self.jobs:
                continue
            if self.selection is not None and key not in self.selection:
                continue
            keys = tuple(sorted(self.defs.get_assets_def(key).keys, key=str))
            seen.update(keys)
            units.append(keys)
        return units

    def _parents(self, key: dg.AssetKey, partition) -> list[tuple[dg.AssetKey, object]]:
        found = []
        for parent in self.graph.get(key).parent_keys:
            if not self.graph.get(parent).is_materializable:
                continue
            parent_def = self.graph.get(parent).partitions_def
            if parent_def is None:
                found.append((parent, None))
            elif parent_def == self.graph.get(key).partitions_def:
                found.append((parent, partition))
            elif parent_def == collection_partitions:
                multi = isinstance(partition, dg.MultiPartitionKey)
                found.append((parent, partition.keys_by_dimension["collection"] if multi else partition))
            elif parent_def == collection_variant_partitions:
                found += [(parent, variant_key(partition, v)) for v in self.variants]
        return found

    def plan(self, force: bool = False) -> list[Step]:
        """Every step that would run, with its reason; a step below a planned one is listed as
        following it (it runs only if that step changes its data)."""
        resolver = _resolver(self.instance, self.graph)
        planned: dict[tuple, Step] = {}
        steps = []
        for keys in self._units():
            for partition in self._partitions(keys[0]):
                reason = "forced (--force)" if force else why_stale(resolver, keys[0], partition)
                if self._promotion_blocked(keys, partition) and not any(
                        (p, pp) in planned for p, pp in self._parents(keys[0], partition)):
                    continue
                if reason is None:
                    upstream = [f"{p.to_user_string()}{_partition_label(pp)}" for p, pp in self._parents(keys[0], partition)
                                if (p, pp) in planned]
                    if upstream:
                        reason = f"upstream {upstream[0]} will be recomputed (runs only if its data changes)"
                if reason:
                    step = Step(keys, partition, reason)
                    steps.append(step)
                    for key in keys:
                        planned[(key, partition)] = step
        return steps

    def _promotion_blocked(self, keys: tuple[dg.AssetKey, ...], partition) -> bool:
        """The champion alias moves only after a candidate passed beats_champion: its latest
        materialisation says whether it did (a blocking check stops a promotion in its own run;
        this keeps a later run from promoting a candidate that failed it)."""
        if keys != (CHAMPION_ASSET,):
            return False
        value = (latest_metadata(self.instance, CANDIDATE_ASSET, partition) or {}).get(CHAMPION_CHECK)
        return value is not None and not value

    def run(self, force: bool = False) -> bool:
        """Materialise what is missing or stale, step by step; stops at the first failure. A
        candidate that does not beat the registry's champion is reported, not a failure. A step
        interrupted by SIGINT or SIGTERM ends the refresh with KeyboardInterrupt."""
        for keys in self._units():
            for partition in self._partitions(keys[0]):
                reason = "forced (--force)" if force else why_stale(_resolver(self.instance, self.graph), keys[0], partition)
                if reason is None:
                    continue
                if self._promotion_blocked(keys, partition):
                    self.say(f"{Step(keys, partition, '').label}: the champion stays (the candidate did not beat it)")
                    continue
                step = Step(keys, partition, reason)
                pool = self.defs.get_assets_def(keys[0]).op.pool
                if pool:
                    wait_for_pool_slot(self.instance, pool, step.label, self.say)
                job = self.jobs[keys[0]]
                result = job.execute_in_process(instance=self.instance, partition_key=partition, asset_selection=list(keys),
                                                raise_on_error=False, tags=self._tags(), run_config=self.run_config)
                if result.success:
                    self.say(f"{step.label}: done ({reason}; dagster run {result.run_id})")
                    if keys == (CHAMPION_ASSET,) and not _metadata_of(result)["promoted"].value:
                        self.say("  the champion stays: the alias moved since this candidate's check, "
                                 "to a version it does not beat")
                    for warning in failed_checks(result):
                        self.say(f"  warning: {warning}")
                    continue
                if self._champion_kept(result):
                    self.say(f"{step.label}: done; the champion stays (the candidate did not beat it on the dev slice)")
                    continue
                if _interrupted(result):
                    self.say(f"{step.label}: INTERRUPTED ({reason}; dagster run {result.run_id})")
                    raise KeyboardInterrupt
                self.say(f"{step.label}: FAILED ({reason}; dagster run {result.run_id})")
                return False
        return True

    @staticmethod
    def _champion_kept(result) -> bool:
        """The run failed only because the blocking beats_champion check did not pass."""
        failed = _failed_evaluations(result)
        failures = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
        return bool(failed) and all(check.check_name == CHAMPION_CHECK for check in failed) and \
            all(e.step_key == "champion_candidate" for e in failures)
