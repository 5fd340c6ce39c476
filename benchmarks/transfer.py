"""A student trained on one collection reranks another collection's evaluation queries (zero-shot
transfer), alone and fused with the first stage, against that first stage on the same queries.

    .venv/bin/python benchmarks/transfer.py --checkpoint .rr/checkpoints/scifact-grounded \\
        -c resources/configs/dl19.yaml [--collection dl19] [--depth 20] [--out FILE]

The target's candidates, splits and qrels come from the warehouse of the config's rr home, so run
`rr run -c CONFIG --select '+key:"first_stage_candidates" or +key:"splits"'` first (the demo,
SciFact and DL19 configs share `.rr`; the selection builds both with what they read). Nothing
is tuned on the target: the fusion weight is the one the checkpoint's own dev slice chose. This is
how a collection with too few judged queries to train on (DL19: 19) gets a student. Prints the
table and writes JSON (default benchmarks/results/transfer-<checkpoint>-to-<collection>.json).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import duckdb
import pandas as pd

from rr_assets.config import load_config
from rr_assets.core.checkpoints import CARD_FILE
from rr_assets.core.compared_systems import FirstStage, FusedReranker, ScoredReranker, evaluate_systems
from rr_assets.core.metrics import nested
from rr_assets.core.reports import results_table, significance
from rr_assets.core.reranker import StudentReranker
from rr_assets.core.warehouse import Warehouse


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", required=True, help="a student checkpoint folder (with card.json)")
    parser.add_argument("-c", "--config", required=True, help="the config whose collection is reranked")
    parser.add_argument("--collection", help="the target collection (default: the config's only one)")
    parser.add_argument("--depth", type=int, default=20, help="first-stage candidates the student reorders")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--out")
    args = parser.parse_args()

    config = load_config(args.config)
    collection = args.collection or config.collections[0].name
    warehouse = Warehouse(Path(config.home) / "warehouse.duckdb")
    params = {"collection": collection, "split": "eval"}
    try:
        candidates = warehouse.query("ranked_candidates", {**params, "depth": 1_000_000, "queries": -1})
    except duckdb.CatalogException:  # the pipeline has not built the splits or candidates yet
        candidates = pd.DataFrame()
    if candidates.empty:
        raise SystemExit(f"{config.home}/warehouse.duckdb has no evaluation candidates of {collection!r}: "
                         f"run `rr run -c {args.config} --select "
                         "'+key:\"first_stage_candidates\" or +key:\"splits\"'` first")
    qrels = nested(warehouse.query("split_qrels", params), "relevance", int)
    card = json.loads((Path(args.checkpoint) / CARD_FILE).read_text())
    top = candidates[candidates["rank"] <= args.depth]
    reranker = StudentReranker.load(args.checkpoint)
    started = time.perf_counter()
    values = reranker.score(list(zip(top["query"], top["document"])), args.batch_size)
    pairs_per_s = len(top) / (time.perf_counter() - started)
    scores = nested(top.assign(student=values), "student")

    source = f"from {card['collection']}"
    weight = card["result"]["fusion_weight"] if card["result"].get("fusion_weight") is not None else 0.5
    results = evaluate_systems(qrels, nested(candidates, "score"), [
        FirstStage("first stage"),
        ScoredReranker(f"student ({source})", rerank_depth=args.depth, pairs_per_s=pairs_per_s, scores=scores),
        FusedReranker(f"student+first_stage ({source}, weight {weight})", rerank_depth=args.depth, scores=scores,
                      weight=weight),
    ])
    print(f"{Path(args.checkpoint).name} on {collection}: {len(qrels)} evaluation queries, "
          f"{reranker.precision.name}\n")
    print("\n".join(results_table(results)))
    out = Path(args.out or Path(__file__).parent / "results" / f"transfer-{Path(args.checkpoint).name}-to-{collection}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({
        "checkpoint": str(args.checkpoint), "trained_on": card["collection"], "prompt_variant": card["prompt_variant"],
        "collection": collection, "queries": len(qrels), "rerank_depth": args.depth, "fusion_weight": weight,
        "precision": reranker.precision.name,
        "systems": {r.name: {**r.metrics, "pairs_per_s": r.pairs_per_s, **significance(r)} for r in results},
    }, indent=2))
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
