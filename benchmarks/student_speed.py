"""Student speed on this machine: scored pairs/s and training steps/s for each path, and whether
bf16 keeps the ranking quality of float32 on the SciFact dev slice.

    .venv/bin/python benchmarks/student_speed.py [--checkpoint DIR] [--pairs 32] [--steps 3] [--dev-queries 30]
                                                 [--trained-layers 0 9] [--train-token-budgets 0 1024]

Paths: float32 or bf16 autocast, crossed with the full-vocabulary LM head at every position (what
scoring did before) or only the label rows at the label position (what rr does); with --checkpoint,
also its LoRA adapter run beside the base weights or merged into them (what rr's scorer does).
Training is timed for each `--trained-layers` value (student.trained_layers: 0 = every block) and
each `--train-token-budgets` value (student.train_token_budget: 0 = one pass per batch).
Pairs are real SciFact (query, abstract) pairs at the student's document budget (about 300 tokens
at 200 words).
The quality row scores the pipeline's SciFact dev slice (the training queries splits.sql sets
aside for checkpoint selection, never test queries) with --checkpoint (else the base model) in
both precisions. Prints a table and writes JSON (default benchmarks/results/student_speed-<device>-<processor>.json).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import time
from dataclasses import replace
from pathlib import Path

import duckdb
import torch

from rr_assets.config import PROJECT_ROOT, load_config
from rr_assets.core.collections import CollectionSource, Query, load_collection
from rr_assets.core.metrics import ndcg_at_10, reranked
from rr_assets.core.model_files import embedded_student
from rr_assets.core.retrieval import build_index, search
from rr_assets.core.settings import StudentSettings
from rr_assets.core.student_model import (
    Precision,
    StudentExample,
    cpu_bf16_speedup,
    encode,
    expected_label,
    label_token_ids,
    load_base_model,
    load_student,
    load_tokenizer,
    score_pairs,
    score_text,
)
from rr_assets.core.training import StudentTrainer

SCIFACT = PROJECT_ROOT.parent / "shared" / "data" / "scifact"


def cpu_name() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines() if Path("/proc/cpuinfo").exists() else []:
        if line.startswith("model name"):
            flags = Path("/proc/cpuinfo").read_text()
            extras = [f for f in ("amx_bf16", "avx512_bf16", "avx512f", "avx2") if f" {f}" in flags]
            return f"{line.split(':', 1)[1].strip()} ({os.cpu_count()} cores; {', '.join(extras)})"
    return platform.processor() or "cpu"


def device_slug(device_name: str) -> str:
    """A file-name tag for the machine, e.g. `cpu-amd-epyc` or `cuda-nvidia-h200`: results from
    different processors sit side by side instead of overwriting each other."""
    words = re.sub(r"[^a-z0-9]+", "-", re.sub(r"\((r|tm)\)|\(.*$", "", device_name.lower())).strip("-")
    return "-".join(words.split("-")[:3])


@torch.no_grad()
def full_vocabulary_scores(model, tokenizer, label_ids, labels, doc_words, pairs, batch_size, precision) -> list[float]:
    """The path rr used before: logits over the whole vocabulary at every position, then the label rows."""
    scores = []
    for start in range(0, len(pairs), batch_size):
        texts = [score_text(q, d, labels[0], doc_words) for q, d in pairs[start : start + batch_size]]
        batch = encode(tokenizer, texts, precision.device)
        with precision.autocast():
            logits = model(**batch).logits
        positions = batch["attention_mask"].sum(dim=1) - 2
        picked = logits[torch.arange(len(texts)), positions][:, label_ids].float()
        scores += expected_label(picked, labels).tolist()
    return scores


def scifact_dev_slice(train_query_ids: list[str], queries: int) -> list[str]:
    """The queries the pipeline's checkpoint selection scores on SciFact: the dev split of
    splits.sql (scifact.yaml's dev_percent), picked in ranked_candidates.sql's order."""
    dev_percent = load_config(PROJECT_ROOT / "resources" / "configs" / "scifact.yaml").splits.dev_percent
    rows = duckdb.execute("SELECT q FROM unnest(?) AS t(q) WHERE md5_number('dev:scifact:' || q) % 100 < ? "
                          "ORDER BY md5(q) LIMIT ?", [train_query_ids, dev_percent, queries]).fetchall()
    return sorted(q for (q,) in rows)


def timed(fn, repeats: int = 1) -> float:
    fn()  # warm-up
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    started = time.perf_counter()
    for _ in range(repeats):
        fn()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return (time.perf_counter() - started) / repeats


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", help="a trained student for the quality rows (default: the base model)")
    parser.add_argument("--pairs", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--doc-words", type=int, default=200, help="words per document (200 ≈ 300 tokens per pair)")
    parser.add_argument("--steps", type=int, default=3, help="training steps timed per precision")
    parser.add_argument("--dev-queries", type=int, default=30)
    parser.add_argument("--trained-layers", type=int, nargs="+", default=[0], help="student.trained_layers values timed")
    parser.add_argument("--train-token-budgets", type=int, nargs="+", default=[0],
                        help="student.train_token_budget values timed")
    parser.add_argument("--out")
    args = parser.parse_args()

    cache = load_config(PROJECT_ROOT / "resources" / "configs" / "demo.yaml").model_cache
    base = embedded_student(cache)
    collection = load_collection(CollectionSource("scifact", str(SCIFACT), eval_split="test", train_split="train"))
    docs = {d.doc_id: f"{d.title} {d.text}" for d in collection.documents}
    queries = {q.query_id: q.text for q in collection.queries}
    train_qrels: dict[str, dict[str, int]] = {}
    for r in collection.qrels:
        if r.split == "train":
            train_qrels.setdefault(r.query_id, {})[r.doc_id] = r.relevance
    pairs = [(queries[q], docs[d]) for q in sorted(train_qrels) for d in train_qrels[q]][: args.pairs]
    labels = (0, 1, 2)
    tokenizer = load_tokenizer(base)
    label_ids = label_token_ids(tokenizer, labels)
    tokens = sum(len(tokenizer(score_text(q, d, 0, args.doc_words))["input_ids"]) for q, d in pairs) / len(pairs)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    speedup = cpu_bf16_speedup() if device.type == "cpu" else None
    rows = []

    def time_path(path: str, fn, model, precision: Precision) -> None:
        seconds = timed(lambda: fn(model, tokenizer, label_ids, labels, args.doc_words, pairs, args.batch_size, precision))
        rows.append({"precision": precision.name, "path": path, "pairs": len(pairs), "tokens_per_pair": round(tokens),
                     "pairs_per_s": round(len(pairs) / seconds, 2)})
        print(rows[-1], flush=True)

    for bf16 in (False, True):
        precision = Precision(device, bf16)
        model = load_base_model(base, precision).eval()
        for path, fn in (("full vocabulary", full_vocabulary_scores), ("label rows", score_pairs)):
            time_path(path, fn, model, precision)
        for path, merged in (("lora adapter", False), ("lora merged", True)) if args.checkpoint else ():
            time_path(path, score_pairs, load_student(args.checkpoint, precision, merged=merged)[0], precision)
    examples = [StudentExample(q, d, queries[q], docs[d], 2, "") for q in sorted(train_qrels)[:8] for d in train_qrels[q]]
    examples += [StudentExample(q, d, queries[q], docs[d], 0, "") for q in sorted(train_qrels)[:8]
                 for d in sorted(docs)[:3]]
    training = []
    for bf16, trained_layers, budget in ((b, n, t) for b in (False, True) for n in args.trained_layers
                                         for t in args.train_token_budgets):
        settings = replace(StudentSettings(), epochs=1, group_size=4, batch_groups=2, gradient_accumulation=1,
                           student_doc_words=args.doc_words, generation_weight=0.0, warmup_ratio=0.0,
                           trained_layers=trained_layers, train_token_budget=budget)
        precision = Precision(device, bf16)
        trainer = StudentTrainer(base, settings, labels, precision)
        result = trainer.train(examples[: 4 * 2 * args.steps], Path("/tmp/rr-speed") / precision.name)
        steps = max(1, result.optimizer_steps)
        training.append({"precision": precision.name, "trained_layers": trained_layers, "train_token_budget": budget,
                         "steps": steps,
                         "seconds_per_step": round(result.seconds / steps, 2),
                         "pairs_per_step": 8, "train_pairs_per_s": round(8 * steps / result.seconds, 2)})
        print(training[-1], flush=True)

    dev = scifact_dev_slice(sorted(train_qrels), args.dev_queries)
    index = Path("/tmp/rr-speed/scifact-index")
    if not index.exists():
        build_index(collection.documents, index)
    hits = search(index, [Query(q, queries[q]) for q in dev], depth=20, k1=0.9, b=0.4)
    first: dict[str, dict[str, float]] = {}
    for h in hits:
        first.setdefault(h.query_id, {})[h.doc_id] = h.score
    quality = []
    for bf16 in (False, True):
        precision = Precision(device, bf16)
        if args.checkpoint:
            model, tokenizer_q, info = load_student(args.checkpoint, precision)
            words, model_labels = info.doc_words, info.labels
        else:
            model, tokenizer_q, words, model_labels = load_base_model(base, precision).eval(), tokenizer, 96, labels
        ids = label_token_ids(tokenizer_q, model_labels)
        keys = [(q, d) for q in sorted(first) for d in first[q]]
        values = score_pairs(model, tokenizer_q, ids, model_labels, words, [(queries[q], docs[d]) for q, d in keys],
                             args.batch_size, precision)
        scores: dict[str, dict[str, float]] = {}
        for (q, d), v in zip(keys, values):
            scores.setdefault(q, {})[d] = v
        quality.append({"precision": precision.name, "dev_queries": len(first),
                        "dev_nDCG@10": round(ndcg_at_10({q: train_qrels[q] for q in first}, reranked(first, scores)), 4)})
        print(quality[-1], flush=True)

    device_name = torch.cuda.get_device_name() if device.type == "cuda" else cpu_name()
    result = {"device": device_name,
              "torch": torch.__version__, "measured_bf16_matmul_speedup": speedup, "scoring": rows,
              "training": training, "quality": quality, "checkpoint": args.checkpoint or "base model",
              "bf16_quality_within_0.005": abs(quality[0]["dev_nDCG@10"] - quality[1]["dev_nDCG@10"]) <= 0.005}
    print(f"\n{'precision':<22} {'path':<16} {'pairs/s':>8}")
    for r in rows:
        print(f"{r['precision']:<22} {r['path']:<16} {r['pairs_per_s']:>8}")
    print(f"\n{'precision':<22} {'trained blocks':>14} {'token budget':>12} {'s/step (8 pairs)':>17} {'train pairs/s':>14}")
    for r in training:
        blocks, budget = r["trained_layers"] or "all", r["train_token_budget"] or "one pass"
        print(f"{r['precision']:<22} {blocks:>14} {budget:>12} {r['seconds_per_step']:>17} {r['train_pairs_per_s']:>14}")
    print(f"\n{'precision':<22} {'dev nDCG@10':>12}")
    for r in quality:
        print(f"{r['precision']:<22} {r['dev_nDCG@10']:>12}")
    out = Path(args.out or Path(__file__).parent / "results" / f"student_speed-{device.type}-{device_slug(device_name)}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
