"""The embedded teacher: llama.cpp's OpenAI-compatible server on 127.0.0.1, started and stopped by us."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from rr_assets.core.processes import dies_with_this_process


class TeacherServerError(RuntimeError):
    """The embedded server did not come up; the message carries the end of its log."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _ready(base_url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{base_url}/models", timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


def log_tail(log_path: Path, lines: int = 12) -> str:
    return "\n".join(log_path.read_text(errors="replace").splitlines()[-lines:]) if log_path.exists() else ""


def describe_exit(returncode: int) -> str:
    """'exit code 1', or 'signal SIGILL (illegal instruction)' for a process killed by a signal."""
    if returncode >= 0:
        return f"exit code {returncode}"
    number = -returncode
    try:
        name = signal.Signals(number).name
    except ValueError:
        name = f"signal {number}"
    meaning = {"SIGILL": " (illegal instruction)", "SIGKILL": " (killed)", "SIGSEGV": " (segmentation fault)"}
    return f"signal {name}{meaning.get(name, '')}"


@dataclass
class RunningServer:
    """The embedded server of a block: its OpenAI base URL and its supervisor."""

    base_url: str
    process: subprocess.Popen
    log_path: Path

    def failure(self) -> str | None:
        """None while the server runs; once its process has exited, what happened and what to do."""
        code = self.process.poll()
        if code is None:
            return None
        advice = ("this llama-cpp-python build uses CPU instructions this machine lacks: rebuild it portably "
                  "(`make llama-portable`, see the README)" if code == -signal.SIGILL else
                  f"read {self.log_path}, then re-run")
        return (f"the embedded llama.cpp server exited with {describe_exit(code)}; {advice}. "
                f"Last lines of its log:\n{log_tail(self.log_path)}")


def server_command(gguf: Path, model_alias: str, port: int, n_ctx: int = 2048, threads: int | None = None) -> list[str]:
    threads = threads or max(1, os.cpu_count() or 1)
    return [sys.executable, "-m", "llama_cpp.server", "--model", str(gguf), "--model_alias", model_alias,
            "--host", "127.0.0.1", "--port", str(port), "--n_ctx", str(n_ctx),
            "--n_threads", str(threads), "--n_threads_batch", str(threads), "--seed", "0"]


def reap_stale_servers(records_dir: Path) -> list[int]:
    """Kill the servers that `records_dir` records whose owning process is gone (one a pre-PDEATHSIG
    rr left, say), and forget them; returns their pids. A record whose pid now belongs to another
    program (a different start time or command) is only forgotten."""
    import psutil

    reaped = []
    for path in sorted(records_dir.glob("*.json")) if records_dir.is_dir() else []:
        record = json.loads(path.read_text())
        if psutil.pid_exists(record["owner_pid"]):
            continue
        with contextlib.suppress(psutil.NoSuchProcess):
            server = psutil.Process(record["pid"])
            if abs(server.create_time() - record["created"]) < 1 and "llama_cpp.server" in server.cmdline():
                server.kill()
                server.wait(timeout=10)
                reaped.append(record["pid"])
        path.unlink(missing_ok=True)
    return reaped


def record_server(records_dir: Path, pid: int, owner_pid: int, port: int) -> Path:
    """Note a running server in `records_dir` (RR_HOME/servers): its pid, start time, owner and port."""
    import psutil

    records_dir.mkdir(parents=True, exist_ok=True)
    path = records_dir / f"{pid}.json"
    path.write_text(json.dumps({"pid": pid, "created": psutil.Process(pid).create_time(), "owner_pid": owner_pid,
                                "port": port}))
    return path


@contextmanager
def llama_cpp_server(
    gguf: Path, model_alias: str, log_path: Path, n_ctx: int = 2048, threads: int | None = None,
    startup_timeout_s: float = 120.0, records_dir: Path | None = None,
) -> Iterator[RunningServer]:
    """Run llama_cpp.server for the duration of the block; yields it (base URL and supervisor). The
    server dies with the thread that started it, whatever ends it. With `records_dir`, stale servers
    recorded there are reaped first and this one is recorded while it runs."""
    if records_dir is not None:
        reap_stale_servers(records_dir)
    port = free_port()
    command = server_command(gguf, model_alias, port, n_ctx, threads)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    base_url = f"http://127.0.0.1:{port}/v1"
    with log_path.open("ab") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                                   preexec_fn=dies_with_this_process())
    record = record_server(records_dir, process.pid, os.getpid(), port) if records_dir is not None else None
    try:
        deadline = time.monotonic() + startup_timeout_s
        while not _ready(base_url):
            if process.poll() is not None or time.monotonic() > deadline:
                how = describe_exit(process.returncode) if process.returncode is not None else "no answer in time"
                raise TeacherServerError(f"llama.cpp server did not start ({how}; see {log_path}):\n{log_tail(log_path)}")
            time.sleep(0.5)
        yield RunningServer(base_url, process, log_path)
    except BaseException:
        stop_process_group(process, grace_s=0.0)  # interrupted or failed: nothing in flight is worth waiting for
        raise
    finally:
        stop_process_group(process, grace_s=2.0)  # it keeps no state: a stop never waits long
        if record is not None:
            record.unlink(missing_ok=True)


def stop_process_group(process: subprocess.Popen, grace_s: float = 10.0) -> None:
    """SIGTERM the process group, then SIGKILL whatever is left after the grace period."""
    if process.poll() is not None:
        return
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    except ProcessLookupError:
        pass
