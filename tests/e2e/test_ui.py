"""`rr ui` serves the Dagster UI on 127.0.0.1 and stops with its whole process tree on SIGTERM."""

import contextlib
import os
import signal
import subprocess
import sys
import urllib.request

import psutil
import pytest

from tests.conftest import free_port, wait_for, write_config

pytestmark = pytest.mark.e2e


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT])
def test_ui_starts_and_stops_without_orphans(tmp_path, stop_signal):
    config = write_config(tmp_path / "config.yaml", tmp_path / "home", tmp_path / "mlruns")
    port = free_port()
    ui = subprocess.Popen([sys.executable, "-m", "rr_assets.cli", "ui", "-c", str(config), "-p", str(port)],
                          env={**os.environ, "DAGSTER_HOME": str(tmp_path / "dagster")}, start_new_session=True,
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(f"http://127.0.0.1:{port}/server_info", timeout_s=240)
        tree = psutil.Process(ui.pid).children(recursive=True)
        assert len(tree) >= 2  # dagster dev and what it runs (webserver, daemon, code server)
        ui.send_signal(stop_signal)
        assert ui.wait(timeout=90) == 0
        gone, alive = psutil.wait_procs(tree, timeout=30)
        assert not alive, [p.cmdline() for p in alive]
        with pytest.raises(OSError):
            urllib.request.urlopen(f"http://127.0.0.1:{port}/server_info", timeout=5)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(ui.pid, signal.SIGKILL)
