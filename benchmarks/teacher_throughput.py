"""Teacher throughput against the embedded llama.cpp server at several concurrency levels.

Each level judges the same (query, document) pairs with a fresh request cache, so every request
is a real call. Prints a table and writes JSON (default benchmarks/results/teacher_throughput.json).

    .venv/bin/python benchmarks/teacher_throughput.py [--pairs 24] [--levels 1 2 4 8]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

from rr_assets.config import RESOURCES_DIR
from rr_assets.core.collections import CollectionSource, load_collection
from rr_assets.core.llama_server import llama_cpp_server
from rr_assets.core.model_files import embedded_gguf
from rr_assets.core.prompts import load_variant
from rr_assets.core.teacher import JudgePair, RequestCache, Teacher, TeacherEndpoint
from rr_assets.core.warehouse import Warehouse


def cpu_model() -> str:
    info = Path("/proc/cpuinfo")
    lines = info.read_text().splitlines() if info.exists() else []
    return next((line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")), "unknown")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=24)
    parser.add_argument("--levels", type=int, nargs="+", default=[1, 2, 4, 8])
    parser.add_argument("--build", default="portable", help="a name for the installed llama-cpp-python build")
    parser.add_argument("--out")
    args = parser.parse_args()
    args.out = args.out or str(Path(__file__).parent / "results" / f"teacher_throughput-{args.build}.json")

    collection = load_collection(CollectionSource("demo", str(RESOURCES_DIR / "collections" / "demo")))
    queries = {q.query_id: q.text for q in collection.queries}
    docs = {d.doc_id: d.text for d in collection.documents}
    pairs = [JudgePair(r.query_id, r.doc_id, queries[r.query_id], docs[r.doc_id]) for r in collection.qrels]
    pairs = pairs[: args.pairs]
    variant = load_variant(RESOURCES_DIR / "prompts", "default")
    cache_dir = os.environ.get("RR_MODEL_CACHE") or str(Path.home() / ".cache" / "rr" / "models")
    rows = []
    with tempfile.TemporaryDirectory() as tmp, llama_cpp_server(
        embedded_gguf(cache_dir), "gemma-3-270m", Path(tmp) / "server.log"
    ) as server:
        for level in args.levels:
            cache = RequestCache(Warehouse(Path(tmp) / f"cache-{level}.duckdb"))
            teacher = Teacher(TeacherEndpoint(server.base_url, "gemma-3-270m", concurrency=level), variant, cache)
            started = time.perf_counter()
            teacher.judge(pairs)
            seconds = time.perf_counter() - started
            usage = teacher.usage
            rows.append({"concurrency": level, "requests": usage.new_calls, "seconds": round(seconds, 2),
                         "requests_per_s": round(usage.new_calls / seconds, 3),
                         "completion_tokens_per_s": round(usage.completion_tokens / seconds, 1),
                         "total_tokens_per_s": round((usage.prompt_tokens + usage.completion_tokens) / seconds, 1)})
    base = rows[0]["requests_per_s"]
    for row in rows:
        row["speedup_vs_sequential"] = round(row["requests_per_s"] / base, 2)
    print(f"{'concurrency':>11} {'requests':>8} {'seconds':>8} {'req/s':>7} {'gen tok/s':>9} {'all tok/s':>9} {'speed-up':>8}")
    for r in rows:
        print(f"{r['concurrency']:>11} {r['requests']:>8} {r['seconds']:>8} {r['requests_per_s']:>7} "
              f"{r['completion_tokens_per_s']:>9} {r['total_tokens_per_s']:>9} {r['speedup_vs_sequential']:>8}")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    import llama_cpp

    Path(args.out).write_text(json.dumps({
        "server": "llama.cpp (llama-cpp-python) embedded, Gemma 3 270M Q4_K_M", "build": args.build,
        "llama_system_info": llama_cpp.llama_print_system_info().decode(), "cpu": cpu_model(),
        "cpu_count": os.cpu_count(), "pairs": len(pairs), "results": rows}, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
