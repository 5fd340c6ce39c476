"""Student speed on a bare GPU machine (or this CPU), in one go: Gemma 3 270M's architecture at
random init (speed does not depend on the weights' values) with rr's LoRA adapter, on random token
ids of the stated lengths. Needs only torch, transformers and peft: copy this one file.

    python gpu_speed.py [--device cuda] [--tokens 135 276] [--quick] [--only scoring training explain] [--out FILE]

Measures, for each pair length:
- scoring: pairs/s of rr's score mode (one forward pass, only the label rows of the LM head at the
  label position) at several batch sizes and at a token budget per batch, with float32 weights
  under bf16 autocast (what rr runs) and with bf16 weights;
- training: pairs/s of a LoRA optimizer step (rr's label-logit losses over groups of documents,
  and the generation loss on an explained share of the pairs, each its own forward pass as rr
  does), and its peak memory, for each lever: float32 weights + bf16 autocast (rr today), eager
  instead of sdpa attention, bf16 weights and residual stream, + gradient checkpointing, + a
  smaller explained share;
- explain: pairs/s of explain mode (`--new-tokens` generated greedily, then the label read after
  them) with a dynamic KV cache, a static one, and a static one compiled (CUDA).
Peak memory is torch.cuda.max_memory_allocated on CUDA (weights included), the process's peak
resident set (VmHWM, weights and libraries included) on the CPU. Prints tables and writes JSON
(default results/gpu_speed-<device tag>.json beside this file).
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import json
import os
import platform
import re
import resource
import sys
import time
from contextlib import nullcontext, suppress
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path

import peft
import torch
import torch.nn.functional as F
import transformers
from peft import LoraConfig, get_peft_model
from transformers import Gemma3ForCausalLM, Gemma3TextConfig

# Gemma 3 270M as rr converts the embedded GGUF (~/.cache/rr/models/gemma-3-270m-hf/config.json)
GEMMA_3_270M = {
    "vocab_size": 262144, "hidden_size": 640, "intermediate_size": 2048, "num_hidden_layers": 18,
    "num_attention_heads": 4, "num_key_value_heads": 1, "head_dim": 256, "query_pre_attn_scalar": 256,
    "hidden_activation": "gelu_pytorch_tanh", "max_position_embeddings": 32768, "rms_norm_eps": 9.999999974752427e-07,
    "sliding_window": 512, "attention_bias": False, "attention_dropout": 0.0, "attn_logit_softcapping": None,
    "final_logit_softcapping": None, "tie_word_embeddings": True, "use_bidirectional_attention": False,
    "pad_token_id": 0, "eos_token_id": 1, "bos_token_id": 2,
    "layer_types": (["sliding_attention"] * 5 + ["full_attention"]) * 3,
    "rope_parameters": {"full_attention": {"rope_theta": 1000000.0, "rope_type": "default"},
                        "sliding_attention": {"rope_theta": 10000.0, "rope_type": "default"}},
}
# rr's adapter (StudentSettings: lora_r, lora_alpha, lora_targets; every block trained)
LORA = {"r": 16, "lora_alpha": 32, "lora_dropout": 0.0, "task_type": "CAUSAL_LM",
        "target_modules": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]}
LABELS = (0, 1, 2)
LABEL_IDS = [236800, 236801, 236802]  # any three ids: the cost is the same as the digits'
LABEL_LINE_TOKENS = 4  # "\nRelevance: 2" after an explanation
GROUP_SIZE = 8  # documents per query group (student.group_size)


# --- rr's forward passes, mirrored (rr_assets/core/student_model.py: label_logits, expected_label,
# generation_loss; score_text and explain_prefix put the label token last and the explanation
# between the document and the label line) ---------------------------------------------------

def label_logits(model, input_ids: torch.Tensor) -> torch.Tensor:
    """The label rows' logits at the position that predicts each row's last (label) token, in float32."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    decoder, head = base.get_decoder(), base.get_output_embeddings()
    hidden = decoder(input_ids=input_ids, attention_mask=torch.ones_like(input_ids)).last_hidden_state
    picked = hidden[:, -2].float()
    with torch.autocast(picked.device.type, enabled=False):
        return picked @ head.weight[LABEL_IDS].float().T


