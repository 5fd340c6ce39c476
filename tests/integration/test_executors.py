"""The graph under Dagster's out-of-process executors, on a real instance: two collections'
partitions overlap in time under the multiprocess executor, and two Celery workers behind a real
Redis broker build the same tables as an in-process run."""

import contextlib
import os
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import duckdb
import psutil
import pytest
import yaml
from celery import Celery

from rr_assets.cli import materialize
from rr_assets.config import load_config
from tests.conftest import DEMO_DIR, free_port, write_config

pytestmark = pytest.mark.integration
COLLECTIONS = ("north", "south")
SELECTION = "key:corpus or key:queries or key:qrels or key:bm25_index or key:first_stage_candidates"
TABLES = {"corpus": "collection, doc_id", "first_stage_candidates": "collection, query_id, rank"}


def run_in(root, monkeypatch, execution: dict):
    """Materialise the retrieval stages of two copies of the demo collection in a fresh home."""
    path = write_config(root / "config.yaml", root / "home", root / "mlruns", execution=execution)
    config = yaml.safe_load(path.read_text())
    config["collections"] = {name: {"path": str(DEMO_DIR)} for name in COLLECTIONS}
    path.write_text(yaml.safe_dump(config))
    monkeypatch.setenv("DAGSTER_HOME", str(root / "dagster"))
    monkeypatch.setenv("RR_CONFIG", str(path))  # what out-of-process steps rebuild the job from
    (root / "dagster").mkdir()
    assert materialize(load_config(path), selection=SELECTION)
    return dg.DagsterInstance.get()


def step_spans(instance, asset: str) -> dict[str, tuple[float, float, int]]:
    """Per partition of `asset`: when its step started and ended, and the pid that ran it."""
    spans = {}
    for record in instance.get_run_records(dg.RunsFilter(tags={"dagster/partition": list(COLLECTIONS)})):
        run = record.dagster_run
        if dg.AssetKey(asset) not in (run.asset_selection or ()):
            continue
        events = {e.dagster_event.event_type_value: e for e in instance.all_logs(run.run_id) if e.dagster_event}
        start, success = events["STEP_START"], events["STEP_SUCCESS"]
        spans[run.tags["dagster/partition"]] = (start.timestamp, success.timestamp, start.dagster_event.pid)
    return spans


def tables(root) -> dict[str, list[tuple]]:
    with duckdb.connect(str(root / "home" / "warehouse.duckdb"), read_only=True) as db:
        return {table: db.sql(f"SELECT * FROM {table} ORDER BY {order}").fetchall() for table, order in TABLES.items()}


def test_partitions_overlap_in_time_under_the_multiprocess_executor(tmp_path, monkeypatch):
    instance = run_in(tmp_path, monkeypatch, {"executor": "multiprocess", "parallel_runs": 2})
    spans = step_spans(instance, "bm25_index")
    assert set(spans) == set(COLLECTIONS)
    (start_a, end_a, pid_a), (start_b, end_b, pid_b) = spans.values()
    assert start_a < end_b and start_b < end_a, spans  # the two indexing steps ran at the same time
    assert len({pid_a, pid_b, os.getpid()}) == 3  # each in a step process of its own
    # the DuckDB writers took turns: the warehouse pool's steps never overlapped
    corpus = sorted(step_spans(instance, "corpus").values())
    assert corpus[0][1] <= corpus[1][0]


@contextlib.contextmanager
def celery_cluster(root, workers: int = 2):
    """A real Redis broker and `workers` Celery worker processes of dagster-celery's app, each
    running one task at a time in its own process (pool solo); stopped afterwards."""
    port = free_port()
    broker = f"redis://127.0.0.1:{port}/0"
    redis = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                              "--appendonly", "no"], stdout=subprocess.DEVNULL)
    settings = root / "celery"
    settings.mkdir()
    (settings / "dagster_celery_config.py").write_text(f"broker_url = {broker!r}\nresult_backend = {broker!r}\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(settings), os.environ.get("PYTHONPATH", "")])}
    celery = str(Path(sys.executable).parent / "celery")
    processes = [subprocess.Popen([celery, "-A", "dagster_celery.app", "worker", "--pool", "solo", "-Q", "dagster",
                                   "-n", f"rr{n}@%h", "--loglevel", "WARNING", "--without-heartbeat",
                                   "--without-gossip", "--without-mingle"], env=env, cwd=root)
                 for n in range(workers)]
    try:
        app = Celery(broker=broker, backend=broker)
        deadline = time.monotonic() + 90
        while len(app.control.ping(timeout=1.0)) < workers:
            assert time.monotonic() < deadline, "the Celery workers did not come up"
        yield broker, {p.pid for p in processes}
    finally:
        for process in [*processes, redis]:
            process.terminate()
        for process in [*processes, redis]:
            process.wait(15)


def test_celery_workers_build_the_same_tables_as_an_in_process_run(tmp_path, monkeypatch):
    reference = tmp_path / "in-process"
    reference.mkdir()
    run_in(reference, monkeypatch, {"executor": "in_process", "parallel_runs": 1})
    spread = tmp_path / "celery"
    spread.mkdir()
    # The workers inherit this environment: RR_CONFIG names the config that rebuilds the job.
    monkeypatch.setenv("RR_CONFIG", str(spread / "config.yaml"))
    with celery_cluster(spread) as (broker, worker_pids):
        instance = run_in(spread, monkeypatch, {"executor": "celery", "celery_broker": broker, "parallel_runs": 2})
    pids = {pid for asset in ("corpus", "bm25_index", "first_stage_candidates")
            for _, _, pid in step_spans(instance, asset).values()}
    assert pids <= worker_pids and len(pids) == 2  # every step ran on a worker, and both workers ran steps
    assert tables(spread) == tables(reference)


def command_line(process: psutil.Process) -> str:
    """The process's command line; '' for one that has just exited (a zombie until rr reaps it)."""
    try:
        return " ".join(process.cmdline())
    except (psutil.ZombieProcess, psutil.NoSuchProcess):
        return ""


def test_kill_9_of_rr_leaves_no_step_process_of_the_multiprocess_executor(tmp_path):
    """The multiprocess executor's step processes die with the rr process that started them (the
    `home` resource arms PR_SET_PDEATHSIG in each), as rr's own children do: none goes on to
    finish its step, and record it, after rr is gone."""
    path = write_config(tmp_path / "config.yaml", tmp_path / "home", tmp_path / "mlruns",
                        execution={"executor": "multiprocess", "parallel_runs": 1})
    env = {**os.environ, "DAGSTER_HOME": str(tmp_path / "dagster"), "RR_HOME": str(tmp_path / "home")}
    rr = subprocess.Popen([sys.executable, "-m", "rr_assets.cli", "run", "-c", str(path), "--select", SELECTION],
                          env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline, steps = time.monotonic() + 120, []
        while not steps:
            assert time.monotonic() < deadline and rr.poll() is None, "no step process started"
            time.sleep(0.2)
            steps = [p for p in psutil.Process(rr.pid).children() if "spawn_main" in command_line(p)
                     and "resource_tracker" not in command_line(p)]
        time.sleep(1)  # the step process is still importing: it would go on to run its step
    finally:
        rr.kill()
        rr.wait()
    _, alive = psutil.wait_procs(steps, timeout=15)
    assert not alive, [p.cmdline() for p in alive]
    instance = dg.DagsterInstance.from_config(str(tmp_path / "dagster"))
    assert not instance.fetch_materializations(dg.AssetKey("corpus"), limit=10).records  # no step finished after rr
