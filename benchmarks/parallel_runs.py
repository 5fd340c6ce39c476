"""`rr run` under three execution settings: wall time, step time, how much of it overlapped, and
whether every mode materialised the same data versions.

    .venv/bin/python benchmarks/parallel_runs.py [--copies 3] [--scifact] [--repeats 1]
                                                [--demo-two-variants] [--out FILE]

Modes (the config's `execution` section):
  sequential    executor in_process, parallel_runs 1: every run in the rr process, one after another
  parallel      executor in_process, parallel_runs 2: the partitions of one asset side by side, each
                run in a child process, within the asset's pool
  multiprocess  executor multiprocess, parallel_runs 2: as parallel, and each step of a run in a
                process of its own

Workload `retrieval` (default): the retrieval stages (corpus, queries, qrels, bm25_index,
first_stage_candidates) of the demo collection copied under --copies names, plus SciFact from
../shared/data with --scifact (read in place, never copied). Workload `demo-two-variants` (with
--demo-two-variants; long: the embedded llama.cpp teacher and student training, 20+ minutes per
mode on 2 cores): the whole demo config with the prompt variants `default` and `chat-json`.

Each mode runs `.venv/bin/rr run -c <config>` as a subprocess with RR_HOME and DAGSTER_HOME in a
fresh temporary folder; the numbers come from that instance's event log (STEP_START to
STEP_SUCCESS or STEP_FAILURE per step, run records per run) and its materialisations' data
versions (tag dagster/data_version of the latest materialisation of each asset partition).
Prints a table and a conclusion, writes JSON (default benchmarks/results/parallel_runs-<machine>.json).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
RR = ROOT / ".venv" / "bin" / "rr"
DEMO_CONFIG = ROOT / "resources" / "configs" / "demo.yaml"
DEMO_COLLECTION = ROOT / "resources" / "collections" / "demo"
SCIFACT = ROOT.parent / "shared" / "data" / "scifact"
RETRIEVAL = "key:corpus or key:queries or key:qrels or key:bm25_index or key:first_stage_candidates"
VARIANTS = ("default", "chat-json")
MODES = {
    "sequential": {"executor": "in_process", "parallel_runs": 1},
    "parallel": {"executor": "in_process", "parallel_runs": 2},
    "multiprocess": {"executor": "multiprocess", "parallel_runs": 2},
}
NAMES = ("north", "south", "east", "west", "centre", "up", "down", "left")


def cpu_name() -> str:
    info = Path("/proc/cpuinfo")
    for line in info.read_text().splitlines() if info.exists() else []:
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "cpu"


def machine_tag() -> str:
    """A file-name tag for the machine, e.g. `cpu-amd-epyc` (as student_speed.py names its files)."""
    words = re.sub(r"[^a-z0-9]+", "-", re.sub(r"\((r|tm)\)|\(.*$", "", cpu_name().lower())).strip("-")
    return "-".join(["cpu", *words.split("-")[:2]])


def retrieval_config(copies: int, scifact: bool) -> dict:
    demo = yaml.safe_load(DEMO_CONFIG.read_text())
    collections = {name: {"path": str(DEMO_COLLECTION), "eval_split": "test"} for name in NAMES[:copies]}
    if scifact:
        collections["scifact"] = {"path": str(SCIFACT), "eval_split": "test", "train_split": "train"}
    return {"collections": collections, "retrieval": demo["retrieval"], "splits": demo["splits"]}


def demo_two_variants_config() -> dict:
    config = yaml.safe_load(DEMO_CONFIG.read_text())
    config["collections"]["demo"]["path"] = str(DEMO_COLLECTION)
    config["teacher"]["prompt_variants"] = list(VARIANTS)
    return config


def run_mode(workload: dict, mode: str, root: Path) -> dict:
    """One `rr run` in a fresh home; returns its wall time, exit status and the log's tail."""
    root.mkdir(parents=True)
    config = {**workload["config"], "home": str(root / "home"), "execution": MODES[mode],
              "mlflow_tracking_uri": f"sqlite:///{root / 'mlruns' / 'mlflow.db'}"}
    (root / "mlruns").mkdir()
    path = root / "config.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    env = {k: v for k, v in os.environ.items() if k not in ("RR_CONFIG", "MLFLOW_TRACKING_URI")}
    env.update(RR_HOME=str(root / "home"), DAGSTER_HOME=str(root / "dagster"))
    command = [str(RR), "run", "-c", str(path)] + (["--select", workload["select"]] if workload["select"] else [])
    load = os.getloadavg()[0]
    started_wall, started = time.time(), time.perf_counter()
    with open(root / "rr.log", "w") as log:
        code = subprocess.run(command, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=root).returncode
    seconds = time.perf_counter() - started
    tail = (root / "rr.log").read_text().splitlines()[-15:]
    if code != 0:
        print(f"{mode}: rr run exited {code}; last lines:\n  " + "\n  ".join(tail), flush=True)
    return {"wall_s": seconds, "exit_code": code, "launched_at": started_wall, "load_average_before": load,
            "log_tail": tail, "dagster_home": str(root / "dagster")}


