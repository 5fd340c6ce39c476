"""What `rr run` materialises: the assets and partitions that are missing or stale by Dagster's own
reckoning (code versions, which carry the settings each asset reads, and upstream data versions),
in dependency order. Each step is checked again just before it would run, so an upstream step that
produced the same data as before spares everything below it."""

from __future__ import annotations

import random
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass

import dagster as dg
import psutil

from rr_assets.core.registry import PROMOTION_CHECKS
from rr_assets.core.settings import ExecutionSettings
from rr_assets.dagster_internals import StaleCauseCategory, StaleStatus, stale_resolver
from rr_assets.jobs import (
    BASE_MODEL_JOB,
    COLLECTION_JOB,
    OBSERVE_ANSWERS_JOB,
    OBSERVE_COLLECTIONS_JOB,
    OBSERVE_PROMPTS_JOB,
    REPORT_JOB,
    VARIANT_JOB,
)
from rr_assets.partitions import collection_partitions, collection_variant_partitions, latest_metadata, variant_key
from rr_assets.runs import (
    RUN_HOST_TAG,
    RUN_PID_TAG,
    RunOutcome,
    available_parallelism,
    execute,
    execute_side_by_side,
    follow_submitted,
    run_config,
    run_tags,
    step_run,
    submit,
    webserver_client,
)

# Assets that run only for some collections: the per-variant stages only where a student is
# trained (not on a collection evaluated with another's student, nor on one that only selects),
# the scores and the report only where there are evaluation queries.
REPORTING_ASSETS = {dg.AssetKey("student_scores"), dg.AssetKey("benchmark_report")}
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


def _partition_label(key) -> str:
    if key is None:
        return ""
    if isinstance(key, dg.MultiPartitionKey):
        dims = key.keys_by_dimension
        return f"[{dims['collection']}|{dims['prompt_variant']}]"
    return f"[{key}]"


def why_stale(resolver, key: dg.AssetKey, partition) -> str | None:
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
                 say: Callable[[str], None] = print, verbose: bool = False,
                 execution: ExecutionSettings | None = None, config_file: str = ""):
        self.defs, self.instance, self.say = defs, instance, say
        self.execution = execution or ExecutionSettings()
        self.config_file = config_file  # what a child process rebuilds the definitions from
        self.run_config = run_config(self.execution, verbose)
        self.observe_config = run_config(ExecutionSettings(), verbose)
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
            self.defs.resolve_job_def(name).execute_in_process(instance=self.instance, tags=run_tags(),
                                                               run_config=self.observe_config)

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
        resolver = stale_resolver(self.instance, self.graph)
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
        """The champion alias moves only after a candidate passed its promotion checks: its latest
        materialisation says whether it did (a blocking check stops a promotion in its own run;
        this keeps a later run from promoting a candidate that failed one)."""
        if keys != (CHAMPION_ASSET,):
            return False
        metadata = latest_metadata(self.instance, CANDIDATE_ASSET, partition) or {}
        return any(metadata.get(check) is False for check in PROMOTION_CHECKS)

    def run(self, force: bool = False) -> bool:
        """Materialise what is missing or stale, asset by asset in dependency order, the partitions
        of one asset side by side where its pool and this machine allow; stops after the first
        failure. A candidate that does not beat the registry's champion is reported, not a
        failure. A step interrupted by SIGINT or SIGTERM ends the refresh with KeyboardInterrupt."""
        for keys in self._units():
            steps = []
            resolver = stale_resolver(self.instance, self.graph)
            for partition in self._partitions(keys[0]):
                reason = "forced (--force)" if force else why_stale(resolver, keys[0], partition)
                if reason is None:
                    continue
                if self._promotion_blocked(keys, partition):
                    self.say(f"{Step(keys, partition, '').label}: the champion stays (the candidate did not pass "
                             f"{' and '.join(PROMOTION_CHECKS)})")
                    continue
                steps.append(Step(keys, partition, reason))
            if steps and not self._run_unit(steps):
                return False
        return True

    def _run_unit(self, steps: list[Step]) -> bool:
        """Run the steps of one asset (its stale partitions); False after a failure."""
        keys = steps[0].keys
        pool = self.defs.get_assets_def(keys[0]).op.pool
        job = self.jobs[keys[0]]
        if self.execution.submit_to:
            return self._submit_unit(steps, job)
        parallel = self.execution.parallel_runs or available_parallelism()
        if pool:
            wait_for_pool_slot(self.instance, pool, steps[0].label, self.say)
            info = self.instance.event_log_storage.get_concurrency_info(pool)
            if info.limit is not None:
                parallel = min(parallel, info.limit - len(info.claimed_slots))
        if parallel <= 1 or len(steps) == 1 or not self.config_file:
            for number, step in enumerate(steps):
                if pool and number:
                    wait_for_pool_slot(self.instance, pool, step.label, self.say)
                outcome = execute(job, keys, step.partition, self.instance, self.run_config, run_tags())
                if not self._report(step, outcome):
                    return False
            return True
        self.say(f"{keys[0].to_user_string()}: {len(steps)} partitions, {parallel} at a time, each in a process of its own")
        self.defs.resources["tracker"].prepare()
        runs = [step_run(self.config_file, job, keys, step.partition, self.run_config) for step in steps]
        ok = True

        def done(index: int, outcome: RunOutcome | None) -> bool:
            nonlocal ok
            if outcome is None:
                self.say(f"{steps[index].label}: FAILED (its process died without a result)")
                ok = False
            else:
                ok = self._report(steps[index], outcome) and ok
            return ok

        execute_side_by_side(runs, parallel, done)
        return ok

    def _submit_unit(self, steps: list[Step], job: dg.JobDefinition) -> bool:
        """Submit the steps' runs to the webserver at execution.submit_to and follow them: its run
        coordinator, run launcher and pools decide when each runs. False after a failure."""
        client = webserver_client(self.execution.submit_to)
        submitted = {submit(client, job, step.keys, step.partition, self.run_config): step for step in steps}
        for run_id, step in submitted.items():
            self.say(f"{step.label}: submitted to {self.execution.submit_to} (dagster run {run_id})")
        ok = True

        def done(run_id: str, outcome: RunOutcome) -> None:
            nonlocal ok
            ok = self._report(submitted[run_id], outcome) and ok

        follow_submitted(client, self.instance, list(submitted), done)
        return ok

    def _report(self, step: Step, outcome: RunOutcome) -> bool:
        """Say how a step's run ended; False when it failed."""
        if outcome.success:
            self.say(f"{step.label}: done ({step.reason}; dagster run {outcome.run_id})")
            if outcome.promoted is False:
                self.say("  the champion stays: the alias moved since this candidate's check, "
                         "to a version it does not beat")
            for warning in outcome.failed_checks:
                self.say(f"  warning: {warning}")
            return True
        if outcome.champion_kept:
            self.say(f"{step.label}: done; the champion stays, because:")
            for reason in outcome.failed_checks:
                self.say(f"  {reason}")
            return True
        if outcome.interrupted:
            self.say(f"{step.label}: INTERRUPTED ({step.reason}; dagster run {outcome.run_id})")
            raise KeyboardInterrupt
        self.say(f"{step.label}: FAILED ({step.reason}; dagster run {outcome.run_id})")
        return False
