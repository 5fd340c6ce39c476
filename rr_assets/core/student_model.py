"""The student model's mechanics, shared by the trainer and the reranker: the text formats, device
and precision, loading a base model or a checkpoint, the label position's logits (only the label
rows of the LM head), the expected label, the generation loss (the full head only at the
positions that predict a target token), and batching by tokens."""

from __future__ import annotations

import functools
import json
import time
import warnings
from collections.abc import Callable
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from rr_assets.core.checkpoints import STUDENT_FILE

# peft 0.21 reads `is_gradient_checkpointing`, which transformers 5 deprecated, on every adapter it
# wraps: a FutureWarning in each run's log that only a peft release can act on
warnings.filterwarnings("ignore", message="`is_gradient_checkpointing` is deprecated", category=FutureWarning)


@dataclass(frozen=True)
class StudentExample:
    """One (query, document) pair with its training label and the teacher's explanation ("" if none)."""

    query_id: str
    doc_id: str
    query: str
    document: str
    label: int
    explanation: str


# --- text formats: training and scoring read the same positions -------------------------------

def clip_words(text: str, max_words: int) -> str:
    words = text.split()
    return " ".join(words[:max_words]) + (" ..." if len(words) > max_words else "")


def score_text(query: str, document: str, label: int, doc_words: int) -> str:
    """Score mode (one forward pass): the label token follows the document directly."""
    return f"Query: {query}\nDocument: {clip_words(document, doc_words)}\nRelevance: {label}"


def explain_prefix(query: str, document: str, doc_words: int) -> str:
    """Explain mode (InteRank): the student writes an explanation, then the label."""
    return f"Query: {query}\nDocument: {clip_words(document, doc_words)}\nExplanation:"


def explain_text(query: str, document: str, explanation: str, label: int, doc_words: int) -> str:
    return f"{explain_prefix(query, document, doc_words)} {explanation}\nRelevance: {label}"


def query_prompt(document: str, doc_words: int) -> str:
    """Query-likelihood mode: the document, then the query whose tokens are scored. Of three prompts
    tried untrained on 60 msmarco-dev600 queries (nDCG@10 over BM25's top 20; BM25 0.505), this one
    ranked best: 0.528, against 0.496 for UPR's "Please write a question based on this passage."
    and 0.482 for a bare "Query:"."""
    return f"Document: {clip_words(document, doc_words)}\nA search query this document answers:"


def query_likelihood_ids(tokenizer, pairs: list[tuple[str, str]], doc_words: int) -> tuple[list[list[int]], list[int]]:
    """Token ids of each (query, document)'s query-likelihood text and the length of its prompt
    (tokenised apart, so the query's tokens are the same after every document)."""
    prompts = tokenizer([query_prompt(document, doc_words) for _, document in pairs])["input_ids"]
    queries = tokenizer([f" {query}" for query, _ in pairs], add_special_tokens=False)["input_ids"]
    return [p + q for p, q in zip(prompts, queries)], [len(p) for p in prompts]


def label_token_ids(tokenizer, labels: tuple[int, ...]) -> list[int]:
    """The token id of each label digit as it appears after 'Relevance: '."""
    ids = [tokenizer(f"Relevance: {label}", add_special_tokens=False)["input_ids"][-1] for label in labels]
    if len(set(ids)) != len(ids):
        raise ValueError(f"labels {labels} do not map to distinct tokens")
    return ids


# --- device and precision ----------------------------------------------------------------------

@dataclass(frozen=True)
class Precision:
    """Where the student runs and whether matmuls run under bfloat16 autocast."""

    device: torch.device
    bf16: bool
    bf16_weights: bool | None = None  # None: on CUDA under bf16

    @property
    def name(self) -> str:
        return f"{self.device.type}/{'bf16-autocast' if self.bf16 else 'float32'}"

    @property
    def weight_dtype(self) -> torch.dtype:
        """The weights that do not train (all of them at inference, a LoRA student's base in
        training): bfloat16 on CUDA under bf16 (autocast casts every matmul's weights to bf16 anyway;
        stored so, they take half the memory and its traffic, and the residual stream runs in bf16
        too), float32 otherwise. What trains, and its optimizer state, stays float32."""
        bf16_weights = self.device.type == "cuda" if self.bf16_weights is None else self.bf16_weights
        return torch.bfloat16 if self.bf16 and bf16_weights else torch.float32

    def autocast(self):
        return torch.autocast(self.device.type, dtype=torch.bfloat16) if self.bf16 else nullcontext()


