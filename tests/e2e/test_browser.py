"""The Dagster UI in a real browser (Debian's chromium driven by playwright-core): launch one
partition's materialisation, see it succeed, open the teacher's asset checks and the checkpoint's
lineage. Screenshots are kept in test-artifacts/browser/ (RR_TEST_ARTIFACTS overrides)."""

import contextlib
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import dagster as dg
import psutil
import pytest

from tests.conftest import PROJECT_ROOT, free_port, wait_for

pytestmark = pytest.mark.e2e
ARTIFACTS = Path(os.environ.get("RR_TEST_ARTIFACTS", PROJECT_ROOT / "test-artifacts")) / "browser"


def test_operating_the_pipeline_in_the_dagster_ui(pipeline):
    config, instance, root = pipeline
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    port = free_port()
    ui = subprocess.Popen([sys.executable, "-m", "rr_assets.cli", "ui", "-c", config.source_file, "-p", str(port)],
                          env={**os.environ, "DAGSTER_HOME": str(root / "dagster")}, start_new_session=True,
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(f"http://127.0.0.1:{port}/server_info", timeout_s=240)
        walk = subprocess.run(["node", "ui_walkthrough.mjs", f"http://127.0.0.1:{port}", str(ARTIFACTS)],
                              cwd=PROJECT_ROOT / "tests" / "browser", capture_output=True, text=True, timeout=900)
        assert walk.returncode == 0, walk.stdout + walk.stderr
        result = json.loads(walk.stdout.strip().splitlines()[-1])
        run = instance.get_run_by_id(result["run_id"])
        assert run.status == dg.DagsterRunStatus.SUCCESS and run.tags.get("dagster/partition") == "demo"
        assert any("teacher_judgments_gx_suite" in text for text in result["checks"])
        assert "train_pointwise" in result["lineage"]
        for name in ("01-catalog", "02-launch-dialog", "03-run-succeeded", "04-asset-checks", "05-checkpoint-lineage"):
            assert (ARTIFACTS / f"{name}.png").read_bytes()[:4] == b"\x89PNG"
        tree = psutil.Process(ui.pid).children(recursive=True)
        ui.send_signal(signal.SIGTERM)
        assert ui.wait(timeout=90) == 0
        _, alive = psutil.wait_procs(tree, timeout=30)
        assert not alive, [p.cmdline() for p in alive]
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(ui.pid, signal.SIGKILL)
