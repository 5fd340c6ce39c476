"""No process outlives its run: the embedded llama.cpp server dies with the process that started it,
even under SIGKILL, and a server that an older rr left behind is reaped from RR_HOME's records."""

import subprocess
import sys

import psutil
import pytest

from rr_assets.core.llama_server import free_port, reap_stale_servers, record_server, server_command

pytestmark = pytest.mark.integration

OWNER = """
import sys, time
from pathlib import Path
from rr_assets.core.llama_server import llama_cpp_server
home = Path(sys.argv[2])
with llama_cpp_server(Path(sys.argv[1]), "gemma-3-270m", home / "server.log", records_dir=home / "servers") as server:
    print(server.process.pid, flush=True)
    time.sleep(600)
"""


def test_kill_9_of_the_owner_ends_its_server_within_5_s(gguf_path, tmp_path):
    owner = subprocess.Popen([sys.executable, "-c", OWNER, str(gguf_path), str(tmp_path)], stdout=subprocess.PIPE,
                             text=True)
    try:
        server = psutil.Process(int(owner.stdout.readline()))
        assert "llama_cpp.server" in server.cmdline() and list((tmp_path / "servers").glob("*.json"))
    finally:
        owner.kill()
        owner.wait()
    _, alive = psutil.wait_procs([server], timeout=5)
    assert not alive, "the llama.cpp server outlived the process that started it"
    assert reap_stale_servers(tmp_path / "servers") == [] and not list((tmp_path / "servers").glob("*.json"))


def test_a_recorded_server_is_reaped_only_once_its_owner_is_gone(gguf_path, tmp_path):
    """A planted server, started without rr's safeguards (as an older rr did): while its recorded
    owner lives it is left alone; once the record names a dead owner, the next reap kills it."""
    planted = subprocess.Popen(server_command(gguf_path, "gemma-3-270m", free_port()), stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    records = tmp_path / "servers"
    try:
        record_server(records, planted.pid, owner_pid=psutil.Process().pid, port=0)
        assert reap_stale_servers(records) == [] and planted.poll() is None
        gone = subprocess.Popen(["true"])
        gone.wait()
        record_server(records, planted.pid, owner_pid=gone.pid, port=0)
        assert reap_stale_servers(records) == [planted.pid]
        assert planted.wait(timeout=5) is not None and not list(records.glob("*.json"))
    finally:
        planted.kill()
        planted.wait()