def steps_of(instance) -> list[dict]:
    """Every step of every run: its key, partition, start, end, pid and outcome."""
    import dagster as dg

    steps = []
    for record in instance.get_run_records(dg.RunsFilter()):
        run = record.dagster_run
        open_steps: dict[str, tuple[float, int]] = {}
        for entry in instance.all_logs(run.run_id):
            event = entry.dagster_event
            if event is None or event.step_key is None:
                continue
            if event.event_type_value == "STEP_START":
                open_steps[event.step_key] = (entry.timestamp, event.pid)
            elif event.event_type_value in ("STEP_SUCCESS", "STEP_FAILURE") and event.step_key in open_steps:
                start, pid = open_steps.pop(event.step_key)
                steps.append({"step": event.step_key, "partition": run.tags.get("dagster/partition", ""),
                              "run_id": run.run_id, "start": start, "end": entry.timestamp, "pid": pid,
                              "run_start": record.start_time, "run_end": record.end_time,
                              "ok": event.event_type_value == "STEP_SUCCESS"})
    return sorted(steps, key=lambda s: s["start"])


def overlap_seconds(spans: list[tuple[float, float]]) -> float:
    """Seconds during which at least two of the spans ran."""
    edges = sorted([(start, 1) for start, _ in spans] + [(end, -1) for _, end in spans], key=lambda e: (e[0], e[1]))
    busy, last, total = 0, None, 0.0
    for at, change in edges:
        if busy >= 2 and last is not None:
            total += at - last
        busy, last = busy + change, at
    return total


def data_versions(instance) -> dict[str, dict[str, str]]:
    """The data version of the latest materialisation of every asset partition."""
    import dagster as dg

    versions: dict[str, dict[str, str]] = {}
    for key in instance.get_asset_keys():
        records = instance.fetch_materializations(dg.AssetRecordsFilter(asset_key=key), limit=10_000).records
        for record in records:  # newest first
            partition = record.partition_key or ""
            versions.setdefault(key.to_user_string(), {}).setdefault(
                partition, record.asset_materialization.tags.get("dagster/data_version", ""))
    return {k: dict(sorted(v.items())) for k, v in sorted(versions.items())}


def analyse(run: dict) -> dict:
    """Step time, overlap and per-step partitions that overlapped, from the mode's event log."""
    import dagster as dg

    instance = dg.DagsterInstance.from_config(run["dagster_home"])
    steps = steps_of(instance)
    by_step: dict[str, list[dict]] = {}
    for step in steps:
        by_step.setdefault(step["step"], []).append(step)
    assets, previous_end = {}, steps[0]["run_start"] if steps else run["launched_at"]
    # The refresh runs one asset's partitions at a time, in dependency order: an asset's share of the
    # timeline is from the previous asset's last run end to its own (planning and child start included).
    for name, group in sorted(by_step.items(), key=lambda item: max(s["run_end"] for s in item[1])):
        end = max(s["run_end"] for s in group)
        overlapped = {s["partition"] for s in group for o in group
                      if o is not s and s["start"] < o["end"] and o["start"] < s["end"]}
        assets[name] = {"partitions": len(group), "overlapped_partitions": len(overlapped),
                        "step_s": round(sum(s["end"] - s["start"] for s in group), 2),
                        "elapsed_s": round(end - previous_end, 2), "pids": len({s["pid"] for s in group}),
                        # before the first run began: planning, and a child process's start and imports
                        "launch_s": round(min(s["run_start"] for s in group) - previous_end, 2),
                        # run start to STEP_START, on average: the multiprocess executor's step process
                        "step_launch_s": round(sum(s["start"] - s["run_start"] for s in group) / len(group), 2)}
        previous_end = end
    instance.dispose()
    return {
        "wall_s": round(run["wall_s"], 2), "exit_code": run["exit_code"],
        "load_average_before": round(run["load_average_before"], 2),
        "runs": len({s["run_id"] for s in steps}), "steps": len(steps), "failed_steps": sum(not s["ok"] for s in steps),
        "step_time_s": round(sum(s["end"] - s["start"] for s in steps), 2),
        "overlap_s": round(overlap_seconds([(s["start"], s["end"]) for s in steps]), 2),
        "startup_s": round(steps[0]["run_start"] - run["launched_at"], 2) if steps else None,
        "assets": assets, "data_versions": data_versions(instance),
    }


