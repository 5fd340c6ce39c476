"""Faults injected by a proxy in front of the real llama.cpp server: every run completes or fails
saying what happened, a re-run completes, and no answer that reached rr is asked for again."""

import os
import re
import signal
import socket
import threading
import time

import pytest

from rr_assets.core.llama_server import llama_cpp_server
from rr_assets.core.prompts import load_variant
from rr_assets.core.teacher import RequestCache, Teacher, TeacherEndpoint, TeacherError, TeacherUnreachable
from rr_assets.core.warehouse import Warehouse
from tests.conftest import PROJECT_ROOT, demo_pairs
from tests.proxy import Fault, RecordingProxy

pytestmark = pytest.mark.integration
VARIANT = load_variant(PROJECT_ROOT / "resources" / "prompts", "default")


def run_through(url: str, warehouse: Warehouse, pairs: int = 4, timeout_s: float = 60.0, retries: int = 3,
                server_failure=None):
    endpoint = TeacherEndpoint(url, "gemma-3-270m", concurrency=2, timeout_s=timeout_s, max_retries=retries,
                               server_failure=server_failure)
    teacher = Teacher(endpoint, VARIANT, RequestCache(warehouse))
    return teacher.judge(demo_pairs(pairs)), teacher.usage


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
    with llama_cpp_server(gguf_path, "gemma-3-270m", tmp_path / "first.log") as server:
        proxy = RecordingProxy(server.base_url)
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
    assert re.search(r"(teacher requests failed \(\d+× (could not reach the teacher|the teacher did not answer "
                     r"within the timeout|HTTP 5\d\d from the teacher)|stopped answering: \d+ connection attempts)",
                     outcome.get("error", "")), outcome
    paid = set(proxy.answered())
    with llama_cpp_server(gguf_path, "gemma-3-270m", tmp_path / "second.log") as server:
        again = RecordingProxy(server.base_url)
        try:
            judgments, _ = run_through(again.start(), warehouse, pairs=8)
        finally:
            again.stop()
    assert len(judgments) == 8
    assert not paid & {e.body_hash for e in again.exchanges}


def test_embedded_server_killed_mid_run_fails_fast_and_the_rerun_sends_only_the_rest(gguf_path, tmp_path):
    """SIGKILL the real llama.cpp server while requests are in flight: the supervisor notices, the
    run stops in seconds naming the signal and the log, and nothing paid for is asked again."""
    warehouse = Warehouse(tmp_path / "w.duckdb")
    outcome: dict = {}
    with llama_cpp_server(gguf_path, "gemma-3-270m", tmp_path / "first.log") as server:
        proxy = RecordingProxy(server.base_url)
        url = proxy.start()

        def run():
            try:
                run_through(url, warehouse, pairs=10, server_failure=server.failure)
            except TeacherError as exc:
                outcome["error"], outcome["type"], outcome["at"] = str(exc), type(exc), time.monotonic()

        worker = threading.Thread(target=run)
        worker.start()
        while len(proxy.answered()) < 2 and worker.is_alive():
            time.sleep(0.05)
        killed_at = time.monotonic()
        os.kill(server.process.pid, signal.SIGKILL)
        worker.join(timeout=60)
        proxy.stop()
    assert outcome["type"] is TeacherUnreachable
    print(f"server SIGKILL to TeacherUnreachable: {outcome['at'] - killed_at:.2f} s")
    assert outcome["at"] - killed_at < 30
    assert "exited with signal SIGKILL" in outcome["error"] and "Last lines of its log" in outcome["error"]
    assert re.search(r"\d+ of the \d+ new answers arrived and are cached", outcome["error"])
    paid = set(proxy.answered())
    with llama_cpp_server(gguf_path, "gemma-3-270m", tmp_path / "second.log") as server:
        again = RecordingProxy(server.base_url)
        try:
            judgments, usage = run_through(again.start(), warehouse, pairs=10)
        finally:
            again.stop()
    assert len(judgments) == 10 and usage.cache_hits >= len(paid)
    assert not paid & {e.body_hash for e in again.exchanges}


def test_one_of_two_endpoints_killed_mid_run_the_other_finishes_and_nothing_is_paid_twice(gguf_path, tmp_path):
    """A pool of two real llama.cpp servers, each behind a recording proxy: once both have answered,
    one is SIGKILLed. Its requests in flight move to the other; every pair gets its answer; no
    request was answered twice; the dead server was taken out, not retried to exhaustion."""
    warehouse, pairs = Warehouse(tmp_path / "w.duckdb"), demo_pairs(12)
    with llama_cpp_server(gguf_path, "gemma-3-270m", tmp_path / "a.log", threads=1) as a, \
            llama_cpp_server(gguf_path, "gemma-3-270m", tmp_path / "b.log", threads=1) as b:
        proxies = [RecordingProxy(a.base_url), RecordingProxy(b.base_url)]
        endpoints = [TeacherEndpoint(proxy.start(), "gemma-3-270m", concurrency=2, max_retries=1,
                                     server_failure=server.failure) for proxy, server in zip(proxies, (a, b))]
        teacher = Teacher(endpoints, VARIANT, RequestCache(warehouse))
        outcome: dict = {}
        worker = threading.Thread(target=lambda: outcome.update(judgments=teacher.judge(pairs)))
        worker.start()
        while not all(proxy.answered() for proxy in proxies) and worker.is_alive():
            time.sleep(0.05)
        os.kill(b.process.pid, signal.SIGKILL)
        worker.join(timeout=300)
        for proxy in proxies:
            proxy.stop()
    answered = [body for proxy in proxies for body in proxy.answered()]
    assert len(outcome["judgments"]) == len(pairs) and all(j.raw for j in outcome["judgments"])
    assert len(answered) == len(set(answered)), "a request was answered twice"
    assert proxies[1].answered() and len(proxies[0].answered()) > len(proxies[1].answered())
    assert teacher.usage.new_calls == len(answered)  # each answer that arrived was stored once


def test_nobody_listening_trips_the_circuit_breaker(tmp_path):
    with socket.socket() as sock:  # a port that was free a moment ago: connections are refused
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    started = time.monotonic()
    with pytest.raises(TeacherUnreachable) as error:
        run_through(f"http://127.0.0.1:{port}/v1", Warehouse(tmp_path / "w.duckdb"), pairs=12)
    assert time.monotonic() - started < 30
    message = str(error.value)
    assert f"127.0.0.1:{port}" in message and "connection attempts in a row failed" in message
    assert "0 of the 12 new answers arrived and are cached" in message
