"""Teacher throughput through rr's teacher pool: 1 and 2 endpoints, several concurrency levels.

Two kinds of server stand behind the pool:
- embedded: N llama.cpp servers side by side (`teacher.embedded_servers: N`), sharing the cores
  as rr shares them (cores // N threads each). They answer one request at a time.
- replay: N stand-ins for a server that batches (vLLM, a hosted API). Each answers every prompt
  with the answer the embedded model gave it, after a fixed latency, however many requests are
  in flight: what rr's client gets from endpoints and concurrency when the server is not the limit.
  It is a measuring device for the client, not a model.

Each row judges the same (query, document) pairs with a fresh request cache, so every request is a
call. Prints a table and writes JSON (default benchmarks/results/teacher_throughput-<build>.json).

    .venv/bin/python benchmarks/teacher_throughput.py [--pairs 24] [--endpoints 1 2] [--levels 1 4]
        [--replay-latency 1.0] [--replay-levels 1 4 16]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import duckdb

from rr_assets.config import RESOURCES_DIR
from rr_assets.core.collections import CollectionSource, load_collection
from rr_assets.core.llama_server import llama_cpp_server
from rr_assets.core.model_files import embedded_gguf
from rr_assets.core.prompts import load_variant
from rr_assets.core.teacher import JudgePair, RequestCache, Teacher, TeacherEndpoint
from rr_assets.core.warehouse import Warehouse

MODEL = "gemma-3-270m"


def cpu_model() -> str:
    info = Path("/proc/cpuinfo")
    lines = info.read_text().splitlines() if info.exists() else []
    return next((line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")), "unknown")


def judge_pairs(count: int) -> list[JudgePair]:
    collection = load_collection(CollectionSource("demo", str(RESOURCES_DIR / "collections" / "demo")))
    queries = {q.query_id: q.text for q in collection.queries}
    docs = {d.doc_id: d.text for d in collection.documents}
    return [JudgePair(r.query_id, r.doc_id, queries[r.query_id], docs[r.doc_id]) for r in collection.qrels][:count]


def measure(server: str, urls: list[str], level: int, pairs: list[JudgePair], cache_path: Path) -> dict:
    """Judge `pairs` through one teacher pool over `urls`, `level` requests in flight per endpoint."""
    endpoints = [TeacherEndpoint(url, MODEL, concurrency=level, label=f"{server}-{i}") for i, url in enumerate(urls)]
    teacher = Teacher(endpoints, load_variant(RESOURCES_DIR / "prompts", "default"), RequestCache(Warehouse(cache_path)))
    started = time.perf_counter()
    teacher.judge(pairs)
    seconds = time.perf_counter() - started
    usage = teacher.usage
    row = {"server": server, "endpoints": len(urls), "concurrency_per_endpoint": level, "requests": usage.new_calls,
           "seconds": round(seconds, 2), "requests_per_s": round(usage.new_calls / seconds, 3),
           "completion_tokens_per_s": round(usage.completion_tokens / seconds, 1)}
    print(f"{server:>8} {len(urls):>9} {level:>11} {usage.new_calls:>8} {row['seconds']:>8} "
          f"{row['requests_per_s']:>7} {row['completion_tokens_per_s']:>9}", flush=True)
    return row


class _Replay(BaseHTTPRequestHandler):
    """POST /v1/completions or /v1/chat/completions: the recorded answer to the prompt, after the
    server's latency. Threads answer requests side by side, so latency does not grow with load."""

    answers: dict[str, tuple[str, int, int]] = {}
    latency_s = 1.0

    def do_POST(self) -> None:  # noqa: N802 (http.server's name)
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        chat = self.path.endswith("/chat/completions")
        prompt = body["messages"][0]["content"] if chat else body["prompt"]
        time.sleep(self.latency_s)
        if prompt not in self.answers:
            self.send_error(404, "no recorded answer for this prompt")
            return
        text, prompt_tokens, completion_tokens = self.answers[prompt]
        choice = ({"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"} if chat
                  else {"index": 0, "text": text, "finish_reason": "stop"})
        payload = json.dumps({
            "id": "replay", "object": "chat.completion" if chat else "text_completion", "created": 0, "model": MODEL,
            "choices": [choice], "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                                           "total_tokens": prompt_tokens + completion_tokens}}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args) -> None:
        pass


@contextlib.contextmanager
def replay_servers(count: int, answers: dict[str, tuple[str, int, int]], latency_s: float):
    handler = type("Replay", (_Replay,), {"answers": answers, "latency_s": latency_s})
    servers = [ThreadingHTTPServer(("127.0.0.1", 0), handler) for _ in range(count)]
    for server in servers:
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield [f"http://127.0.0.1:{s.server_address[1]}/v1" for s in servers]
    finally:
        for server in servers:
            server.shutdown()
            server.server_close()


def recorded_answers(cache_path: Path) -> dict[str, tuple[str, int, int]]:
    with duckdb.connect(str(cache_path), read_only=True) as db:
        rows = db.sql("SELECT prompt, response, prompt_tokens, completion_tokens FROM teacher_requests").fetchall()
    return {prompt: (response, int(p or 0), int(c or 0)) for prompt, response, p, c in rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=24)
    parser.add_argument("--endpoints", type=int, nargs="+", default=[1, 2], help="servers behind one teacher pool")
    parser.add_argument("--levels", type=int, nargs="+", default=[1, 4], help="concurrency per embedded server")
    parser.add_argument("--replay-latency", type=float, default=1.0, help="seconds each replayed answer takes")
    parser.add_argument("--replay-levels", type=int, nargs="*", default=[1, 4, 16],
                        help="concurrency per replay server (none: no replay rows)")
    parser.add_argument("--build", default="portable", help="a name for the installed llama-cpp-python build")
    parser.add_argument("--out")
    args = parser.parse_args()
    args.out = args.out or str(Path(__file__).parent / "results" / f"teacher_throughput-{args.build}.json")

    pairs = judge_pairs(args.pairs)
    gguf = embedded_gguf(os.environ.get("RR_MODEL_CACHE") or str(Path.home() / ".cache" / "rr" / "models"))
    cores = os.cpu_count() or 1
    print(f"{'server':>8} {'endpoints':>9} {'concurrency':>11} {'requests':>8} {'seconds':>8} {'req/s':>7} {'gen tok/s':>9}")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for count in args.endpoints:
            with contextlib.ExitStack() as stack:
                servers = [stack.enter_context(llama_cpp_server(gguf, MODEL, Path(tmp) / f"server-{count}-{i}.log",
                                                                threads=max(1, cores // count)))
                           for i in range(count)]
                for level in args.levels:
                    rows.append(measure("embedded", [s.base_url for s in servers], level, pairs,
                                        Path(tmp) / f"cache-embedded-{count}-{level}.duckdb"))
        answers = recorded_answers(Path(tmp) / f"cache-embedded-{args.endpoints[0]}-{args.levels[0]}.duckdb")
        for count in args.endpoints:
            with replay_servers(count, answers, args.replay_latency) as urls:
                for level in args.replay_levels:
                    rows.append(measure("replay", urls, level, pairs, Path(tmp) / f"cache-replay-{count}-{level}.duckdb"))
    first = {}
    for row in rows:  # against the first row of the same kind of server
        first.setdefault(row["server"], row["requests_per_s"])
        row["speedup"] = round(row["requests_per_s"] / first[row["server"]], 2)
    import llama_cpp

    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({
        "embedded": "llama.cpp (llama-cpp-python) server, Gemma 3 270M Q4_K_M, cores // endpoints threads each",
        "replay": f"the embedded model's answers replayed after {args.replay_latency} s, any number at once",
        "build": args.build, "llama_system_info": llama_cpp.llama_print_system_info().decode(), "cpu": cpu_model(),
        "cpu_count": cores, "pairs": len(pairs), "results": rows}, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