def overlappable(config: dict, selection: str | None) -> dict:
    """Which of the workload's steps can run side by side at all: partitioned assets with more than
    one partition and no pool, or in a pool whose limit (as rr run sets it) is above 1."""
    import dagster as dg

    from rr_assets.config import load_config
    from rr_assets.definitions import build_definitions

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "config.yaml"
        path.write_text(yaml.safe_dump({**config, "home": tmp}))
        defs = build_definitions(load_config(path))
    limits = {"warehouse": 1, "student": 1, "teacher": max(1, len(defs.resources["teacher"].urls()))}
    graph = defs.resolve_asset_graph()
    wanted = set(dg.AssetSelection.from_string(selection).resolve(graph)) if selection else None
    collections = len(config["collections"])
    variants = len(defs.resources["teacher"].variant_names())
    units, side_by_side = set(), []
    for node in graph.asset_nodes:
        if not node.is_materializable or (wanted is not None and node.key not in wanted):
            continue
        assets_def = defs.get_assets_def(node.key)
        name = assets_def.op.name
        if name in units:
            continue
        units.add(name)
        partitions = node.partitions_def
        count = 0 if partitions is None else collections * (
            variants if isinstance(partitions, dg.MultiPartitionsDefinition) else 1)
        limit = limits.get(assets_def.op.pool, 1) if assets_def.op.pool else count
        if count > 1 and limit > 1:
            side_by_side.append(f"{name} ({count} partitions, " + (f"pool {assets_def.op.pool} of {limit})"
                                                                   if assets_def.op.pool else "no pool)"))
    return {"steps_per_run": len(units), "can_overlap": side_by_side, "pool_limits": limits}