@functools.cache
def cpu_bf16_speedup(size: int = 1024, repeats: int = 3) -> float:
    """How much faster a bfloat16 matmul runs than a float32 one on this CPU, measured (about 8× with
    AMX; below 1× where bf16 is emulated). Cached per process; takes well under a second."""

    def best_seconds(dtype: torch.dtype) -> float:
        a, b = torch.randn(size, size, dtype=dtype), torch.randn(size, size, dtype=dtype)
        a @ b
        best = float("inf")
        for _ in range(repeats):
            started = time.perf_counter()
            a @ b
            best = min(best, time.perf_counter() - started)
        return best

    return best_seconds(torch.float32) / best_seconds(torch.bfloat16)


PRECISIONS = ("auto", "float32", "bfloat16")


def choose_precision(setting: str = "auto", min_cpu_speedup: float = 1.5) -> Precision:
    """`auto`: bf16 autocast on CUDA, and on a CPU where bf16 matmuls measure at least
    `min_cpu_speedup`× faster than float32 (AMX); float32 otherwise."""
    if setting not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, not {setting!r}")
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if setting != "auto":
        return Precision(device, setting == "bfloat16")
    return Precision(device, device.type == "cuda" or cpu_bf16_speedup() >= min_cpu_speedup)


# --- loading -----------------------------------------------------------------------------------

def load_tokenizer(path: str | Path):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(path)
    tokenizer.padding_side = "right"
    return tokenizer


def load_base_model(path: str | Path, precision: Precision):
    """Float32 weights on the precision's device, with PyTorch's scaled_dot_product_attention."""
    from transformers import AutoModelForCausalLM
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()  # a progress bar over the weights is noise in a run's log
    # sdpa computes the same attention as eager for Gemma 3 (transformers 5.23, which picks sdpa by
    # default too): Gemma3Attention passes no soft-cap to the attention function (Gemma 3 replaced
    # Gemma 2's attn_logit_softcapping with QK-norm; the config's is null, and sdpa would refuse one),
    # and the sliding window (512 tokens, 5 layers in 6 in 270M) is a boolean mask
    # (create_sliding_window_causal_mask), not a kernel argument. A batch with padding therefore
    # gives sdpa a mask, which on CUDA rules out the flash kernel (the memory-efficient one takes it).
    return AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32, attn_implementation="sdpa").to(precision.device)


@dataclass(frozen=True)
class StudentInfo:
    """What the trainer records in STUDENT_FILE: the base model, the label scale, the document
    budget, the adapter kind, the fusion weight chosen on the dev slice and how score mode reads a
    pair (`student.score_with`: the expected label at the label position, or log P(query | document),
    the base model's own query-likelihood prior)."""

    base_model_dir: str
    labels: tuple[int, ...]
    doc_words: int
    adapter: str  # "lora" or "full"
    fusion_weight: float | None = None
    score_with: str = "label"  # or "query_likelihood"

    def write(self, folder: Path) -> None:
        (folder / STUDENT_FILE).write_text(json.dumps(self.__dict__, indent=2))

    @classmethod
    def read(cls, folder: str | Path) -> StudentInfo:
        path = Path(folder) / STUDENT_FILE
        if not path.is_file():
            raise FileNotFoundError(f"{path}: not a student checkpoint (no {STUDENT_FILE})")
        raw = json.loads(path.read_text())
        return cls(**{**raw, "labels": tuple(raw["labels"])})


def load_student(checkpoint_dir: str | Path, precision: Precision, merged: bool = False):
    """(model in eval mode, tokenizer, info) of a checkpoint the trainer wrote: a LoRA adapter over
    its base model, or full weights. `merged` folds the adapter into the base weights, for inference
    only (same scores, fewer matmuls: see `merged_adapter`), and then stores the weights in
    `precision.weight_dtype` (cast after the float32 merge, as autocast would cast them)."""
    checkpoint_dir = Path(checkpoint_dir)
    info = StudentInfo.read(checkpoint_dir)
    tokenizer = load_tokenizer(checkpoint_dir)
    if info.adapter == "lora":
        from peft import PeftModel

        model = PeftModel.from_pretrained(load_base_model(info.base_model_dir, precision), checkpoint_dir)
        if merged:
            model = model.merge_and_unload()
    else:
        model = load_base_model(checkpoint_dir, precision)
    if merged:
        cast_weights(model, precision.weight_dtype)
    return model.eval(), tokenizer, info


