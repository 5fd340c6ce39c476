"""`rr run` processes as a user sees them: a second run waits for a busy pool asleep, a waiting run
killed with SIGKILL leaves nothing behind, and SIGINT or SIGTERM stops a run mid-teacher (one
partition, or two side by side in child processes), mid-training or mid-scoring within seconds,
with its Dagster runs marked failed, its pool slots freed and no process of its own left. The
terminal shows rr's lines, not Dagster's DEBUG event stream."""

import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time

import dagster as dg
import psutil
import pytest

from tests.conftest import DEMO_DIR, PROJECT_ROOT, write_config
from tests.integration.test_imported_teacher import answer_lines

pytestmark = pytest.mark.e2e


def _sigint_ignored() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)


class RRProcess:
    """`rr run` in the background, its merged output read line by line. It starts with SIGINT
    ignored, as a command started with `&` by a non-interactive shell does: rr must still stop on it."""

    def __init__(self, config, env, *args: str):
        self.process = subprocess.Popen([sys.executable, "-m", "rr_assets.cli", "run", "-c", str(config), *args], env=env,
                                        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                        preexec_fn=_sigint_ignored)
        self.lines: list[str] = []
        self._new: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.process.stdout:
            self.lines.append(line)
            self._new.put(line)

    def wait_for(self, pattern: str, timeout_s: float = 300) -> str:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                line = self._new.get(timeout=1)
            except queue.Empty:
                assert self.process.poll() is None, "rr exited early:\n" + "".join(self.lines[-40:])
                continue
            if re.search(pattern, line):
                return line
        raise AssertionError(f"no line matching {pattern!r} in {timeout_s} s:\n" + "".join(self.lines[-40:]))

    @property
    def output(self) -> str:
        return "".join(self.lines)


def interrupt(rr: RRProcess, sig: int = signal.SIGINT) -> tuple[int, float]:
    """Send `sig`; (exit code, seconds to exit)."""
    sent_at = time.monotonic()
    rr.process.send_signal(sig)
    try:
        code = rr.process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"rr did not exit within 30 s of signal {sig}:\n{rr.output[-3000:]}") from None
    return code, time.monotonic() - sent_at


def test_a_waiting_run_sleeps_and_sigint_stops_a_run_mid_teacher(tmp_path):
    config = write_config(tmp_path / "config.yaml", tmp_path / "home", tmp_path / "mlruns",
                          teacher={"judge_depth": 6, "train_queries": 30, "prompt_variants": ["default"]})
    env = {**os.environ, "DAGSTER_HOME": str(tmp_path / "dagster"), "RR_HOME": str(tmp_path / "home")}
    first = RRProcess(config, env)
    try:
        first.wait_for(r"teacher_judgments - \w+: \d+/\d+ new teacher requests answered")
        [record] = (tmp_path / "home" / "servers").glob("*.json")
        server = psutil.Process(json.loads(record.read_text())["pid"])

        second = RRProcess(config, env)
        try:
            second.wait_for(r"waiting for a free slot of pool 'teacher'")
            cpu = psutil.Process(second.process.pid).cpu_percent(interval=3.0)
            assert cpu < 5.0, f"a waiting rr used {cpu}% of a core"
            second.process.kill()
            second.process.wait()
        finally:
            second.process.kill()

        instance = dg.DagsterInstance.from_config(str(tmp_path / "dagster"))
        teacher_pool = instance.event_log_storage.get_concurrency_info("teacher")
        assert [s.run_id for s in teacher_pool.claimed_slots] == [s.run_id for s in teacher_pool.pending_steps]
        assert len(teacher_pool.claimed_slots) == 1  # the first run's, and nothing of the killed one

        code, stopped_s = interrupt(first)
    finally:
        first.process.kill()
    print(f"SIGINT to exit: {stopped_s:.2f} s; the waiting run: {cpu:.1f}% of a core")
    assert code == 130 and stopped_s < 5, (code, stopped_s, first.output[-3000:])
    assert re.search(r"teacher_judgments\[demo\|default\]: INTERRUPTED", first.output)
    assert "STEP_START" not in first.output and "RESOURCE_INIT" not in first.output  # no DEBUG event stream
    _, alive = psutil.wait_procs([server], timeout=5)
    assert not alive and not list((tmp_path / "home" / "servers").glob("*.json"))

    runs = instance.get_run_records(dg.RunsFilter(tags={"dagster/partition": "demo|default"}))
    assert [r.dagster_run.status for r in runs] == [dg.DagsterRunStatus.FAILURE]
    teacher_pool = instance.event_log_storage.get_concurrency_info("teacher")
    assert not teacher_pool.claimed_slots and not teacher_pool.pending_steps


def endless_training_config(tmp_path, **sections):
    """A demo config whose imported teacher reaches training in seconds, and whose training runs on
    (1,000 epochs) until it is stopped."""
    answers = tmp_path / "answers.jsonl"
    answers.write_text("\n".join(answer_lines()) + "\n")
    return write_config(tmp_path / "config.yaml", tmp_path / "home", tmp_path / "mlruns",
                        collections={"demo": {"path": str(PROJECT_ROOT / "resources" / "collections" / "demo"),
                                              "teacher_answers": [str(answers)]}},
                        splits={"eval_percent": 0, "dev_percent": 0}, teacher={"prompt_variants": ["imported"]},
                        student={"epochs": 1000}, **sections)


