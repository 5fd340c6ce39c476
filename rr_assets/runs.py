"""How the Dagster run of one refresh step executes: under the configured executor (in process,
multiprocess, or on the workers of a Celery cluster), and several partitions of one asset side by side,
each run in a child process of its own that dies with rr (PR_SET_PDEATHSIG); or submitted to a Dagster
webserver, whose run coordinator and run launcher start it as they start a launch from the UI."""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
import socket
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from multiprocessing.connection import Connection, wait

import dagster as dg
import psutil

from rr_assets.core.processes import die_with_parent
from rr_assets.core.registry import PROMOTION_CHECKS
from rr_assets.core.settings import ExecutionSettings

RUN_PID_TAG, RUN_HOST_TAG = "rr/pid", "rr/host"
# A step's run in a child process: Python, dagster, torch and rr imported (~0.9 GB resident), plus
# the stage's own peak (the Lucene indexer's JVM, a student's activations); measured on the demo
# and SciFact configs, rounded up.
RUN_MEMORY_BYTES = 2 * 1024**3
BROKER_ENV = "RR_CELERY_BROKER"
STOP_GRACE_S = 4.0  # after SIGINT, a child run has this long to mark its run and free its slots
FOLLOW_POLL_S = 1.0  # how often the status of a submitted run is read (a sleep between reads)


@dataclass(frozen=True)
class RunOutcome:
    """What the refresh needs from a finished step run (picklable, so a child process can send it)."""

    run_id: str
    success: bool
    interrupted: bool  # a step failed because the process got SIGINT or SIGTERM
    failed_checks: tuple[str, ...]  # checks that did not pass, each in words with its scalar metadata
    champion_kept: bool  # failed only because the blocking beats_champion check did not pass
    promoted: bool | None  # the champion asset's `promoted` metadata, when it ran


def run_tags() -> dict[str, str]:
    """Tags naming this process, so a run whose process is gone can be released."""
    return {RUN_PID_TAG: str(os.getpid()), RUN_HOST_TAG: socket.gethostname()}


def run_config(settings: ExecutionSettings, verbose: bool) -> dict:
    """The terminal gets rr's own progress lines; Dagster's DEBUG event stream goes to the run's
    event log (the UI shows it), and to the terminal too when verbose. Plus the executor's config."""
    config: dict = {"loggers": {"console": {"config": {"log_level": "DEBUG" if verbose else "INFO"}}}}
    if settings.executor == "multiprocess":
        config["execution"] = {"config": {"multiprocess": {"max_concurrent": max(1, available_parallelism())}}}
    elif settings.executor == "celery":
        # A broker URL from the environment stays there: the run's config names only the variable.
        broker = {"env": BROKER_ENV} if os.environ.get(BROKER_ENV) else settings.celery_broker
        config["execution"] = {"config": {"broker": broker, "backend": broker}}
    return config