def median_row(rows: list[dict]) -> dict:
    """The repeat with the median wall time, the faster of the middle two for an even count (the data
    versions are compared across all repeats)."""
    return sorted(rows, key=lambda r: r["wall_s"])[(len(rows) - 1) // 2]


def measure(name: str, workload: dict, repeats: int, root: Path) -> dict:
    modes: dict[str, list[dict]] = {mode: [] for mode in MODES}
    for repeat in range(repeats):
        order = list(MODES) if repeat % 2 == 0 else list(reversed(MODES))  # alternate who runs with a cold cache
        for mode in order:
            print(f"[{name}] {mode} (repeat {repeat + 1} of {repeats}) ...", flush=True)
            result = analyse(run_mode(workload, mode, root / name / f"{mode}-{repeat}"))
            modes[mode].append(result)
            print(f"[{name}] {mode}: {result['wall_s']} s wall, {result['step_time_s']} s of steps, "
                  f"{result['overlap_s']} s overlapped, exit {result['exit_code']}", flush=True)
    reference = modes["sequential"][0]["data_versions"]
    differences = []
    for mode, rows in modes.items():
        for number, row in enumerate(rows):
            for asset in sorted(set(reference) | set(row["data_versions"])):
                ours, theirs = reference.get(asset, {}), row["data_versions"].get(asset, {})
                for partition in sorted(set(ours) | set(theirs)):
                    if ours.get(partition) != theirs.get(partition):
                        differences.append(f"{mode} repeat {number + 1}: {asset}[{partition}] "
                                           f"{theirs.get(partition)} != {ours.get(partition)} (sequential)")
    summary = {}
    for mode, rows in modes.items():
        row = median_row(rows)
        summary[mode] = {k: v for k, v in row.items() if k != "data_versions"}
        summary[mode]["wall_s_all_repeats"] = [r["wall_s"] for r in rows]
    return {"config": workload["config"], "select": workload["select"], "repeats": repeats,
            "execution": MODES, "modes": summary, "side_by_side": workload["side_by_side"],
            "data_versions_identical": not differences, "data_version_differences": differences[:50],
            "asset_partitions_compared": sum(len(v) for v in reference.values()),
            "data_versions": reference}


def print_table(name: str, result: dict) -> None:
    modes = result["modes"]
    base = modes["sequential"]["wall_s"]
    print(f"\n{name}: wall time and step time per mode (seconds; median of {result['repeats']})")
    print(f"{'mode':<13} {'executor':<12} {'runs':>4} {'wall':>7} {'vs seq':>7} {'steps':>7} {'overlap':>7} "
          f"{'startup':>7}  overlapped partitions")
    for mode, row in modes.items():
        overlapped = ", ".join(f"{a} {s['overlapped_partitions']}/{s['partitions']}" for a, s in row["assets"].items()
                               if s["overlapped_partitions"]) or "none"
        print(f"{mode:<13} {MODES[mode]['executor']:<12} {row['runs']:>4} {row['wall_s']:>7} "
              f"{base / row['wall_s']:>6.2f}x {row['step_time_s']:>7} {row['overlap_s']:>7} {row['startup_s']:>7}  {overlapped}")
    assets = list(modes["sequential"]["assets"])
    print("\nper asset, seconds: elapsed (from the previous asset's last run end to its own last run end) = "
          "launch (to its first run's start) + runs; step = the sum of its steps' STEP_START to STEP_SUCCESS")
    print(f"{'asset':<24}" + "".join(f" {mode + ' elapsed/launch/step':>34}" for mode in modes))
    for asset in assets:
        cells = []
        for row in modes.values():
            a = row["assets"].get(asset)
            cells.append(f"{a['elapsed_s']} / {a['launch_s']} / {a['step_s']}" if a else "-")
        print(f"{asset:<24}" + "".join(f" {c:>34}" for c in cells))
    print(f"data versions identical across modes ({result['asset_partitions_compared']} asset partitions): "
          f"{'yes' if result['data_versions_identical'] else 'NO'}")
    for line in result["data_version_differences"][:10]:
        print(f"  {line}")


def conclusion(name: str, result: dict) -> str:
    modes = result["modes"]
    seq = modes["sequential"]
    parts = []
    for mode in ("parallel", "multiprocess"):
        row = modes[mode]
        saved = seq["wall_s"] - row["wall_s"]
        parts.append(f"{mode} ({MODES[mode]['executor']} executor, parallel_runs {MODES[mode]['parallel_runs']}) "
                     f"took {row['wall_s']} s against {seq['wall_s']} s sequential, "
                     f"{'saving' if saved >= 0 else 'losing'} {abs(saved):.1f} s ({abs(saved) / seq['wall_s']:.0%})")
    text = f"{name}: " + "; ".join(parts) + "."
    for mode in ("parallel", "multiprocess"):
        row = modes[mode]
        gains = []
        for asset, a in row["assets"].items():
            s = seq["assets"].get(asset)
            if s and a["overlapped_partitions"]:
                gains.append(f"{asset} took {a['elapsed_s']} s against {s['elapsed_s']} s "
                             f"({a['overlapped_partitions']} of {a['partitions']} partitions overlapped)")
        rest = sum(a["elapsed_s"] - seq["assets"].get(k, a)["elapsed_s"] for k, a in row["assets"].items()
                   if not a["overlapped_partitions"])
        text += (f" Under {mode}, " + ("; ".join(gains) or "no partitions overlapped")
                 + f", and the assets that did not overlap took {rest:+.1f} s against sequential"
                 f" (step time in all {row['step_time_s']} s against {seq['step_time_s']} s).")
    parallel, multi = modes["parallel"]["assets"], modes["multiprocess"]["assets"]
    children = [a for a in parallel.values() if a["pids"] > 1 or a["overlapped_partitions"]]
    if children:
        launch = max(a["launch_s"] for a in children)
        calm = max(a["launch_s"] for name, a in seq["assets"].items() if name in parallel)
        text += (f" Why: under parallel, the first runs of a side-by-side asset began {launch} s after the asset"
                 f" before it ended (at most {calm} s in the rr process): a child process imports rr, Dagster and"
                 f" torch and builds the definitions before its run starts; side by side on 2 cores pays only where"
                 f" one partition's step takes well over that start.")
        if "bm25_index" in parallel:
            text += (" Each child also starts a JVM of its own for Lucene, and the rr process starts one again for"
                     " first_stage_candidates: sequentially the first bm25_index partition started the only one.")
    waits = [a["step_launch_s"] for a in multi.values() if a["partitions"] and a["step_s"] > 0]
    if waits:
        text += (f" The multiprocess executor adds up to {max(waits)} s before each step (run start to STEP_START,"
                 f" at most {max(a['step_launch_s'] for a in seq['assets'].values())} s in process): every step"
                 f" gets a process of its own, with the same imports and its own JVM.")
    side = result["side_by_side"]
    text += (f" Of the {side['steps_per_run']} steps per partition, only "
             + (", ".join(side["can_overlap"]) or "none") + " can run side by side; the pools (warehouse "
             f"{side['pool_limits']['warehouse']}, student {side['pool_limits']['student']}, teacher "
             f"{side['pool_limits']['teacher']}) serialise the rest.")
    text += (" The data versions were identical in every mode." if result["data_versions_identical"]
             else f" The data versions DIFFERED: {len(result['data_version_differences'])} asset partitions.")
    return text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--copies", type=int, default=3, help="copies of the demo collection (retrieval workload)")
    parser.add_argument("--scifact", action="store_true", help="add SciFact (read from ../shared/data/scifact)")
    parser.add_argument("--repeats", type=int, default=1, help="runs per mode; the tables show the median one")
    parser.add_argument("--demo-two-variants", action="store_true",
                        help="also the whole demo with prompt variants default and chat-json (20+ minutes per mode)")
    parser.add_argument("--keep", help="keep the homes and logs in this folder (default: a temporary folder)")
    parser.add_argument("--out")
    args = parser.parse_args()
    warnings.filterwarnings("ignore", message=".*is currently in beta")
    assert 1 <= args.copies <= len(NAMES)
    suffix = "-scifact" if args.scifact else ""
    args.out = args.out or str(Path(__file__).parent / "results" / f"parallel_runs-{machine_tag()}{suffix}.json")

    workloads = {"retrieval": {"config": retrieval_config(args.copies, args.scifact), "select": RETRIEVAL}}
    if args.demo_two_variants:
        workloads["demo-two-variants"] = {"config": demo_two_variants_config(), "select": None}
    for workload in workloads.values():
        workload["side_by_side"] = overlappable(workload["config"], workload["select"])
    demo_side = overlappable(demo_two_variants_config(), None)
    out = {"cpu": cpu_name(), "cpu_count": os.cpu_count(), "cores_usable": len(os.sched_getaffinity(0)),
           "python": sys.version.split()[0], "started": time.strftime("%Y-%m-%d %H:%M:%S"), "workloads": {}}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(args.keep) if args.keep else Path(tmp)
        for name, workload in workloads.items():
            out["workloads"][name] = measure(name, workload, args.repeats, root)
    if not args.demo_two_variants:
        out["workloads"]["demo-two-variants"] = {
            "result": "not run here (pass --demo-two-variants; 20+ minutes per mode on 2 cores)",
            "side_by_side": demo_side}
    for name, result in out["workloads"].items():
        if "modes" in result:
            print_table(name, result)
            result["conclusion"] = conclusion(name, result)
            print(f"\n{result['conclusion']}")
    if not args.demo_two_variants:
        print(f"\ndemo-two-variants: not run. Of its {demo_side['steps_per_run']} steps per partition, "
              + (", ".join(demo_side["can_overlap"]) or "none")
              + " can run side by side (one collection; teacher with one endpoint), so parallel_runs cannot shorten it.")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