def checkpoint_activations(model):
    """Gradient (activation) checkpointing on every transformer block, non-reentrant (no input
    needs requires_grad under a frozen embedding); through a peft wrapper too."""
    kwargs = {"use_reentrant": False}
    if hasattr(model, "activation_checkpointing_enable"):  # transformers 5's name; the older one below
        model.activation_checkpointing_enable(activation_checkpointing_kwargs=kwargs)
    else:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)
    return model


def cast_weights(model, dtype: torch.dtype, frozen_only: bool = False):
    """The model's parameters (or only those that do not train) in `dtype`, in place; its buffers keep
    theirs, as from_pretrained(dtype=) leaves them (`model.to(dtype)` would round Gemma's rotary
    frequencies to bf16 too)."""
    for parameter in model.parameters():
        if not (frozen_only and parameter.requires_grad):
            parameter.data = parameter.data.to(dtype)
    return model


@contextmanager
def merged_adapter(model):
    """A LoRA adapter folded into its base weights for the duration, unfolded after (full weights: no
    change). Scores are the same, within float rounding; with 7 adapted layers per block, the
    forward pass runs about 1.2-1.3x faster on the CPU (benchmarks/student_speed.py)."""
    if not hasattr(model, "merge_adapter"):
        yield model
        return
    model.merge_adapter()
    try:
        yield model
    finally:
        model.unmerge_adapter()


# --- forward passes ----------------------------------------------------------------------------

