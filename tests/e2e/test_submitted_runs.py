"""`rr run --submit-to` hands its runs to a Dagster webserver: that deployment's run coordinator and
run launcher start them, as a launch from the UI does, and rr follows each to the end."""

import contextlib
import os
import re
import signal
import subprocess
import sys

import dagster as dg
import psutil
import pytest

from rr_assets.runs import RUN_PID_TAG
from tests.conftest import free_port, wait_for, write_config

pytestmark = pytest.mark.e2e


def test_a_submitted_run_is_started_by_the_webservers_launcher_and_followed_to_its_end(tmp_path):
    config = write_config(tmp_path / "config.yaml", tmp_path / "home", tmp_path / "mlruns")
    env = {**os.environ, "DAGSTER_HOME": str(tmp_path / "dagster")}
    port = free_port()
    ui = subprocess.Popen([sys.executable, "-m", "rr_assets.cli", "ui", "-c", str(config), "-p", str(port)],
                          env=env, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(f"http://127.0.0.1:{port}/server_info", timeout_s=240)
        run = subprocess.run([sys.executable, "-m", "rr_assets.cli", "run", "-c", str(config), "--select", "key:corpus",
                              "--submit-to", f"http://127.0.0.1:{port}"], env=env, capture_output=True, text=True,
                             timeout=600)
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
    finally:
        tree = psutil.Process(ui.pid).children(recursive=True) if ui.poll() is None else []
        ui.send_signal(signal.SIGTERM)
        ui.wait(timeout=90)
        psutil.wait_procs(tree, timeout=30)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(ui.pid, signal.SIGKILL)
