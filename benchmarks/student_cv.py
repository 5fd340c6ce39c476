"""Does the student recipe generalise beyond its dev slice? K-fold cross-validation over a
collection's training queries: each fold's student trains on the other folds (checkpoint and
fusion weight chosen on the dev slice, as the pipeline does) and reranks the held-out fold. The
held-out folds together score every training query once, a larger sample than the dev slice (6
queries on the demo), and evaluation queries are never touched: settings can be chosen here.

    .venv/bin/python benchmarks/student_cv.py -c resources/configs/demo.yaml \\
        [--variant grounded] [--folds 3] [--set learning_rate=3e-4 ...] [--out FILE]

Reads the training tables of the config's rr home (run `rr demo` or `rr run -c CONFIG` first).
Prints the table (first stage, student, fused, pooled over the held-out folds, with paired tests)
and writes JSON (default benchmarks/results/student_cv-<collection>.json).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import tempfile
import time
from dataclasses import asdict, fields, replace
from pathlib import Path

import duckdb

from rr_assets.config import load_config
from rr_assets.core.compared_systems import FirstStage, ScoredReranker, evaluate_systems
from rr_assets.core.fusion import fuse
from rr_assets.core.metrics import nested
from rr_assets.core.prompts import load_variant
from rr_assets.core.reports import results_table, significance
from rr_assets.core.reranker import StudentReranker
from rr_assets.core.settings import StudentSettings
from rr_assets.core.student_data import dev_set, reasoning_targets, training_examples
from rr_assets.core.student_model import choose_precision
from rr_assets.core.training import StudentTrainer
from rr_assets.core.warehouse import Warehouse
from rr_assets.resources import StudentBase


def overridden(settings: StudentSettings, assignments: list[str]) -> StudentSettings:
    """The settings with `key=value` assignments applied, each value parsed as its field's type."""
    types = {f.name: type(getattr(settings, f.name)) for f in fields(settings)}
    changes = {}
    for assignment in assignments:
        key, _, value = assignment.partition("=")
        if key not in types:
            raise SystemExit(f"--set {assignment}: no student setting {key!r} (see `rr settings`)")
        changes[key] = tuple(value.split(",")) if types[key] is tuple else types[key](value)
    return replace(settings, **changes)


def folds_of(query_ids: set[str], folds: int) -> list[set[str]]:
    """A stable assignment of queries to folds (by the md5 of the id)."""
    ordered = sorted(query_ids, key=lambda q: hashlib.md5(q.encode()).hexdigest())
    return [set(ordered[k::folds]) for k in range(folds)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-c", "--config", required=True)
    parser.add_argument("--collection", help="default: the config's first collection")
    parser.add_argument("--variant", default="grounded")
    parser.add_argument("--folds", type=int, default=3)
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="student settings to override")
    parser.add_argument("--out")
    args = parser.parse_args()

    config = load_config(args.config)
    collection = args.collection or config.collections[0].name
    settings = overridden(config.student, args.set)
    variant = load_variant(config.prompts_dir, args.variant)
    warehouse = Warehouse(Path(config.home) / "warehouse.duckdb")
    where = {"collection": collection, "prompt_variant": args.variant}
    try:
        examples = training_examples(warehouse, where, settings.max_train_queries)
    except duckdb.CatalogException:  # the pipeline has not built the training tables yet
        examples = []
    if not examples:
        raise SystemExit(f"{config.home}/warehouse.duckdb has no {args.variant} training table for {collection!r}: "
                         f"run the pipeline first (`rr run -c {args.config}`)")
    preferences, orders = reasoning_targets(warehouse, where)
    dev = dev_set(warehouse, collection, settings)
    params = {"collection": collection, "split": "train"}
    candidates = warehouse.query("ranked_candidates", {**params, "depth": 1_000_000, "queries": -1})
    qrels = nested(warehouse.query("split_qrels", params), "relevance", int)
    base = StudentBase(settings, config.model_cache).prepare()
    precision = choose_precision(settings.precision)

    first_stage = nested(candidates, "score")
    scores, fused, runs, started = {}, {}, [], time.monotonic()
    for k, held_out in enumerate(folds_of({e.query_id for e in examples}, args.folds)):
        top = candidates[candidates["query_id"].isin(held_out) & (candidates["rank"] <= settings.rerank_depth)]
        with tempfile.TemporaryDirectory(prefix=f"rr-cv-{k}-") as checkpoint:
            result = StudentTrainer(base, settings, variant.labels, precision).train(
                [e for e in examples if e.query_id not in held_out], checkpoint, dev, preferences, orders)
            values = StudentReranker.load(checkpoint, precision).score(list(zip(top["query"], top["document"])),
                                                                  settings.score_batch_size)
        fold_scores = nested(top.assign(student=values), "student")
        weight = result.fusion_weight if result.fusion_weight is not None else 0.5
        scores.update(fold_scores)
        fused.update(fuse({q: first_stage[q] for q in fold_scores}, fold_scores, weight))
        runs.append({"held_out_queries": len(held_out), "optimizer_steps": result.optimizer_steps,
                     "best_step": result.best_step, "best_dev_nDCG@10": result.best_dev_ndcg,
                     "first_stage_dev_nDCG@10": result.first_stage_dev_ndcg, "fusion_weight": result.fusion_weight,
                     "dev_curve": [(d["step"], round(d["dev_nDCG@10"], 4)) for d in result.dev_curve]})
        print(f"fold {k + 1}/{args.folds}: {runs[-1]}", flush=True)

    scope = {q: qrels[q] for q in scores if q in qrels}  # a teacher-labelled variant may train on unjudged queries
    results = evaluate_systems(scope, {q: first_stage[q] for q in scope}, [
        FirstStage("first stage"),
        ScoredReranker("student", rerank_depth=settings.rerank_depth, scores=scores),
        ScoredReranker("student+first_stage (each fold's dev weight)", rerank_depth=settings.rerank_depth, scores=fused),
    ])
    print(f"\n{collection}/{args.variant}: {len(scope)} judged training queries in {args.folds} held-out folds, "
          f"{precision.name}, {time.monotonic() - started:.0f} s\n")
    print("\n".join(results_table(results)))
    out = Path(args.out or Path(__file__).parent / "results" / f"student_cv-{collection}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({
        "collection": collection, "prompt_variant": args.variant, "folds": args.folds, "queries": len(scope),
        "overrides": args.set, "settings": asdict(settings), "precision": precision.name, "fold_runs": runs,
        "systems": {r.name: {**r.metrics, "queries": r.queries, **significance(r)} for r in results},
    }, indent=2))
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
