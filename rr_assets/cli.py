"""The `rr` command line: demo, run, rerank, ui."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path

from rr_assets.config import DEMO_CONFIG, PROJECT_ROOT, RRConfig, load_config


# Concurrency pools: one teacher asset at a time (one endpoint, bounded concurrency inside) and
# one warehouse writer at a time (DuckDB takes a single writer).
DAGSTER_INSTANCE_YAML = """\
concurrency:
  pools:
    default_limit: 1
telemetry:
  enabled: false
"""


def _activate(config_path: str | Path) -> RRConfig:
    """Point Dagster and rr at one config: RR_CONFIG and a DAGSTER_HOME inside RR_HOME."""
    config = load_config(config_path)
    os.environ["RR_CONFIG"] = config.source_file
    os.environ["RR_HOME"] = config.home
    dagster_home = Path(os.environ.get("DAGSTER_HOME") or Path(config.home) / "dagster")
    dagster_home.mkdir(parents=True, exist_ok=True)
    instance_config = dagster_home / "dagster.yaml"
    if not instance_config.exists():
        instance_config.write_text(DAGSTER_INSTANCE_YAML)
    os.environ["DAGSTER_HOME"] = str(dagster_home)
    return config


RUN_PID_TAG, RUN_HOST_TAG = "rr/pid", "rr/host"


def release_runs_of_dead_processes(instance) -> None:
    """A CLI run killed mid-way stays "started" and keeps its concurrency-pool slots, which would
    block every later run: mark such runs failed and free their slots."""
    import dagster as dg
    import psutil

    unfinished = instance.get_run_records(
        dg.RunsFilter(statuses=[dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.STARTING])
    )
    for record in unfinished:
        run = record.dagster_run
        pid = int(run.tags.get(RUN_PID_TAG, 0))
        if pid and run.tags.get(RUN_HOST_TAG) == socket.gethostname() and not psutil.pid_exists(pid):
            instance.report_run_failed(run, f"the rr process that ran it (pid {pid}) is gone")
            instance.event_log_storage.free_concurrency_slots_for_run(run.run_id)
            print(f"marked run {run.run_id} failed: its process {pid} is gone", flush=True)


def materialize(
    config: RRConfig, selection: str | None = None, collections: list[str] | None = None,
    variants: list[str] | None = None,
) -> bool:
    """Run the pipeline's phases (collection → prompts → base model → teacher and student per
    collection × variant → report) on the DagsterInstance of DAGSTER_HOME; stops at a failure."""
    import dagster as dg

    from rr_assets.definitions import PHASES, REPORT_JOB, VARIANT_JOB, build_definitions
    from rr_assets.partitions import collection_partitions, prompt_variant_partitions, variant_key

    defs = build_definitions(config)
    names = collections or [c.name for c in config.collections]
    variant_names = variants or defs.resources["teacher"].variant_names()
    instance = dg.DagsterInstance.get()
    release_runs_of_dead_processes(instance)
    instance.add_dynamic_partitions(collection_partitions.name, names)
    instance.add_dynamic_partitions(prompt_variant_partitions.name, variant_names)
    wanted = dg.AssetSelection.from_string(selection).resolve(defs.resolve_asset_graph()) if selection else None
    partition_keys = {
        VARIANT_JOB: [variant_key(c, v) for c in names for v in variant_names],
        REPORT_JOB: names,
    }
    for phase in PHASES:
        job = defs.resolve_job_def(phase)
        keys = set(job.asset_layer.selected_asset_keys)
        chosen = keys & wanted if wanted is not None else keys
        if not chosen:
            continue
        if phase in partition_keys:
            partitions = partition_keys[phase]
        elif job.partitions_def is None:
            partitions = [None]
        else:
            partitions = variant_names if job.partitions_def == prompt_variant_partitions else names
        for key in partitions:
            result = job.execute_in_process(
                partition_key=key, instance=instance, asset_selection=sorted(chosen), raise_on_error=False,
                tags={RUN_PID_TAG: str(os.getpid()), RUN_HOST_TAG: socket.gethostname()},
            )
            label = f"{phase}[{key}]" if key is not None else phase
            print(f"{label}: {'success' if result.success else 'FAILED'} (dagster run {result.run_id})", flush=True)
            if not result.success:
                return False
    return True


def _print_reports(config: RRConfig) -> None:
    from rr_assets.core.reports import format_table

    for source in config.collections:
        path = Path(config.home) / "reports" / source.name / "metrics.json"
        if path.exists():
            metrics = json.loads(path.read_text())
            print(f"\n{source.name} ({metrics['queries']} evaluation queries)")
            print(format_table(metrics["systems"]))
            print(f"report: {path.parent / 'report.md'}")


def cmd_run(args: argparse.Namespace) -> int:
    config = _activate(args.config)
    ok = materialize(config, args.select, args.collection, args.variant)
    _print_reports(config)
    return 0 if ok else 1


def cmd_demo(args: argparse.Namespace) -> int:
    args.config, args.select, args.collection, args.variant = str(DEMO_CONFIG), None, None, None
    return cmd_run(args)


def cmd_rerank(args: argparse.Namespace) -> int:
    from rr_assets.core.collections import CollectionError
    from rr_assets.core.scoring import StudentReranker

    documents = []
    with open(args.docs, encoding="utf-8") as handle:
        for line_no, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
                documents.append((str(record["_id"]), f"{record.get('title', '')} {record['text']}".strip()))
            except (json.JSONDecodeError, KeyError, TypeError) as exc:
                raise CollectionError(f"{args.docs} line {line_no}: need a JSON object with '_id' and 'text' ({exc})")
    reranker = StudentReranker(args.checkpoint)
    scored = reranker.explain(args.query, documents) if args.explain else reranker.score(args.query, documents)
    ranked = sorted(scored, key=lambda s: -s.score)
    out = [{"rank": i, "doc_id": s.doc_id, "score": round(s.score, 6),
            **({"explanation": s.explanation} if args.explain else {})} for i, s in enumerate(ranked, start=1)]
    print(json.dumps({"query": args.query, "results": out}, indent=2))
    return 0


def cmd_lineage(args: argparse.Namespace) -> int:
    from rr_assets.lineage import checkpoint_lineage, format_lineage

    lineage = checkpoint_lineage(args.checkpoint_dir)
    print(json.dumps(lineage, indent=2) if args.json else format_lineage(lineage))
    return 0


def _default_signals() -> None:
    """A process started from a background shell inherits ignored SIGINT/SIGTERM; `dagster dev`
    would then not stop. Reset both before it starts."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def cmd_ui(args: argparse.Namespace) -> int:
    """Dagster webserver + daemon on 127.0.0.1; Ctrl-C or SIGTERM stops the whole process group."""
    import dagster as dg

    import psutil

    from rr_assets.core.llama_server import stop_process_group
    from rr_assets.partitions import collection_partitions

    config = _activate(args.config)
    dg.DagsterInstance.get().add_dynamic_partitions(collection_partitions.name, [c.name for c in config.collections])
    command = [sys.executable, "-m", "dagster", "dev", "-w", str(PROJECT_ROOT / "workspace.yaml"),
               "-h", "127.0.0.1", "-p", str(args.port)]
    process = subprocess.Popen(command, cwd=PROJECT_ROOT, start_new_session=True, preexec_fn=_default_signals)
    stop = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    while process.poll() is None and not stop.wait(0.5):
        pass
    # Run workers may have left dagster's process group: stop the group, then any descendant left.
    tree = psutil.Process(process.pid).children(recursive=True) if process.poll() is None else []
    stop_process_group(process, grace_s=20)
    for leftover in tree:
        with contextlib.suppress(psutil.NoSuchProcess):
            leftover.kill()
    psutil.wait_procs(tree, timeout=10)
    return 0 if stop.is_set() else process.returncode


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="rr", description="Reasoning rerankers distilled from a teacher LLM.")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("demo", help="run everything on the bundled demo collection").set_defaults(func=cmd_demo)
    run = sub.add_parser("run", help="materialise the pipeline with a config file")
    run.add_argument("-c", "--config", required=True)
    run.add_argument("--select", help="Dagster asset selection, e.g. 'key:bm25_candidates+'")
    run.add_argument("--collection", action="append", help="only this collection (repeatable)")
    run.add_argument("--variant", action="append",
                     help="prompt variant to run (repeatable; a backfill over several variants)")
    run.set_defaults(func=cmd_run)
    rerank = sub.add_parser("rerank", help="rerank documents for a query with a trained checkpoint")
    rerank.add_argument("-c", "--config", help="accepted for symmetry with the other commands; the checkpoint card names all it needs")
    rerank.add_argument("--checkpoint", required=True)
    rerank.add_argument("--query", required=True)
    rerank.add_argument("--docs", required=True, help="JSONL with _id, title, text")
    rerank.add_argument("--explain", action="store_true", help="write an explanation before each score")
    rerank.set_defaults(func=cmd_rerank)
    lineage = sub.add_parser("lineage", help="audit what a checkpoint was built from")
    lineage.add_argument("checkpoint_dir")
    lineage.add_argument("--json", action="store_true", help="machine-readable output")
    lineage.set_defaults(func=cmd_lineage)
    ui = sub.add_parser("ui", help="the Dagster UI on 127.0.0.1")
    ui.add_argument("-c", "--config", default=str(DEMO_CONFIG))
    ui.add_argument("-p", "--port", type=int, default=3000)
    ui.set_defaults(func=cmd_ui)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
