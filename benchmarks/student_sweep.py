"""Which adapter should the student train? Each candidate trains for the same wall-clock budget on
SciFact training queries (grounded labels: qrels positives, unjudged BM25 top-20 as negatives) and
is scored on the dev slice (the same stable hash of training queries that `splits.sql` uses; test
queries are never touched). The winner goes into resources/configs/scifact.yaml.

    .venv/bin/python benchmarks/student_sweep.py [--minutes 10] [--train-queries 200] [--dev-queries 30]
        [--doc-words 80] [--candidate NAME ...]

Prints a table and writes JSON (default benchmarks/results/student_sweep.json).
"""

from __future__ import annotations

import argparse
import json
import tempfile
from dataclasses import asdict, replace
from pathlib import Path

import duckdb

from rr_assets.config import PROJECT_ROOT, load_config
from rr_assets.core.collections import CollectionSource, Query, load_collection
from rr_assets.core.models import embedded_gguf, gguf_to_hf_folder
from rr_assets.core.retrieval import build_index, search
from rr_assets.core.settings import StudentSettings
from rr_assets.core.student_model import StudentExample, choose_precision
from rr_assets.core.training import DevSet, StudentTrainer

SCIFACT = PROJECT_ROOT.parent / "shared" / "data" / "scifact"
CANDIDATES = {
    "LoRA r=8 on q,v": dict(lora_r=8, lora_alpha=16, lora_targets=("q_proj", "v_proj"), learning_rate=5e-4),
    "LoRA r=16 on all linear layers": dict(lora_r=16, lora_alpha=32, learning_rate=3e-4),
    "full fine-tuning (embeddings frozen)": dict(lora_r=0, learning_rate=3e-5),
}


def stable_split(query_ids: list[str], salt: str, percent: int) -> set[str]:
    """The queries DuckDB's md5_number puts under `percent`, exactly as splits.sql does."""
    rows = duckdb.sql(f"SELECT q FROM (SELECT unnest(?) AS q) WHERE md5_number('{salt}' || q) % 100 < {percent}",
                      params=[query_ids]).fetchall()
    return {r[0] for r in rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0, help="training budget per candidate")
    parser.add_argument("--train-queries", type=int, default=200)
    parser.add_argument("--dev-queries", type=int, default=30)
    parser.add_argument("--doc-words", type=int, default=80, help="words of each document the student reads")
    parser.add_argument("--candidate", action="append", choices=sorted(CANDIDATES),
                        help="train only these candidates (repeatable; default: all)")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "student_sweep.json"))
    args = parser.parse_args()

    config = load_config(PROJECT_ROOT / "resources" / "configs" / "scifact.yaml")
    base = gguf_to_hf_folder(embedded_gguf(config.model_cache), Path(config.model_cache) / "gemma-3-270m-hf")
    collection = load_collection(CollectionSource("scifact", str(SCIFACT), eval_split="test", train_split="train"))
    queries = {q.query_id: q.text for q in collection.queries}
    docs = {d.doc_id: f"{d.title} {d.text}".strip() for d in collection.documents}
    qrels: dict[str, dict[str, int]] = {}
    for r in collection.qrels:
        if r.split == "train":
            qrels.setdefault(r.query_id, {})[r.doc_id] = r.relevance
    dev_ids = stable_split(sorted(qrels), "dev:scifact:", config.splits.dev_percent)
    train_ids = sorted(q for q in qrels if q not in dev_ids)[: args.train_queries]
    dev_ids = sorted(dev_ids)[: args.dev_queries]
    with tempfile.TemporaryDirectory() as tmp:
        build_index(collection.documents, Path(tmp) / "index")
        hits = search(Path(tmp) / "index", [Query(q, queries[q]) for q in train_ids + dev_ids], 20, 0.9, 0.4)
        ranked: dict[str, list[tuple[str, float]]] = {}
        for h in hits:
            ranked.setdefault(h.query_id, []).append((h.doc_id, h.score))
        examples = [StudentExample(q, d, queries[q], docs[d], 2 if rel > 0 else 0, "")
                    for q in train_ids for d, rel in qrels[q].items()]
        examples += [StudentExample(q, d, queries[q], docs[d], 0, "")
                     for q in train_ids for d, _ in ranked.get(q, []) if d not in qrels[q]]
        dev = DevSet({q: queries[q] for q in dev_ids}, {q: [(d, docs[d], s) for d, s in ranked.get(q, [])] for q in dev_ids},
                     {q: qrels[q] for q in dev_ids})
        base_settings = replace(StudentSettings(), epochs=3, group_size=4, batch_groups=2, gradient_accumulation=2,
                                warmup_ratio=0.05, generation_weight=0.0, student_doc_words=args.doc_words,
                                eval_every=1_000_000, time_budget_minutes=args.minutes)
        precision = choose_precision("auto")
        rows = []
        for name, changes in CANDIDATES.items():
            if args.candidate and name not in args.candidate:
                continue
            settings = replace(base_settings, **changes)
            result = StudentTrainer(base, settings, (0, 1, 2), precision).train(examples, Path(tmp) / "ckpt", dev)
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
    Path(args.out).write_text(json.dumps({"minutes_per_candidate": args.minutes, "train_queries": len(train_ids),
                                          "dev_queries": len(dev_ids), "precision": precision.name,
                                          "doc_words": args.doc_words, "results": rows, "best": best["candidate"]},
                                         indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
