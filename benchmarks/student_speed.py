"""Student speed: LoRA training steps and score-mode reranking, on the GPU when there is one.

    .venv/bin/python benchmarks/student_speed.py [--base DIR] [--steps 4] [--pairs 64]

--base is a transformers folder (default: the embedded Gemma 3 270M, converted once). With
--random-weights, only the folder's config and tokenizer are used and the weights are random
(same shapes, same speed): for machines that cannot hold the converted weights.
Prints a table and writes JSON (default benchmarks/results/student_speed-<device>.json).
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import torch

from rr_assets.config import RESOURCES_DIR
from rr_assets.core.collections import load_beir
from rr_assets.core.scoring import StudentReranker
from rr_assets.core.student_format import StudentExample
from rr_assets.core.training import TrainSettings, pick_device, train_lora


def base_folder(args, tmp: Path) -> Path:
    if args.random_weights:
        from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

        model = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(args.base), dtype=torch.float32)
        model.save_pretrained(tmp / "random")
        AutoTokenizer.from_pretrained(args.base).save_pretrained(tmp / "random")
        return tmp / "random"
    if args.base:
        return Path(args.base)
    from rr_assets.core.models import embedded_gguf, gguf_to_hf_folder

    cache = Path(os.environ.get("RR_MODEL_CACHE") or Path.home() / ".cache" / "rr" / "models")
    return gguf_to_hf_folder(embedded_gguf(cache), cache / "gemma-3-270m-hf")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base")
    parser.add_argument("--random-weights", action="store_true")
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--group-size", type=int, default=4)
    parser.add_argument("--pairs", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--out")
    args = parser.parse_args()

    collection = load_beir("demo", RESOURCES_DIR / "collections" / "demo")
    queries = {q.query_id: q.text for q in collection.queries}
    docs = {d.doc_id: d.text for d in collection.documents}
    examples = [StudentExample(r.query_id, r.doc_id, queries[r.query_id], docs[r.doc_id], r.relevance,
                               "The document explains the principle behind the question.") for r in collection.qrels]
    examples += [StudentExample(r.query_id, d.doc_id, queries[r.query_id], d.text, 0, "Unrelated.")
                 for r, d in zip(collection.qrels, collection.documents[::-1])]
    device = pick_device()
    with tempfile.TemporaryDirectory() as tmp:
        base = base_folder(args, Path(tmp))
        settings = TrainSettings(steps=args.steps, group_size=args.group_size, max_doc_words=80)
        result = train_lora(base, examples, settings, Path(tmp) / "ckpt")
        (Path(tmp) / "ckpt" / "card.json").write_text(json.dumps({"base_model_dir": str(base)}))
        reranker = StudentReranker(Path(tmp) / "ckpt")
        pairs = [(e.doc_id, e.document) for e in examples[: args.pairs]]
        reranker.score(examples[0].query, pairs[: args.batch_size], args.batch_size)  # warm-up
        if device.type == "cuda":
            torch.cuda.synchronize()
        started = time.perf_counter()
        reranker.score(examples[0].query, pairs, args.batch_size)
        if device.type == "cuda":
            torch.cuda.synchronize()
        score_seconds = time.perf_counter() - started
    row = {
        "device": torch.cuda.get_device_name() if device.type == "cuda" else f"cpu ({os.cpu_count()} cores)",
        "dtype": "bfloat16" if device.type == "cuda" else "float32",
        "weights": "random (same shapes)" if args.random_weights else "Gemma 3 270M",
        "train_steps": result.steps, "group_size": args.group_size,
        "seconds_per_step": round(result.seconds / result.steps, 3),
        "pairs_scored": len(pairs), "score_pairs_per_s": round(len(pairs) / score_seconds, 2),
        "final_loss": round(result.losses[-1]["loss"], 4), "torch": torch.__version__,
    }
    print(f"{'device':<28} {'dtype':<9} {'s/step':>7} {'pairs/s':>8}")
    print(f"{row['device']:<28} {row['dtype']:<9} {row['seconds_per_step']:>7} {row['score_pairs_per_s']:>8}")
    out = Path(args.out or Path(__file__).parent / "results" / f"student_speed-{device.type}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(row, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
