"""Faults injected by a proxy in front of the real llama.cpp server: every run completes or fails
saying what happened, a re-run completes, and no answer that reached rr is asked for again."""

import re
import threading
import time

import pytest

from rr_assets.core.llama_server import llama_cpp_server
from rr_assets.core.prompts import load_variant
from rr_assets.core.teacher import RequestCache, TeacherEndpoint, TeacherError, TeacherUsage, judge_direct
from rr_assets.core.warehouse import Warehouse
from tests.conftest import PROJECT_ROOT
from tests.integration.test_teacher import demo_pairs
from tests.proxy import Fault, RecordingProxy

pytestmark = pytest.mark.integration
VARIANT = load_variant(PROJECT_ROOT / "resources" / "prompts", "default")


def run_through(proxy_url: str, warehouse: Warehouse, pairs: int = 4, timeout_s: float = 60.0, retries: int = 3):
    endpoint = TeacherEndpoint(proxy_url, "gemma-3-270m", concurrency=2, timeout_s=timeout_s, max_retries=retries)
    usage = TeacherUsage()
    judgments = judge_direct(demo_pairs(pairs), VARIANT, endpoint, RequestCache(warehouse), usage)
    return judgments, usage


def assert_nothing_paid_twice(proxy: RecordingProxy) -> None:
    delivered = proxy.answered()
    assert len(delivered) == len(set(delivered)), "an answer that reached rr was requested again"


@pytest.mark.parametrize("fault, first_n", [
    (Fault("status", 429, {"Retry-After": "1"}), 2),
    (Fault("status", 500), 2),
    (Fault("status", 503), 1),
    (Fault("delay", seconds=25.0), 1),
    (Fault("truncate"), 2),
    (Fault("garbage"), 2),
    (Fault("reset"), 2),
])
def test_transient_faults_are_retried_to_completion(teacher_url, tmp_path, fault, first_n):
    proxy = RecordingProxy(teacher_url, plan=lambda index: fault if index < first_n else None)
    try:
        started = time.monotonic()
        timeout_s = 10.0 if fault.kind == "delay" else 60.0
        judgments, usage = run_through(proxy.start(), Warehouse(tmp_path / "w.duckdb"), timeout_s=timeout_s)
        elapsed = time.monotonic() - started
    finally:
        proxy.stop()
    assert len(judgments) == 4 and all(j.raw for j in judgments)
    assert len(proxy.exchanges) >= usage.new_calls + first_n
    assert_nothing_paid_twice(proxy)
    if fault.kind == "status" and fault.status == 429:
        assert elapsed >= 1.0  # Retry-After was honoured


def test_persistent_failure_says_what_happened_and_rerun_resumes(teacher_url, tmp_path):
    warehouse = Warehouse(tmp_path / "w.duckdb")
    failing = RecordingProxy(teacher_url, plan=lambda index: Fault("status", 503) if index >= 3 else None)
    try:
        with pytest.raises(TeacherError, match=r"HTTP 503 from the teacher .* re-run to send only the missing"):
            run_through(failing.start(), warehouse, pairs=6, retries=1)
    finally:
        failing.stop()
    cached = set(failing.answered())
    assert cached
    healthy = RecordingProxy(teacher_url)
    try:
        judgments, usage = run_through(healthy.start(), warehouse, pairs=6)
    finally:
        healthy.stop()
    assert len(judgments) == 6
    assert not cached & {e.body_hash for e in healthy.exchanges}
    assert usage.cache_hits >= len(cached)


def test_server_killed_mid_run(gguf_path, tmp_path):
    warehouse = Warehouse(tmp_path / "w.duckdb")
    outcome: dict = {}
    with llama_cpp_server(gguf_path, "gemma-3-270m", tmp_path / "first.log") as url:
        proxy = RecordingProxy(url)
        proxy_url = proxy.start()

        def run():
            try:
                run_through(proxy_url, warehouse, pairs=8, retries=1, timeout_s=5)
            except TeacherError as exc:
                outcome["error"] = str(exc)

        worker = threading.Thread(target=run)
        worker.start()
        while len(proxy.answered()) < 2 and worker.is_alive():
            time.sleep(0.05)
        # leaving the block stops (kills) the server in the middle of the run
    worker.join(timeout=120)
    proxy.stop()
    assert re.search(r"teacher requests failed \(\d+× (could not reach the teacher|the teacher did not answer "
                     r"within the timeout|HTTP 5\d\d from the teacher)", outcome.get("error", "")), outcome
    paid = set(proxy.answered())
    with llama_cpp_server(gguf_path, "gemma-3-270m", tmp_path / "second.log") as url:
        again = RecordingProxy(url)
        try:
            judgments, _ = run_through(again.start(), warehouse, pairs=8)
        finally:
            again.stop()
    assert len(judgments) == 8
    assert not paid & {e.body_hash for e in again.exchanges}