def _parts(model):
    """(decoder without the LM head, LM head, final logit soft-cap or None), through a peft wrapper."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return base.get_decoder(), base.get_output_embeddings(), getattr(base.config, "final_logit_softcapping", None)


def _capped(logits: torch.Tensor, cap: float | None) -> torch.Tensor:
    return torch.tanh(logits / cap) * cap if cap else logits


def encode(tokenizer, texts: list[str], device: torch.device) -> dict[str, torch.Tensor]:
    """Right-padded batch; texts are never truncated here (documents are clipped beforehand)."""
    batch = tokenizer(texts, return_tensors="pt", padding=True)
    return {k: v.to(device) for k, v in batch.items()}


def label_logits(model, batch: dict[str, torch.Tensor], label_ids: list[int]) -> torch.Tensor:
    """Logits of the label tokens at the position that predicts each text's final (label) token;
    only those rows of the LM head are computed, in float32 even under bf16 autocast (which would
    otherwise round them to bf16's 8-bit mantissa and tie near-equal scores)."""
    decoder, head, cap = _parts(model)
    hidden = decoder(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state
    positions = batch["attention_mask"].sum(dim=1) - 2
    picked = hidden[torch.arange(hidden.shape[0], device=hidden.device), positions].float()
    with torch.autocast(picked.device.type, enabled=False):
        return _capped(picked @ head.weight[label_ids].float().T, cap)


def expected_label(logits: torch.Tensor, labels: tuple[int, ...]) -> torch.Tensor:
    """Score = E[label] under the softmax over the label tokens' logits."""
    values = torch.tensor(labels, dtype=logits.dtype, device=logits.device)
    return (torch.softmax(logits, dim=-1) * values).sum(-1)


def target_log_probs(model, batch: dict[str, torch.Tensor], prompt_lengths: list[int]):
    """Log-probabilities of the tokens after each prompt and the row each belongs to; the full LM
    head runs only at the positions that predict them."""
    decoder, head, cap = _parts(model)
    hidden = decoder(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state
    targets = batch["attention_mask"].clone().bool()
    for row, length in enumerate(prompt_lengths):
        targets[row, :length] = False
    predicts = targets[:, 1:]
    logits = _capped(head(hidden[:, :-1][predicts]).float(), cap)
    log_probs = -F.cross_entropy(logits, batch["input_ids"][:, 1:][predicts], reduction="none")
    rows = torch.arange(predicts.shape[0], device=predicts.device)[:, None].expand_as(predicts)[predicts]
    return log_probs, rows


def query_log_likelihoods(model, batch: dict[str, torch.Tensor], prompt_lengths: list[int]) -> torch.Tensor:
    """log P(query | document) of each row: the summed log-probabilities of the tokens after its prompt."""
    log_probs, rows = target_log_probs(model, batch, prompt_lengths)
    return torch.zeros(len(prompt_lengths), dtype=log_probs.dtype, device=log_probs.device).index_add(0, rows, log_probs)


def generation_loss(model, batch: dict[str, torch.Tensor], prompt_lengths: list[int]) -> torch.Tensor:
    """Mean cross-entropy on the tokens after each prompt (the explanation and the label)."""
    log_probs, _ = target_log_probs(model, batch, prompt_lengths)
    return -log_probs.mean()


# --- batching by tokens --------------------------------------------------------------------------

MAX_AUTO_TOKEN_BUDGET = 65_536
"""The automatic token budget's ceiling: at about 2×10⁸ FLOPs a token, a pass of 64k tokens keeps a
270M model's GPU busy for tens of milliseconds, against a few milliseconds of kernel launches."""


def token_budget_for(config, free_bytes: int, memory_share: float = 0.5) -> int:
    """Tokens per scoring forward pass that `memory_share` of `free_bytes` holds: one decoder
    layer's float32 activations per token (the residual stream and norms, q/k/v and the attention
    output, the MLP's gate, up and product), twice over for temporaries; at most
    MAX_AUTO_TOKEN_BUDGET. Only the label rows of the LM head are computed, so no vocabulary term."""
    heads = config.num_attention_heads
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // heads
    attention = (2 * heads + 2 * getattr(config, "num_key_value_heads", heads)) * head_dim
    per_token = 2 * 4 * (4 * config.hidden_size + attention + 3 * config.intermediate_size)
    return max(1, min(MAX_AUTO_TOKEN_BUDGET, int(free_bytes * memory_share / per_token)))


def auto_token_budget(model, device: torch.device) -> int:
    """On CUDA, the token budget the free device memory allows now; 0 (batches of pairs) elsewhere."""
    if device.type != "cuda":
        return 0
    free_bytes, _ = torch.cuda.mem_get_info(device)
    return token_budget_for(_parts(model)[0].config, free_bytes)


def token_batches(lengths: list[int], batch_size: int, token_budget: int) -> list[list[int]]:
    """Indices of the texts per forward pass, shortest texts first: with a `token_budget`, as many
    as keep (longest length in the batch) × rows within it (a text longer than the budget goes
    alone); without one (0), `batch_size` at a time. Each batch pads only to its own longest text."""
    order = sorted(range(len(lengths)), key=lengths.__getitem__)
    if token_budget <= 0:
        return [order[start : start + batch_size] for start in range(0, len(order), batch_size)]
    batches: list[list[int]] = []
    for i in order:
        if batches and lengths[i] * (len(batches[-1]) + 1) <= token_budget:
            batches[-1].append(i)
        else:
            batches.append([i])
    return batches


def right_padded(rows: list[list[int]], pad_id: int, device: torch.device) -> dict[str, torch.Tensor]:
    """Token id rows as a right-padded batch on `device`."""
    width = max(map(len, rows))
    input_ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    attention_mask = torch.zeros((len(rows), width), dtype=torch.long)
    for r, row in enumerate(rows):
        input_ids[r, : len(row)] = torch.tensor(row)
        attention_mask[r, : len(row)] = 1
    return {"input_ids": input_ids.to(device), "attention_mask": attention_mask.to(device)}


@torch.no_grad()
def score_pairs(model, tokenizer, label_ids: list[int], labels: tuple[int, ...], doc_words: int,
                pairs: list[tuple[str, str]], batch_size: int, precision: Precision,
                explanations: list[str] | None = None,
                progress: Callable[[int, int], None] | None = None, token_budget: int = 0,
                score_with: str = "label") -> list[float]:
    """Score of each (query, document) pair, in input order: the expected label read at the label
    position, right after the document (score mode) or after the pair's explanation (explain mode),
    or, with `score_with="query_likelihood"`, log P(query | document) (explanations unused). The texts
    are tokenised once and batched by length (`token_batches`): by `token_budget` tokens a pass, or,
    with 0, by the budget free CUDA memory allows (`auto_token_budget`) and by `batch_size` pairs on
    the CPU. `progress(done, total)` follows each batch."""
    if score_with == "query_likelihood":
        ids, prompt_lengths = query_likelihood_ids(tokenizer, pairs, doc_words)
    elif explanations is None:
        ids = tokenizer([score_text(query, document, labels[0], doc_words) for query, document in pairs])["input_ids"]
    else:
        ids = tokenizer([explain_text(q, d, e, labels[0], doc_words)
                         for (q, d), e in zip(pairs, explanations)])["input_ids"]
    batches = token_batches([len(row) for row in ids], batch_size,
                            token_budget or auto_token_budget(model, precision.device))
    values, done = [], 0
    for chunk in batches:
        batch = right_padded([ids[i] for i in chunk], tokenizer.pad_token_id, precision.device)
        with precision.autocast():
            if score_with == "query_likelihood":
                values.append(query_log_likelihoods(model, batch, [prompt_lengths[i] for i in chunk]).float())
            else:
                values.append(expected_label(label_logits(model, batch, label_ids), labels))
        done += len(chunk)
        if progress:
            progress(done, len(ids))
    scores = [0.0] * len(ids)
    for i, value in zip([i for chunk in batches for i in chunk], torch.cat(values).tolist() if values else []):
        scores[i] = value
    return scores


@torch.no_grad()
def generate_explanations(model, tokenizer, prompts: list[str], max_new_tokens: int, batch_size: int,
                          precision: Precision, temperature: float = 0.0,
                          progress: Callable[[int, int], None] | None = None, static_cache: bool = False) -> list[str]:
    """Continue each explain-mode prompt up to its first line break (the label line follows it):
    batched by length, left-padded, with a KV cache; greedy when `temperature` is 0, sampled
    otherwise. `static_cache` allocates the cache once at the call's longest prompt plus
    `max_new_tokens`, so that every decoding step of every batch has the same shapes: on CUDA,
    transformers then compiles that step (torch.compile, CUDA graphs) on first use, and again for
    a new batch size. Greedy explanations equal the dynamic cache's in float32; in bf16 the two
    paths round differently (other attention kernels) and can part at a near-tie. Returns the
    explanations without surrounding space."""
    if static_cache and precision.bf16 and model.dtype != torch.bfloat16:
        raise ValueError("a static KV cache under bf16 autocast needs bfloat16 weights (load_student(merged=True) "
                         "on CUDA): over float32 weights, autocast leaves keys and values in different dtypes")
    newline = tokenizer("\n", add_special_tokens=False)["input_ids"][-1]
    ids = tokenizer(prompts)["input_ids"]
    order = sorted(range(len(prompts)), key=lambda i: len(ids[i]))
    sampling = {"do_sample": True, "temperature": temperature, "top_k": 0} if temperature > 0 else {"do_sample": False}
    cache = {"cache_implementation": "static", "max_cache_len": max(map(len, ids), default=0) + max_new_tokens} \
        if static_cache else {}
    explanations = [""] * len(prompts)
    tokenizer.padding_side = "left"
    try:
        for start in range(0, len(order), batch_size):
            chunk = order[start : start + batch_size]
            batch = tokenizer.pad({"input_ids": [ids[i] for i in chunk]}, return_tensors="pt")
            batch = {k: v.to(precision.device) for k, v in batch.items()}
            with precision.autocast():
                out = model.generate(**batch, max_new_tokens=max_new_tokens, eos_token_id=[newline, tokenizer.eos_token_id],
                                     pad_token_id=tokenizer.pad_token_id, **sampling, **cache)
            for i, row in zip(chunk, out[:, batch["input_ids"].shape[1]:]):
                explanations[i] = tokenizer.decode(row, skip_special_tokens=True).split("\n")[0].strip()
            if progress:
                progress(start + len(chunk), len(prompts))
    finally:
        tokenizer.padding_side = "right"
    return explanations
