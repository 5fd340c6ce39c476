"""Prompt variants as partitions: staleness follows one variant's files, unchanged variants cost no
teacher calls, and a run killed halfway resumes without paying twice."""

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
from dagster._core.definitions.data_version import StaleStatus
from dagster._utils.test.data_versions import get_stale_status_resolver

from rr_assets.automation import build_prompt_variant_sensor
from rr_assets.cli import materialize
from rr_assets.config import load_config
from rr_assets.definitions import build_definitions
from rr_assets.partitions import variant_key
from tests.conftest import PROJECT_ROOT, write_config
from tests.proxy import RecordingProxy

pytestmark = pytest.mark.e2e
UP_TO_TEACHER = " or ".join(f"key:{k}" for k in (
    "corpus", "queries", "qrels", "bm25_index", "bm25_candidates", "prompt_templates", "teacher_judgments"))


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
                        teacher={"base_url": teacher_url, "depth": 3, "max_queries": 4, "prompt_variants": ["a", "b"]})
    return load_config(path), prompts


def test_editing_one_variant_makes_only_its_partitions_stale(dagster_home, teacher_url):
    config, prompts = two_variant_config(dagster_home, teacher_url)
    assert materialize(config, selection=UP_TO_TEACHER)
    instance = dg.DagsterInstance.get()
    defs = build_definitions(config)
    key = dg.AssetKey("teacher_judgments")

    def status(variant):
        resolver = get_stale_status_resolver(instance, list(defs.assets))
        return resolver.get_status(key, variant_key("demo", variant))

    assert status("a") == StaleStatus.FRESH and status("b") == StaleStatus.FRESH
    sensor = build_prompt_variant_sensor(str(prompts))
    assert not sensor(dg.build_sensor_context(instance=instance)).run_requests

    template = prompts / "b" / "direct.jinja"
    template.write_text(template.read_text() + "Keep the explanation short.\n")
    requests = sensor(dg.build_sensor_context(instance=instance)).run_requests
    assert [r.partition_key for r in requests] == ["b"]
    assert materialize(config, selection="key:prompt_templates", variants=["b"])
    assert status("a") == StaleStatus.FRESH and status("b") == StaleStatus.STALE

    assert materialize(config, selection="key:teacher_judgments", variants=["a"])
    calls = instance.get_latest_materialization_event(key).asset_materialization.metadata["new_teacher_calls"]
    assert calls.value == 0
    assert materialize(config, selection="key:teacher_judgments", variants=["b"])
    assert status("b") == StaleStatus.FRESH


def test_new_variant_folder_becomes_a_partition(dagster_home, teacher_url):
    config, prompts = two_variant_config(dagster_home, teacher_url)
    instance = dg.DagsterInstance.get()
    shutil.copytree(prompts / "a", prompts / "c")
    result = build_prompt_variant_sensor(str(prompts))(dg.build_sensor_context(instance=instance))
    added = [r for r in result.dynamic_partitions_requests if isinstance(r, dg.AddDynamicPartitionsRequest)]
    assert added[0].partition_keys == ["a", "b", "c"]
    assert sorted(r.partition_key for r in result.run_requests) == ["a", "b", "c"]


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
    assert con.execute("SELECT count(*) FROM teacher_judgments WHERE prompt_variant = 'a'").fetchone()[0] == 12