def available_parallelism() -> int:
    """Runs this machine can hold side by side: one per two cores (a child run spends seconds
    importing and starts its own JVM; on 2 cores side by side was 1.9x slower than one at a time,
    benchmarks/parallel_runs.py), and no more than free memory allows."""
    cores = len(os.sched_getaffinity(0))
    return max(1, min(cores // 2, psutil.virtual_memory().available // RUN_MEMORY_BYTES))


def _check_lines(result) -> list[dg.AssetCheckEvaluation]:
    return [e.event_specific_data for e in result.all_events
            if e.event_type_value == "ASSET_CHECK_EVALUATION" and not e.event_specific_data.passed]


def outcome_of(result) -> RunOutcome:
    """A RunOutcome from an ExecuteInProcessResult, an execute_job result or a `RecordedRun`."""
    failed = _check_lines(result)
    failures = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    interrupted = any(e.step_failure_data.error is not None
                      and e.step_failure_data.error.cls_name == "DagsterExecutionInterruptedError" for e in failures)
    warnings = []
    for check in failed:
        facts = {k: v.value for k, v in check.metadata.items() if isinstance(v.value, (int, float, str))}
        warnings.append(f"{check.asset_key.to_user_string()}: check {check.check_name} did not pass ("
                        + ", ".join(f"{k} {round(v, 4) if isinstance(v, float) else v}" for k, v in facts.items()) + ")")
    materialized = result.get_asset_materialization_events() if result.success else []
    promoted = [m.materialization.metadata["promoted"].value for m in materialized
                if m.asset_key == dg.AssetKey("champion") and "promoted" in m.materialization.metadata]
    return RunOutcome(
        run_id=result.run_id, success=result.success, interrupted=interrupted, failed_checks=tuple(warnings),
        champion_kept=bool(failed) and all(c.check_name in PROMOTION_CHECKS for c in failed)
        and all(e.step_key == "champion_candidate" for e in failures),
        promoted=promoted[0] if promoted else None)


def execute(job: dg.JobDefinition, keys: Iterable[dg.AssetKey], partition, instance: dg.DagsterInstance,
            config: dict, tags: dict[str, str]) -> RunOutcome:
    """One run of `keys` for `partition`: in this process, or, when the config names another
    executor, through `dg.execute_job` on the job reconstructed from rr_assets.definitions."""
    keys = list(keys)
    if "execution" not in config:
        return outcome_of(job.execute_in_process(instance=instance, partition_key=partition, asset_selection=keys,
                                                 raise_on_error=False, tags=tags, run_config=config))
    reconstructable = dg.build_reconstructable_job("rr_assets.definitions", "job_named", reconstructable_args=(job.name,))
    partition_tags = job.get_tags_for_partition_key(partition, keys) if partition is not None else {}
    with dg.execute_job(reconstructable, instance, run_config=config, tags={**tags, **partition_tags},
                        asset_selection=keys) as result:
        return outcome_of(result)


@dataclass(frozen=True)
class StepRun:
    """One step's run to execute in a child process."""

    config_file: str
    job_name: str
    keys: tuple[str, ...]  # asset keys, user strings
    partition: dict[str, str] | str | None  # a multi-partition key as its dimensions
    run_config: dict


def _child(step: StepRun, conn: Connection) -> None:
    die_with_parent(multiprocessing.parent_process().pid)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # rr's SIGINT stops the run, even if inherited ignored
    from rr_assets.config import load_config
    from rr_assets.definitions import build_definitions

    job = build_definitions(load_config(step.config_file)).resolve_job_def(step.job_name)
    partition = dg.MultiPartitionKey(step.partition) if isinstance(step.partition, dict) else step.partition
    keys = [dg.AssetKey.from_user_string(k) for k in step.keys]
    conn.send(execute(job, keys, partition, dg.DagsterInstance.get(), step.run_config, run_tags()))
    # The run is recorded and its result sent: leave now, rather than wait seconds for the
    # interpreter's shutdown to join the threads that the libraries of a run leave behind.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def step_run(config_file: str, job: dg.JobDefinition, keys, partition, config: dict) -> StepRun:
    dims = partition.keys_by_dimension if isinstance(partition, dg.MultiPartitionKey) else partition
    return StepRun(config_file, job.name, tuple(k.to_user_string() for k in keys), dims, config)


def execute_side_by_side(runs: list[StepRun], limit: int, done: Callable[[int, RunOutcome | None], bool]) -> None:
    """Execute `runs`, at most `limit` at once, each in a child process. `done(index, outcome)`
    gets each result as it arrives (None when the child died without one) and returns False to
    start nothing more. Waiting blocks on the children's pipes (no polling). On SIGINT or SIGTERM
    (KeyboardInterrupt here) every child gets SIGINT, which Dagster turns into a failed step with
    its pool slots freed, and is killed after a grace period."""
    context = multiprocessing.get_context("spawn")
    pending, running = list(enumerate(runs)), {}
    try:
        while pending or running:
            while pending and len(running) < limit:
                index, run = pending.pop(0)
                receive, send = context.Pipe(duplex=False)
                process = context.Process(target=_child, args=(run, send))
                process.start()
                send.close()
                running[receive] = (index, process)
            for conn in wait(list(running)):
                index, process = running.pop(conn)
                try:
                    outcome = conn.recv()
                except EOFError:
                    outcome = None
                process.join()
                if not done(index, outcome):
                    pending.clear()
    except KeyboardInterrupt:
        for _, process in running.values():
            if process.is_alive():
                os.kill(process.pid, signal.SIGINT)
        deadline = time.monotonic() + STOP_GRACE_S
        for _, process in running.values():
            process.join(max(0.0, deadline - time.monotonic()))
            if process.is_alive():
                process.kill()
        raise


# --- runs submitted to a Dagster webserver -------------------------------------------------------

@dataclass(frozen=True)
class RecordedRun:
    """A finished run as the instance's event log records it, read as `outcome_of` reads a result."""

    run_id: str
    success: bool
    all_events: list[dg.DagsterEvent]

    @classmethod
    def read(cls, instance: dg.DagsterInstance, run_id: str) -> RecordedRun:
        events = [entry.dagster_event for entry in instance.all_logs(run_id) if entry.dagster_event is not None]
        return cls(run_id, instance.get_run_by_id(run_id).status == dg.DagsterRunStatus.SUCCESS, events)

    def get_asset_materialization_events(self) -> list[dg.DagsterEvent]:
        return [e for e in self.all_events if e.event_type_value == "ASSET_MATERIALIZATION"]


def webserver_client(url: str):
    """A GraphQL client of the Dagster webserver at `url` (http://host:port[/prefix])."""
    from urllib.parse import urlsplit

    from dagster_graphql import DagsterGraphQLClient

    parts = urlsplit(url)
    return DagsterGraphQLClient(parts.hostname, port_number=parts.port, use_https=parts.scheme == "https",
                                path_prefix=parts.path.rstrip("/"))


def submit(client, job: dg.JobDefinition, keys: Iterable[dg.AssetKey], partition, config: dict) -> str:
    """Submit one run of `keys` for `partition` through the webserver's GraphQL API, as its UI's
    launch button does (the run coordinator queues it, the run launcher starts it); its run id."""
    keys = list(keys)
    tags = job.get_tags_for_partition_key(partition, keys) if partition is not None else {}
    return client.submit_job_execution(job.name, run_config=config, tags=tags, asset_selection=keys)


FINISHED = {dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED}


def follow_submitted(client, instance: dg.DagsterInstance, run_ids: list[str],
                     done: Callable[[str, RunOutcome], None]) -> None:
    """Wait for submitted runs to end, reading their status from the instance every FOLLOW_POLL_S
    (a sleep between reads, not a spin); `done(run_id, outcome)` gets each as it ends (a canceled
    run as interrupted). On SIGINT or SIGTERM (KeyboardInterrupt here) every unfinished run is
    terminated through the webserver, given STOP_GRACE_S to end, and reported interrupted."""
    waiting = list(run_ids)
    try:
        while waiting:
            for run_id in list(waiting):
                status = instance.get_run_by_id(run_id).status
                if status in FINISHED:
                    waiting.remove(run_id)
                    outcome = outcome_of(RecordedRun.read(instance, run_id))
                    if status == dg.DagsterRunStatus.CANCELED:
                        outcome = replace(outcome, interrupted=True)
                    done(run_id, outcome)
            if waiting:
                time.sleep(FOLLOW_POLL_S)
    except KeyboardInterrupt:
        for run_id in waiting:
            client.terminate_run(run_id)
        deadline = time.monotonic() + STOP_GRACE_S
        while any(instance.get_run_by_id(r).status not in FINISHED for r in waiting) and time.monotonic() < deadline:
            time.sleep(0.2)
        for run_id in waiting:  # each said interrupted, ended or still stopping
            with contextlib.suppress(KeyboardInterrupt):
                done(run_id, replace(outcome_of(RecordedRun.read(instance, run_id)), success=False, interrupted=True))
        raise