def expected_label(logits: torch.Tensor) -> torch.Tensor:
    return (torch.softmax(logits, dim=-1) * torch.tensor(LABELS, dtype=logits.dtype, device=logits.device)).sum(-1)


def generation_loss(model, input_ids: torch.Tensor, targets: int) -> torch.Tensor:
    """Mean cross-entropy of each row's last `targets` tokens; the full LM head only at the positions
    that predict them."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    decoder, head = base.get_decoder(), base.get_output_embeddings()
    hidden = decoder(input_ids=input_ids, attention_mask=torch.ones_like(input_ids)).last_hidden_state
    logits = head(hidden[:, -targets - 1 : -1]).float()
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), input_ids[:, -targets:].reshape(-1))


# --- the machine -----------------------------------------------------------------------------

def cpu_name() -> str:
    info = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    for line in info.splitlines():
        if line.startswith("model name"):
            extras = [f for f in ("amx_bf16", "avx512_bf16", "avx512f", "avx2") if f" {f}" in info]
            return f"{line.split(':', 1)[1].strip()} ({os.cpu_count()} cores; {', '.join(extras)})"
    return platform.processor() or "cpu"


def device_slug(device: torch.device, name: str) -> str:
    """`cpu-amd-epyc`, `cuda-nvidia-h200`: results of different machines sit side by side."""
    words = re.sub(r"[^a-z0-9]+", "-", re.sub(r"\((r|tm)\)|\(.*$", "", name.lower())).strip("-")
    return f"{device.type}-{'-'.join(words.split('-')[:3])}"


WARMUP_TOKENS = 16


def per_s(count: int, seconds: float) -> float:
    return float(f"{count / seconds:.3g}")


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def reset_peak(device: torch.device) -> None:
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
    else:
        with suppress(OSError):
            Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current resident set (Linux)


def peak_gb(device: torch.device) -> float:
    if device.type == "cuda":
        return round(torch.cuda.max_memory_allocated(device) / 2**30, 2)
    status = Path("/proc/self/status")
    for line in status.read_text().splitlines() if status.exists() else []:
        if line.startswith("VmHWM:"):
            return round(int(line.split()[1]) / 2**20, 2)
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2)


def timed(device: torch.device, fn, light_fn, warmup: int, repeats: int) -> float:
    """Seconds per call of `fn`, after `warmup` untimed calls: of `fn` itself on CUDA (compiled and
    autotuned kernels are specific to the shapes), of `light_fn` on the CPU (the same code on a few
    tokens per row: the one-time costs without the work)."""
    for _ in range(warmup):
        (fn if device.type == "cuda" else light_fn)()
    synchronize(device)
    started = time.perf_counter()
    for _ in range(repeats):
        fn()
    synchronize(device)
    return (time.perf_counter() - started) / repeats


# --- the model -------------------------------------------------------------------------------

def build(device: torch.device, weights: torch.dtype, attention: str = "sdpa", lora: bool = False,
          checkpointing: bool = False):
    """Gemma 3 270M at random init on `device`, its weights in `weights`; with rr's LoRA adapter
    (peft keeps the adapter in float32 under bf16 weights), optionally with gradient checkpointing."""
    torch.manual_seed(0)
    with torch.device(device):
        model = Gemma3ForCausalLM(Gemma3TextConfig(**GEMMA_3_270M))
    model = model.to(weights)
    model.set_attn_implementation(attention)
    if checkpointing:
        kwargs = {"use_reentrant": False}
        if hasattr(model, "activation_checkpointing_enable"):  # its name in transformers 5.23; the older one below
            model.activation_checkpointing_enable(activation_checkpointing_kwargs=kwargs)
        else:
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)
        model.enable_input_require_grads()  # reentrant checkpointing needs it, with frozen embeddings under LoRA
    if lora:
        model = get_peft_model(model, LoraConfig(**LORA))
    return model


def random_ids(device: torch.device, rows: int, tokens: int, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(4, GEMMA_3_270M["vocab_size"], (rows, tokens), generator=generator).to(device)


def autocast(device: torch.device, enabled: bool):
    return torch.autocast(device.type, dtype=torch.bfloat16) if enabled else nullcontext()


@dataclass(frozen=True)
class Precision:
    name: str
    weights: torch.dtype
    autocast: bool


FP32_AUTOCAST = Precision("fp32 weights + bf16 autocast", torch.float32, True)
BF16 = Precision("bf16 weights", torch.bfloat16, True)


# --- measurements ----------------------------------------------------------------------------

def free(device: torch.device) -> None:
    """Give back what the last measurement held, so that the next one's peak is its own."""
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
    elif sys.platform.startswith("linux"):
        with suppress(AttributeError):  # glibc keeps freed heap otherwise, and the resident set with it
            ctypes.CDLL(None).malloc_trim(0)


