"""The embedded teacher: llama.cpp's OpenAI-compatible server on 127.0.0.1, started and stopped by us."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator


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


@contextmanager
def llama_cpp_server(
    gguf: Path, model_alias: str, log_path: Path, n_ctx: int = 2048, threads: int | None = None,
    startup_timeout_s: float = 120.0,
) -> Iterator[str]:
    """Run llama_cpp.server for the duration of the block; yields its OpenAI base URL."""
    port = free_port()
    threads = threads or max(1, os.cpu_count() or 1)
    command = [
        sys.executable, "-m", "llama_cpp.server", "--model", str(gguf), "--model_alias", model_alias,
        "--host", "127.0.0.1", "--port", str(port), "--n_ctx", str(n_ctx),
        "--n_threads", str(threads), "--n_threads_batch", str(threads), "--seed", "0",
    ]
    log_path.parent.mkdir(parents=True, exist_ok=True)
    base_url = f"http://127.0.0.1:{port}/v1"
    with log_path.open("ab") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + startup_timeout_s
        while not _ready(base_url):
            if process.poll() is not None or time.monotonic() > deadline:
                tail = log_path.read_text(errors="replace")[-2000:]
                raise TeacherServerError(f"llama.cpp server did not start (see {log_path}):\n{tail}")
            time.sleep(0.5)
        yield base_url
    finally:
        stop_process_group(process)


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