def test_sigterm_stops_a_run_mid_training(tmp_path):
    """An imported teacher reaches training in seconds; SIGTERM there ends the run as SIGINT does."""
    config = endless_training_config(tmp_path)
    env = {**os.environ, "DAGSTER_HOME": str(tmp_path / "dagster"), "RR_HOME": str(tmp_path / "home")}
    rr = RRProcess(config, env)
    try:
        rr.wait_for(r"student_checkpoint - training step 1 ")
        code, stopped_s = interrupt(rr, signal.SIGTERM)
    finally:
        rr.process.kill()
    print(f"SIGTERM mid-training to exit: {stopped_s:.2f} s")
    assert code == 130 and stopped_s < 5, (code, stopped_s, rr.output[-3000:])
    assert re.search(r"student_checkpoint\[demo\|imported\]: INTERRUPTED", rr.output)
    instance = dg.DagsterInstance.from_config(str(tmp_path / "dagster"))
    [run] = instance.get_run_records(dg.RunsFilter(tags={"dagster/partition": "demo|imported"}), limit=1)
    assert run.dagster_run.status == dg.DagsterRunStatus.FAILURE
    student_pool = instance.event_log_storage.get_concurrency_info("student")
    assert not student_pool.claimed_slots and not student_pool.pending_steps


def test_sigint_stops_two_partitions_running_side_by_side(tmp_path, teacher_url):
    """Two teacher URLs (one server under two names) take two teacher steps at once: the prompt
    variants' judgments run side by side, each in a child process; SIGINT ends both."""
    variants = ["default", "chat-json"]
    config = write_config(tmp_path / "config.yaml", tmp_path / "home", tmp_path / "mlruns",
                          teacher={"base_url": teacher_url, "endpoints": [teacher_url.replace("127.0.0.1", "localhost")],
                                   "judge_depth": 6, "train_queries": 30, "prompt_variants": variants},
                          execution={"parallel_runs": 2})
    env = {**os.environ, "DAGSTER_HOME": str(tmp_path / "dagster"), "RR_HOME": str(tmp_path / "home")}
    rr = RRProcess(config, env)
    try:
        rr.wait_for(r"teacher_judgments: 2 partitions, 2 at a time")
        rr.wait_for(r"teacher_judgments - \w+: \d+/\d+ new teacher requests answered")
        children = psutil.Process(rr.process.pid).children()
        assert sum("spawn_main" in " ".join(child.cmdline()) for child in children) == 2  # and multiprocessing's tracker
        code, stopped_s = interrupt(rr)
    finally:
        rr.process.kill()
    print(f"SIGINT to exit with two partitions running: {stopped_s:.2f} s")
    assert code == 130 and stopped_s < 5, (code, stopped_s, rr.output[-3000:])
    _, alive = psutil.wait_procs(children, timeout=2)
    assert not alive
    instance = dg.DagsterInstance.from_config(str(tmp_path / "dagster"))
    for variant in variants:
        [run] = instance.get_run_records(dg.RunsFilter(tags={"dagster/partition": f"demo|{variant}"}), limit=1)
        assert run.dagster_run.status == dg.DagsterRunStatus.FAILURE
    teacher_pool = instance.event_log_storage.get_concurrency_info("teacher")
    assert teacher_pool.limit == 2 and not teacher_pool.claimed_slots and not teacher_pool.pending_steps


def test_sigint_stops_a_run_mid_scoring(tmp_path):
    """An imported teacher and one training step reach scoring in seconds; SIGINT there."""
    answers = tmp_path / "answers.jsonl"
    answers.write_text("\n".join(answer_lines(40)) + "\n")
    config = write_config(tmp_path / "config.yaml", tmp_path / "home", tmp_path / "mlruns",
                          collections={"demo": {"path": str(DEMO_DIR), "teacher_answers": [str(answers)]}},
                          splits={"eval_percent": 40, "dev_percent": 20}, teacher={"prompt_variants": ["imported"]},
                          student={"max_steps": 1, "dev_queries": 2, "rerank_depth": 30, "score_batch_size": 4},
                          rl={"enabled": False}, explain={"queries": 0, "quality_pairs": 0})
    env = {**os.environ, "DAGSTER_HOME": str(tmp_path / "dagster"), "RR_HOME": str(tmp_path / "home")}
    rr = RRProcess(config, env)
    try:
        rr.wait_for(r"student_scores - sft/score: \d+/\d+ pairs scored", timeout_s=600)
        code, stopped_s = interrupt(rr)
    finally:
        rr.process.kill()
    print(f"SIGINT mid-scoring to exit: {stopped_s:.2f} s")
    assert code == 130 and stopped_s < 5, (code, stopped_s, rr.output[-3000:])
    assert re.search(r"student_scores\[demo\|imported\]: INTERRUPTED", rr.output)
    instance = dg.DagsterInstance.from_config(str(tmp_path / "dagster"))
    runs = instance.get_run_records(dg.RunsFilter(tags={"dagster/partition": "demo|imported"}))
    assert [r.dagster_run.status for r in runs][0] == dg.DagsterRunStatus.FAILURE  # the latest: scoring's
    student_pool = instance.event_log_storage.get_concurrency_info("student")
    assert not student_pool.claimed_slots and not student_pool.pending_steps
