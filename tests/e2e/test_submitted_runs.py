"""`rr run --submit-to` hands its runs to a Dagster webserver: that deployment's run coordinator and
run launcher start them, as a launch from the UI does, and rr follows each to the end; SIGINT to rr
terminates the run it follows."""

import contextlib
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import psutil
import pytest

from rr_assets.runs import RUN_PID_TAG
from tests.conftest import free_port, wait_for, write_config
from tests.e2e.test_run_lifecycle import RRProcess, endless_training_config, interrupt

pytestmark = pytest.mark.e2e


@contextlib.contextmanager
def webserver(config: Path, env: dict[str, str]):
    """`rr ui` on a free port: its URL while it runs; then it and its code server stop."""
    port = free_port()
    ui = subprocess.Popen([sys.executable, "-m", "rr_assets.cli", "ui", "-c", str(config), "-p", str(port)],
                          env=env, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(f"http://127.0.0.1:{port}/server_info", timeout_s=240)
        yield f"http://127.0.0.1:{port}"
    finally:
        tree = psutil.Process(ui.pid).children(recursive=True) if ui.poll() is None else []
        ui.send_signal(signal.SIGTERM)
        ui.wait(timeout=90)
        psutil.wait_procs(tree, timeout=30)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(ui.pid, signal.SIGKILL)


def test_a_submitted_run_is_started_by_the_webservers_launcher_and_followed_to_its_end(tmp_path):
    config = write_config(tmp_path / "config.yaml", tmp_path / "home", tmp_path / "mlruns")
    env = {**os.environ, "DAGSTER_HOME": str(tmp_path / "dagster")}
    with webserver(config, env) as url:
        run = subprocess.run([sys.executable, "-m", "rr_assets.cli", "run", "-c", str(config), "--select", "key:corpus",
                              "--submit-to", url], env=env, capture_output=True, text=True, timeout=600)
        assert run.returncode == 0, run.stdout + run.stderr
        submitted = re.search(r"^corpus\+qrels\+queries\[demo\]: submitted to \S+ \(dagster run (\S+)\)$", run.stdout, re.M)
        assert submitted, run.stdout
        run_id = submitted.group(1)
        assert f"corpus+qrels+queries[demo]: done (never materialised; dagster run {run_id})" in run.stdout

        instance = dg.DagsterInstance.from_config(str(tmp_path / "dagster"))
        launched = instance.get_run_by_id(run_id)
        assert launched.status == dg.DagsterRunStatus.SUCCESS and RUN_PID_TAG not in launched.tags
        events = lambda rid: {e.dagster_event.event_type_value for e in instance.all_logs(rid) if e.dagster_event}
        # the run coordinator queued it and the run launcher started it in a process of its own
        queued_and_launched = {dg.DagsterEventType.RUN_ENQUEUED.value, dg.DagsterEventType.RUN_STARTING.value}
        assert queued_and_launched <= events(run_id)
        own = [r.run_id for r in instance.get_runs() if RUN_PID_TAG in r.tags]  # rr's observations, run in rr
        assert own and all(not queued_and_launched & events(r) for r in own)
        materialised = instance.fetch_materializations(dg.AssetKey("corpus"), limit=5).records
        assert [(r.run_id, r.partition_key) for r in materialised] == [(run_id, "demo")]


def test_sigint_terminates_the_submitted_run_rr_follows(tmp_path):
    """An imported teacher reaches training in seconds; SIGINT to rr while the webserver's run trains
    has the webserver terminate it: rr exits within seconds, and the run ends CANCELED with its
    student pool slot freed. The deployment's automation sensor starts stopped: running, it would
    launch the same steps as rr's updates make them stale."""
    config = endless_training_config(tmp_path, execution={"automation": False})
    env = {**os.environ, "DAGSTER_HOME": str(tmp_path / "dagster"), "RR_HOME": str(tmp_path / "home")}
    upstream = subprocess.run([sys.executable, "-m", "rr_assets.cli", "run", "-c", str(config), "--select",
                               "+key:student_checkpoint and not key:student_checkpoint"], env=env, capture_output=True,
                              text=True, timeout=600)  # in this process: a launched run per step takes ~20 s each
    assert upstream.returncode == 0, upstream.stdout + upstream.stderr
    with webserver(config, env) as url:
        instance = dg.DagsterInstance.from_config(str(tmp_path / "dagster"))
        rr = RRProcess(config, env, "--select", "key:student_checkpoint", "--submit-to", url)
        try:
            line = rr.wait_for(r"student_checkpoint\[demo\|imported\]: submitted to", timeout_s=600)
            run_id = re.search(r"dagster run (\S+)\)", line).group(1)
            deadline = time.monotonic() + 300
            while not any("training step 1 " in (e.user_message or "") for e in instance.all_logs(run_id)):
                assert time.monotonic() < deadline, "the submitted run never reached its first training step"
                time.sleep(1)
            code, stopped_s = interrupt(rr)
        finally:
            rr.process.kill()
        print(f"SIGINT to a submitted run's follower to exit: {stopped_s:.2f} s")
        assert code == 130 and stopped_s < 5, (code, stopped_s, rr.output[-3000:])
        assert re.search(r"student_checkpoint\[demo\|imported\]: INTERRUPTED", rr.output), rr.output[-3000:]
        deadline = time.monotonic() + 60
        while instance.get_run_by_id(run_id).status != dg.DagsterRunStatus.CANCELED:
            assert time.monotonic() < deadline, instance.get_run_by_id(run_id).status
            time.sleep(1)
    student_pool = instance.event_log_storage.get_concurrency_info("student")
    assert not student_pool.claimed_slots and not student_pool.pending_steps