def score(model, ids: torch.Tensor, bf16_autocast: bool) -> list[float]:
    with torch.no_grad(), autocast(ids.device, bf16_autocast):
        return expected_label(label_logits(model, ids)).tolist()


def measure_scoring(device, tokens: list[int], batches: list[int], token_budget: int, warmup: int, repeats: int) -> list[dict]:
    rows = []
    for precision in (FP32_AUTOCAST, BF16):
        model = build(device, precision.weights).eval()  # rr scores with the adapter merged: the base's matmuls
        for length in tokens:
            sizes = [(f"{b} pairs", b) for b in batches]
            if token_budget:
                sizes.append((f"{token_budget} tokens", max(1, token_budget // length)))
            for label, batch in sizes:
                ids = random_ids(device, batch, length)
                row = {"precision": precision.name, "tokens": length, "batch": label, "pairs_per_batch": batch}
                reset_peak(device)
                try:
                    seconds = timed(device, partial(score, model, ids, precision.autocast),
                                    partial(score, model, ids[:, :WARMUP_TOKENS], precision.autocast), warmup, repeats)
                    row |= {"pairs_per_s": per_s(batch, seconds), "peak_gb": peak_gb(device)}
                except torch.OutOfMemoryError:
                    row |= {"pairs_per_s": None, "peak_gb": None, "note": "out of memory"}
                rows.append(row)
                print(row, flush=True)
                del ids
                free(device)
        del model
        free(device)
    return rows


@dataclass(frozen=True)
class Lever:
    name: str
    precision: Precision
    attention: str = "sdpa"
    checkpointing: bool = False
    explained_share: float = 0.25  # rr: generation_docs_per_group 2 of group_size 8


LEVERS = (
    Lever("fp32 weights + bf16 autocast (rr today)", FP32_AUTOCAST),
    Lever("  eager attention instead of sdpa", FP32_AUTOCAST, attention="eager"),
    Lever("bf16 weights and residual stream", BF16),
    Lever("bf16 + gradient checkpointing", BF16, checkpointing=True),
    Lever("bf16 + checkpointing, explained share 1/8", BF16, checkpointing=True, explained_share=0.125),
    Lever("bf16 + checkpointing, no explanations", BF16, checkpointing=True, explained_share=0.0),
)


def train_step(model, optimizer, ids: torch.Tensor, labels: torch.Tensor, gen_ids: torch.Tensor | None,
               gen_targets: int, bf16_autocast: bool) -> None:
    relevance = labels.view(-1, GROUP_SIZE).float() if len(labels) % GROUP_SIZE == 0 else labels[None].float()
    with autocast(ids.device, bf16_autocast):
        logits = label_logits(model, ids)
        scores = expected_label(logits).view_as(relevance)
        listwise = -(torch.softmax(relevance, -1) * torch.log_softmax(scores, -1)).sum(-1).mean()
        loss = F.cross_entropy(logits, labels) + listwise
        if gen_ids is not None:
            loss = loss + 0.2 * generation_loss(model, gen_ids, gen_targets)
    loss.backward()
    torch.nn.utils.clip_grad_norm_([p for group in optimizer.param_groups for p in group["params"]], 1.0)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)


def measure_training(device, tokens: list[int], pairs: int, new_tokens: int, warmup: int, repeats: int) -> list[dict]:
    """One optimizer step = the label forward over `pairs` pairs (groups of GROUP_SIZE: pointwise
    cross-entropy and a ListNet loss per group, as rr's pointwise and listwise losses), the
    generation forward over the explained share (prompt + explanation + label line, the loss on
    the last two), backward, clipping and AdamW on the adapter."""
    rows = []
    for length in tokens:
        for lever in LEVERS:
            model = build(device, lever.precision.weights, lever.attention, lora=True, checkpointing=lever.checkpointing)
            model.train()
            trainable = [p for p in model.parameters() if p.requires_grad]
            optimizer = torch.optim.AdamW(trainable, lr=1e-4, weight_decay=0.0)
            ids = random_ids(device, pairs, length)
            labels = torch.randint(0, len(LABELS), (pairs,), generator=torch.Generator().manual_seed(1)).to(device)
            explained = round(lever.explained_share * pairs)
            gen_ids = random_ids(device, explained, length + new_tokens + LABEL_LINE_TOKENS, seed=2) if explained else None
            targets = new_tokens + LABEL_LINE_TOKENS
            step = partial(train_step, model, optimizer, ids, labels, gen_ids, targets, lever.precision.autocast)
            light = partial(train_step, model, optimizer, ids[:, :WARMUP_TOKENS], labels,
                            None if gen_ids is None else gen_ids[:, -targets - WARMUP_TOKENS :], targets,
                            lever.precision.autocast)
            row = {"lever": lever.name, **{k: v for k, v in asdict(lever).items() if k not in ("name", "precision")},
                   "precision": lever.precision.name, "tokens": length, "pairs_per_step": pairs, "explained_pairs": explained}
            reset_peak(device)
            try:
                seconds = timed(device, step, light, warmup, repeats)
                row |= {"pairs_per_s": per_s(pairs, seconds), "seconds_per_step": round(seconds, 3),
                        "peak_gb": peak_gb(device)}
            except torch.OutOfMemoryError:
                row |= {"pairs_per_s": None, "seconds_per_step": None, "peak_gb": None, "note": "out of memory"}
            rows.append(row)
            print(row, flush=True)
            del step, light, model, optimizer, trainable, ids, gen_ids
            free(device)
    return rows


def explain(model, ids: torch.Tensor, label_line: torch.Tensor, new_tokens: int, bf16_autocast: bool,
            options: dict) -> list[float]:
    with torch.no_grad(), autocast(ids.device, bf16_autocast):
        out = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=new_tokens,
                             min_new_tokens=new_tokens, do_sample=False, pad_token_id=0, **options)
        return expected_label(label_logits(model, torch.cat([out, label_line], dim=1))).tolist()


def measure_explain(device, tokens: list[int], batch: int, new_tokens: int, warmup: int, repeats: int) -> list[dict]:
    """Explain mode: `new_tokens` generated greedily after each prompt (exactly that many: no early
    stop), then one forward pass over prompt + explanation + label line for the label."""
    modes = [(FP32_AUTOCAST, "dynamic", None), (BF16, "dynamic", None), (BF16, "static", False)]
    if device.type == "cuda":
        modes.append((BF16, "static", True))  # transformers compiles the forward for a static cache on CUDA
    rows = []
    for precision, cache, compiled in modes:
        model = build(device, precision.weights).eval()
        for length in tokens:
            ids = random_ids(device, batch, length)
            label_line = random_ids(device, batch, LABEL_LINE_TOKENS, seed=3)
            options = {"cache_implementation": "static", "disable_compile": not compiled} if cache == "static" else {}
            name = f"{cache} cache" + (", compiled" if compiled else "")
            row = {"precision": precision.name, "cache": name, "tokens": length, "new_tokens": new_tokens, "batch": batch}
            reset_peak(device)
            try:
                seconds = timed(device, partial(explain, model, ids, label_line, new_tokens, precision.autocast, options),
                                partial(explain, model, ids[:, :WARMUP_TOKENS], label_line, 2, precision.autocast, options),
                                warmup, repeats)
                row |= {"pairs_per_s": per_s(batch, seconds), "peak_gb": peak_gb(device)}
            except torch.OutOfMemoryError:
                row |= {"pairs_per_s": None, "peak_gb": None, "note": "out of memory"}
            rows.append(row)
            print(row, flush=True)
            del ids, label_line
            free(device)
        del model
        free(device)
    return rows


# --- targets and tables ----------------------------------------------------------------------

def targets(scoring: list[dict], training: list[dict], explain: list[dict], pairs: int) -> list[dict]:
    """Issue 27's targets (for an H200) against the best row measured for each."""

    def best(rows, **where):
        values = [r["pairs_per_s"] for r in rows if r.get("pairs_per_s") and all(r.get(k) == v for k, v in where.items())]
        return max(values) if values else None

    checks = []
    for length, goal in ((135, 10_000), (276, 5_000)):
        checks.append({"target": f"scoring, {length} tokens: >= {goal:,} pairs/s", "measured": best(scoring, tokens=length),
                       "goal": goal})
    checks.append({"target": "training, 135 tokens: >= 2,000 pairs/s", "measured": best(training, tokens=135), "goal": 2000})
    for r in training:
        if r["tokens"] == 276 and pairs == 128 and r.get("peak_gb") is not None:
            checks.append({"target": f"128 pairs x 276 tokens <= 24 GB peak: {r['lever'].strip()}",
                           "measured": r["peak_gb"], "goal": 24, "lower_is_better": True})
    checks.append({"target": "explain: >= 200 pairs/s", "measured": best(explain), "goal": 200})
    for c in checks:
        measured = c["measured"]
        c["met"] = None if measured is None else (measured <= c["goal"] if c.get("lower_is_better") else measured >= c["goal"])
    return checks


def print_tables(result: dict) -> None:
    if result["scoring"]:
        print(f"\n{'scoring':<30} {'tokens':>6} {'batch':>14} {'pairs/s':>10} {'peak GB':>8}")
        for r in result["scoring"]:
            print(f"{r['precision']:<30} {r['tokens']:>6} {r['batch']:>14} {r['pairs_per_s'] or 'OOM':>10} "
                  f"{r['peak_gb'] or '-':>8}")
    if result["training"]:
        print(f"\n{'training lever':<44} {'tokens':>6} {'pairs':>6} {'pairs/s':>9} {'peak GB':>8}  vs rr today")
        for r in result["training"]:
            base = next(b for b in result["training"] if b["tokens"] == r["tokens"])
            bought = ""
            if r is not base and r.get("pairs_per_s") and base.get("pairs_per_s"):
                bought = (f"{r['pairs_per_s'] / base['pairs_per_s']:.2f}x speed, "
                          f"{r['peak_gb'] - base['peak_gb']:+.2f} GB")
            print(f"{r['lever']:<44} {r['tokens']:>6} {r['pairs_per_step']:>6} {r['pairs_per_s'] or 'OOM':>9} "
                  f"{r['peak_gb'] or '-':>8}  {bought}")
    if result["explain"]:
        print(f"\n{'explain':<30} {'cache':<24} {'tokens':>6} {'batch':>6} {'pairs/s':>9} {'peak GB':>8}")
        for r in result["explain"]:
            print(f"{r['precision']:<30} {r['cache']:<24} {r['tokens']:>6} {r['batch']:>6} {r['pairs_per_s'] or 'OOM':>9} "
                  f"{r['peak_gb'] or '-':>8}")
    print("\ntargets (issue 27, for an H200)")
    for c in result["targets"]:
        verdict = "-" if c["met"] is None else "met" if c["met"] else "not met"
        print(f"  {c['target']:<72} {c['measured'] if c['measured'] is not None else '-':>10}  {verdict}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--tokens", type=int, nargs="+", help="tokens per pair (default 135 276; 135 with --quick)")
    parser.add_argument("--score-batches", type=int, nargs="+", help="pairs per scoring batch (default 16 128 512)")
    parser.add_argument("--score-token-budget", type=int, help="also a batch of this many tokens (default 65536)")
    parser.add_argument("--train-pairs", type=int, help=f"pairs per training step, in groups of {GROUP_SIZE} (default 128)")
    parser.add_argument("--explain-batch", type=int, help="pairs generated at once (default 256 on CUDA, 8 on the CPU)")
    parser.add_argument("--new-tokens", type=int, default=40, help="explanation tokens generated per pair")
    parser.add_argument("--warmup", type=int, default=1, help="untimed calls first (short ones on the CPU)")
    parser.add_argument("--repeats", type=int, help="timed calls (default 3; 1 with --quick)")
    parser.add_argument("--only", nargs="+", choices=("scoring", "training", "explain"),
                        default=["scoring", "training", "explain"])
    parser.add_argument("--threads", type=int, help="CPU threads (torch.set_num_threads; default torch's)")
    parser.add_argument("--quick", action="store_true", help="small batches, one timed call: minutes on a CPU")
    parser.add_argument("--out")
    args = parser.parse_args()

    device = torch.device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    quick, cuda = args.quick, device.type == "cuda"
    tokens = args.tokens or ([135] if quick else [135, 276])
    batches = args.score_batches or ([8] if quick else [16, 128, 512])
    budget = args.score_token_budget if args.score_token_budget is not None else (1024 if quick and not cuda else 65536)
    pairs = args.train_pairs or (GROUP_SIZE if quick and not cuda else 128)
    explain_batch = args.explain_batch or (256 if cuda else 4 if quick else 8)
    warmup = args.warmup
    repeats = args.repeats or (1 if quick else 3)
    name = torch.cuda.get_device_name(device) if cuda else cpu_name()
    print(f"{name}: torch {torch.__version__}, transformers {transformers.__version__}, peft {peft.__version__}", flush=True)
    started, load_before = time.monotonic(), os.getloadavg()
    scoring = measure_scoring(device, tokens, batches, budget, warmup, repeats) if "scoring" in args.only else []
    training = measure_training(device, tokens, pairs, args.new_tokens, warmup, repeats) if "training" in args.only else []
    explain = measure_explain(device, tokens, explain_batch, args.new_tokens, warmup, repeats) if "explain" in args.only else []
    result = {"device": name, "torch": torch.__version__, "transformers": transformers.__version__,
              "peft": peft.__version__, "cuda": torch.version.cuda if cuda else None, "quick": quick,
              "cpu_threads": torch.get_num_threads(),
              "settings": {"tokens": tokens, "score_batches": batches, "score_token_budget": budget,
                           "train_pairs": pairs, "group_size": GROUP_SIZE, "explain_batch": explain_batch,
                           "new_tokens": args.new_tokens, "warmup": warmup, "repeats": repeats, "lora": LORA},
              "peak_memory": "torch.cuda.max_memory_allocated" if cuda else "process peak RSS (VmHWM)",
              "scoring": scoring, "training": training, "explain": explain,
              "targets": targets(scoring, training, explain, pairs),
              "seconds": round(time.monotonic() - started, 1),
              "load_average_1min": {"start": load_before[0], "end": os.getloadavg()[0], "cores": os.cpu_count()}}
    print_tables(result)
    out = Path(args.out or Path(__file__).parent / "results" / f"gpu_speed-{device_slug(device, name)}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
