"""Prompt variants as partitions: a new folder becomes a partition and is observed, and a run
killed halfway resumes without paying twice."""

import os
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter

import dagster as dg
import duckdb
import pytest

from rr_assets.automation import build_prompt_variant_sensor
from rr_assets.config import load_config
from tests.conftest import PROJECT_ROOT, write_config
from tests.proxy import RecordingProxy

pytestmark = pytest.mark.e2e
UP_TO_TEACHER = " or ".join(f"key:{k}" for k in (
    "corpus", "queries", "qrels", "bm25_index", "first_stage_candidates", "splits", "teacher_judgments"))


@pytest.fixture
def dagster_home(tmp_path, monkeypatch):
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster"))
    (tmp_path / "dagster").mkdir()
    return tmp_path


def two_variant_config(root, teacher_url):
    prompts = root / "prompts"
    shutil.copytree(PROJECT_ROOT / "resources" / "prompts" / "default", prompts / "a")
    shutil.copytree(PROJECT_ROOT / "resources" / "prompts" / "chat-json", prompts / "b")
    path = write_config(root / "config.yaml", root / "home", root / "mlruns", prompts_dir=str(prompts),
                        teacher={"base_url": teacher_url, "judge_depth": 3, "train_queries": 3, "eval_queries": 1,
                                 "prompt_variants": ["a", "b"]})
    return load_config(path), prompts


def test_new_variant_folder_becomes_a_partition(dagster_home, teacher_url):
    config, prompts = two_variant_config(dagster_home, teacher_url)
    instance = dg.DagsterInstance.get()
    shutil.copytree(prompts / "a", prompts / "c")
    sensor = build_prompt_variant_sensor(str(prompts))
    result = sensor(dg.build_sensor_context(instance=instance))
    added = [r for r in result.dynamic_partitions_requests if isinstance(r, dg.AddDynamicPartitionsRequest)]
    assert added[0].partition_keys == ["a", "b", "c"]
    assert [r.tags["rr/changed_variants"] for r in result.run_requests] == ["a,b,c"]
    from rr_assets.definitions import build_definitions

    instance.add_dynamic_partitions("prompt_variant", ["a", "b", "c"])
    build_definitions(config).resolve_job_def("rr_observe_prompts").execute_in_process(instance=instance)
    assert not sensor(dg.build_sensor_context(instance=instance)).run_requests  # observed: nothing changed
    template = prompts / "c" / "direct.jinja"
    template.write_text(template.read_text() + "Be brief.\n")
    assert [r.tags["rr/changed_variants"] for r in sensor(dg.build_sensor_context(instance=instance)).run_requests] == ["c"]


def stored_answers(config) -> int:
    con = duckdb.connect(f"{config.home}/warehouse.duckdb", read_only=True)
    try:
        return con.execute("SELECT count(*) FROM teacher_requests").fetchone()[0]
    finally:
        con.close()


def test_killed_run_resumes_without_paying_twice(dagster_home, teacher_url):
    proxy = RecordingProxy(teacher_url)
    config, _ = two_variant_config(dagster_home, proxy.start())
    command = [sys.executable, "-m", "rr_assets.cli", "run", "-c", config.source_file, "--select", UP_TO_TEACHER,
               "--variant", "a"]
    env = {**os.environ, "RR_HOME": config.home}
    try:
        first = subprocess.Popen(command, env=env, start_new_session=True, stdout=subprocess.DEVNULL,
                                 stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 300
        while len(proxy.answered()) < 5 and time.monotonic() < deadline and first.poll() is None:
            time.sleep(0.05)
        os.killpg(first.pid, signal.SIGKILL)
        first.wait()
        stored_before = stored_answers(config)
        sent_before = len(proxy.exchanges)
        assert stored_before >= 4

        subprocess.run(command, env=env, check=True, timeout=600, capture_output=True)
    finally:
        proxy.stop()
    sent_after = len(proxy.exchanges) - sent_before
    # Every request sent after the restart was one whose answer had not been stored: nothing paid
    # for and stored was asked again; only answers in flight at the kill can be asked twice.
    assert sent_after == stored_answers(config) - stored_before
    repeats = [h for h, n in Counter(e.body_hash for e in proxy.exchanges).items() if n > 1]
    assert len(repeats) <= config.teacher.concurrency + 1
    con = duckdb.connect(f"{config.home}/warehouse.duckdb", read_only=True)
    assert con.execute("SELECT count(DISTINCT query_id) FROM teacher_judgments WHERE prompt_variant = 'a'").fetchone()[0] == 4
