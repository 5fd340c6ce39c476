"""The `rr` command line: demo, run, rerank, lineage, settings, ui."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import warnings
from dataclasses import replace
from pathlib import Path

from rr_assets.config import DEMO_CONFIG, PROJECT_ROOT, ConfigError, RRConfig, load_config

# Concurrency pools for runs the UI launches: one step at a time in each pool (`rr run` sets the
# teacher pool's limit to its endpoint count).
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


def materialize(
    config: RRConfig, selection: str | None = None, collections: list[str] | None = None,
    variants: list[str] | None = None, force: bool = False, dry_run: bool = False, verbose: bool = False,
) -> bool:
    """Bring the graph up to date on the DagsterInstance of DAGSTER_HOME: observe the collections'
    and prompts' files, then materialise what is missing or stale (everything with `force`), in
    dependency order; `dry_run` prints what would run and why. Stops at a failure."""
    import dagster as dg

    from rr_assets.core.llama_server import reap_stale_servers
    from rr_assets.definitions import build_definitions
    from rr_assets.partitions import collection_partitions, prompt_variant_partitions
    from rr_assets.refresh import Refresher, release_runs_of_dead_processes

    defs = build_definitions(config)
    names = collections or [c.name for c in config.collections]
    variant_names = variants or defs.resources["teacher"].variant_names()
    instance = dg.DagsterInstance.get()
    release_runs_of_dead_processes(instance, say=lambda line: print(line, flush=True))
    for pid in reap_stale_servers(Path(config.home) / "servers"):
        print(f"stopped a llama.cpp server (pid {pid}) that a dead rr process left running", flush=True)
    # The pools bound what runs side by side, whatever the instance's dagster.yaml says: DuckDB takes
    # one writer, two trainings on one machine help neither, and more teacher endpoints (not more
    # embedded servers, which share this machine's cores) take more teacher steps at once.
    for pool, limit in (("warehouse", 1), ("student", 1), ("teacher", max(1, len(defs.resources["teacher"].urls())))):
        instance.event_log_storage.set_concurrency_slots(pool, limit)
    instance.add_dynamic_partitions(collection_partitions.name, names)
    instance.add_dynamic_partitions(prompt_variant_partitions.name, variant_names)
    wanted = set(dg.AssetSelection.from_string(selection).resolve(defs.resolve_asset_graph())) if selection else None
    refresher = Refresher(defs, instance, names, variant_names, wanted, say=lambda line: print(line, flush=True),
                          verbose=verbose, execution=config.execution, config_file=config.source_file)
    refresher.observe_sources()
    if dry_run:
        steps = refresher.plan(force)
        for step in steps:
            print(f"{step.label}: {step.reason}", flush=True)
        print(f"{len(steps)} steps would run" if steps else "everything is up to date", flush=True)
        return True
    return refresher.run(force)


def _print_reports(config: RRConfig) -> None:
    from rr_assets.core.reports import format_table

    for source in config.collections:
        path = Path(config.home) / "reports" / source.name / "metrics.json"
        if path.exists():
            metrics = json.loads(path.read_text())
            print(f"\n{source.name} ({metrics['queries']} evaluation queries; p and W/T/L against "
                  f"{metrics.get('first_stage', 'the first stage')} on the same queries)")
            print(format_table(metrics["systems"], metrics.get("details")))
            print(f"report: {path.parent / 'report.md'}")


def cmd_run(args: argparse.Namespace) -> int:
    """Exit 0 when everything selected is up to date, 1 on a failure, 130 when interrupted (SIGINT
    or SIGTERM): a step under way ends FAILED in Dagster with its pool slots freed."""
    config = _activate(args.config)
    if args.submit_to:
        config = replace(config, execution=replace(config.execution, submit_to=args.submit_to))
    # SIGINT raises KeyboardInterrupt even where rr inherited it ignored (a command started with `&` by a
    # non-interactive shell), and SIGTERM stops like it, between steps too.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        ok = materialize(config, args.select, args.collection, args.variant, args.force, args.dry_run, args.verbose)
    except KeyboardInterrupt:
        print("interrupted", flush=True)
        sys.stderr.flush()
        # Every run is marked and its slots are freed: exit now. The interpreter's own shutdown
        # took 4-9 s here after runs side by side (in native code: no Python frame was running).
        os._exit(130)
    if not args.dry_run:
        _print_reports(config)
    return 0 if ok else 1


def cmd_demo(args: argparse.Namespace) -> int:
    args.config, args.select, args.collection, args.variant = str(DEMO_CONFIG), None, None, None
    args.force, args.dry_run, args.verbose, args.submit_to = False, False, False, None
    return cmd_run(args)


def cmd_settings(args: argparse.Namespace) -> int:
    """Every config section and key, with its default and meaning."""
    from rr_assets.config import SECTIONS
    from rr_assets.core.settings import help_lines

    print("collections.<name>: path (BEIR folder), eval_split, train_split, dev_split, first_stage_run, first_stage_name,\n"
          "  teacher_answers (files an `imported` prompt variant reads), student_from (rerank with that collection's\n"
          "  student), dev_from (select this collection's student on that collection's dev queries)")
    for name, cls in SECTIONS.items():
        print(f"\n{name}:")
        for line in help_lines(cls):
            print(f"  {line}")
    return 0


def resolve_checkpoint(model: str, config: RRConfig) -> Path:
    """A checkpoint folder, or a registered model (`models:/<name>/<version>` or `models:/<name>@<alias>`)
    downloaded from the MLflow registry of the config."""
    if not model.startswith("models:/"):
        return Path(model)
    from rr_assets.core.registry import StudentRegistry

    folder, _ = StudentRegistry(config.mlflow_tracking_uri).download(model, config.model_cache)
    return folder


def cmd_rerank(args: argparse.Namespace) -> int:
    from rr_assets.core.collections import CollectionError
    from rr_assets.core.reranker import StudentReranker

    documents = []
    with open(args.docs, encoding="utf-8") as handle:
        for line_no, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
                documents.append((str(record["_id"]), f"{record.get('title', '')} {record['text']}".strip()))
            except (json.JSONDecodeError, KeyError, TypeError) as exc:
                raise CollectionError(f"{args.docs} line {line_no}: need a JSON object with '_id' and 'text' ({exc})") from exc
    reranker = StudentReranker.load(resolve_checkpoint(args.model, load_config(args.config)))
    pairs = [(args.query, text) for _, text in documents]
    if args.mode == "explain":
        scored = [(doc_id, score, explanation) for (doc_id, _), (explanation, score) in zip(documents, reranker.explain(pairs))]
    else:
        scored = [(doc_id, score, None) for (doc_id, _), score in zip(documents, reranker.score(pairs))]
    ranked = sorted(scored, key=lambda s: -s[1])
    out = [{"rank": i, "doc_id": doc_id, "score": round(score, 6), **({"explanation": e} if e is not None else {})}
           for i, (doc_id, score, e) in enumerate(ranked, start=1)]
    print(json.dumps({"query": args.query, "mode": args.mode, "results": out}, indent=2))
    return 0


def cmd_lineage(args: argparse.Namespace) -> int:
    from rr_assets.lineage import checkpoint_lineage, format_lineage

    lineage = checkpoint_lineage(resolve_checkpoint(args.checkpoint, load_config(args.config)))
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
    run.add_argument("--select", help="Dagster asset selection, e.g. 'key:first_stage_candidates+'")
    run.add_argument("--collection", action="append", help="only this collection (repeatable)")
    run.add_argument("--variant", action="append",
                     help="prompt variant to run (repeatable; a backfill over several variants)")
    run.add_argument("--force", action="store_true", help="recompute everything selected, stale or not")
    run.add_argument("--dry-run", action="store_true", help="print what would run and why, and run nothing")
    run.add_argument("--submit-to", metavar="URL",
                     help="submit the runs to this Dagster webserver (e.g. `rr ui`'s http://127.0.0.1:3000), whose run "
                          "coordinator and launcher start them as a launch from the UI; overrides execution.submit_to")
    run.add_argument("-v", "--verbose", action="store_true",
                     help="print Dagster's event stream (DEBUG) too; it is always in the run's log in the UI")
    run.set_defaults(func=cmd_run)
    rerank = sub.add_parser("rerank", help="rerank documents for a query with a trained student")
    rerank.add_argument("--model", "--checkpoint", dest="model", required=True,
                        help="a checkpoint folder, or models:/<name>/<version> or models:/<name>@<alias>")
    rerank.add_argument("-c", "--config", default=str(DEMO_CONFIG), help="whose MLflow registry a models:/ URI names")
    rerank.add_argument("--query", required=True)
    rerank.add_argument("--docs", required=True, help="JSONL with _id, title, text")
    rerank.add_argument("--mode", choices=("score", "explain"), default="score",
                        help="score: one forward pass; explain: write an explanation, then score (InteRank)")
    rerank.set_defaults(func=cmd_rerank)
    lineage = sub.add_parser("lineage", help="audit what a checkpoint was built from")
    lineage.add_argument("checkpoint", help="a checkpoint folder, or models:/<name>/<version> or models:/<name>@<alias>")
    lineage.add_argument("-c", "--config", default=str(DEMO_CONFIG), help="whose MLflow registry a models:/ URI names")
    lineage.add_argument("--json", action="store_true", help="machine-readable output")
    lineage.set_defaults(func=cmd_lineage)
    settings = sub.add_parser("settings", help="every config key, its default and what it does")
    settings.set_defaults(func=cmd_settings)
    ui = sub.add_parser("ui", help="the Dagster UI on 127.0.0.1")
    ui.add_argument("-c", "--config", default=str(DEMO_CONFIG))
    ui.add_argument("-p", "--port", type=int, default=3000)
    ui.set_defaults(func=cmd_ui)
    args = parser.parse_args(argv)
    if not getattr(args, "verbose", False):  # rr's use of Dagster's beta APIs is not the user's business
        warnings.filterwarnings("ignore", message=r".* is currently in beta")
    try:
        return args.func(args)
    except (ConfigError, FileNotFoundError) as exc:  # a user's mistake (a config, a path): one line, no traceback
        print(f"rr: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
