"""Which adapter should the student train? Each candidate trains for the same wall-clock budget on
the training table that the pipeline built (a config's rr home; by default SciFact's `grounded`
variant: qrels positives, unjudged BM25 negatives) and is scored on the pipeline's own dev slice;
evaluation queries are never touched. The winner goes into the config.

    .venv/bin/python benchmarks/student_sweep.py [-c resources/configs/scifact.yaml] [--variant grounded]
        [--minutes 10] [--doc-words 80] [--candidate NAME ...]

Run the pipeline up to the training tables first (`rr run -c CONFIG`). Prints a table and writes
JSON (default benchmarks/results/student_sweep.json).
"""

from __future__ import annotations

import argparse
import json
import tempfile
from dataclasses import asdict, replace
from pathlib import Path

import duckdb

from rr_assets.config import RESOURCES_DIR, load_config
from rr_assets.core.prompts import load_variant
from rr_assets.core.student_data import dev_set, training_examples
from rr_assets.core.student_model import choose_precision
from rr_assets.core.training import StudentTrainer
from rr_assets.core.warehouse import Warehouse
from rr_assets.resources import StudentBase

CANDIDATES = {
    "LoRA r=8 on q,v": dict(lora_r=8, lora_alpha=16, lora_targets=("q_proj", "v_proj"), learning_rate=5e-4),
    "LoRA r=16 on all linear layers": dict(lora_r=16, lora_alpha=32, learning_rate=3e-4),
    "full fine-tuning (embeddings frozen)": dict(lora_r=0, learning_rate=3e-5),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-c", "--config", default=str(RESOURCES_DIR / "configs" / "scifact.yaml"))
    parser.add_argument("--collection", help="default: the config's first collection")
    parser.add_argument("--variant", default="grounded")
    parser.add_argument("--minutes", type=float, default=10.0, help="training budget per candidate")
    parser.add_argument("--doc-words", type=int, default=80, help="words of each document the student reads")
    parser.add_argument("--candidate", action="append", choices=sorted(CANDIDATES),
                        help="train only these candidates (repeatable; default: all)")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "student_sweep.json"))
    args = parser.parse_args()

    config = load_config(args.config)
    collection = args.collection or config.collections[0].name
    warehouse = Warehouse(Path(config.home) / "warehouse.duckdb")
    base_settings = replace(config.student, student_doc_words=args.doc_words, eval_every=1_000_000,
                            time_budget_minutes=args.minutes)
    try:
        examples = training_examples(warehouse, {"collection": collection, "prompt_variant": args.variant},
                                     base_settings.max_train_queries)
        dev = dev_set(warehouse, collection, base_settings)
    except duckdb.CatalogException:  # the pipeline has not built the tables yet
        examples, dev = [], None
    if not examples or dev is None:
        raise SystemExit(f"{config.home}/warehouse.duckdb has no {args.variant} training table or dev slice for "
                         f"{collection!r}: run the pipeline first (`rr run -c {args.config}`)")
    labels = load_variant(config.prompts_dir, args.variant).labels
    base = StudentBase(base_settings, config.model_cache).prepare()
    precision = choose_precision(base_settings.precision)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, changes in CANDIDATES.items():
            if args.candidate and name not in args.candidate:
                continue
            settings = replace(base_settings, **changes)
            result = StudentTrainer(base, settings, labels, precision).train(examples, Path(tmp) / "ckpt", dev)
            rows.append({"candidate": name, "settings": {k: v for k, v in asdict(settings).items() if k in changes},
                         "trainable_parameters": result.trainable_parameters, "optimizer_steps": result.optimizer_steps,
                         "dev_nDCG@10_before": round(result.dev_curve[0]["dev_nDCG@10"], 4),
                         "dev_nDCG@10_after": round(result.dev_curve[-1]["dev_nDCG@10"], 4),
                         "first_stage_dev_nDCG@10": round(result.first_stage_dev_ndcg, 4),
                         "fusion_dev_nDCG@10": round(result.fusion_dev_ndcg, 4), "fusion_weight": result.fusion_weight})
            print(rows[-1], flush=True)
    print(f"\n{'candidate':<38} {'params':>11} {'steps':>6} {'dev before':>10} {'dev after':>10} {'fused':>7}")
    for r in rows:
        print(f"{r['candidate']:<38} {r['trainable_parameters']:>11,} {r['optimizer_steps']:>6} "
              f"{r['dev_nDCG@10_before']:>10} {r['dev_nDCG@10_after']:>10} {r['fusion_dev_nDCG@10']:>7}")
    best = max(rows, key=lambda r: r["dev_nDCG@10_after"])
    print(f"best on the dev slice: {best['candidate']}")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"config": args.config, "collection": collection, "variant": args.variant,
                                          "minutes_per_candidate": args.minutes, "training_pairs": len(examples),
                                          "dev_queries": len(dev.queries), "precision": precision.name,
                                          "doc_words": args.doc_words, "results": rows, "best": best["candidate"]},
                                         indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
