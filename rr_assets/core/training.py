"""R2R student training: LoRA on a causal LM with α·L_pairwise + β·L_listwise + γ·L_gen."""

from __future__ import annotations

import json
import math
import random
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F

from rr_assets.core.student_format import (
    StudentExample,
    explain_prefix,
    explain_text,
    label_token_ids,
    score_text,
)


@dataclass(frozen=True)
class TrainSettings:
    steps: int = 6
    learning_rate: float = 3e-4
    group_size: int = 4
    max_doc_words: int = 90
    alpha: float = 1.0
    beta: float = 1.0
    gamma: float = 1.0
    lora_r: int = 8
    lora_alpha: int = 16
    target_modules: tuple[str, ...] = ("q_proj", "v_proj")
    labels: tuple[int, ...] = (0, 1, 2)
    seed: int = 0


@dataclass(frozen=True)
class TrainResult:
    steps: int
    losses: list[dict]
    seconds: float
    device: str
    trainable_parameters: int


def preference_matrix(group: list[StudentExample], preferences: frozenset[tuple[str, str, str]]) -> torch.Tensor:
    """preferred[i, j]: the teacher prefers document i to document j for the group's query, by its
    labels or by its (swap-consistent) comparison reasoning, given as (query, preferred, other)."""
    return torch.tensor([[a.label > b.label or (a.query_id, a.doc_id, b.doc_id) in preferences for b in group]
                         for a in group])


def pairwise_loss(scores: torch.Tensor, better: torch.Tensor) -> torch.Tensor:
    """RankNet: −log σ(s_i − s_j) over every pair with better[i, j] (0 when there is none)."""
    if not better.any():
        return scores.sum() * 0.0
    differences = scores[:, None] - scores[None, :]
    return -F.logsigmoid(differences[better]).mean()


def listwise_loss(scores: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """ListNet: cross-entropy between softmax(labels) and softmax(scores)."""
    target = torch.softmax(labels.float(), dim=-1)
    return -(target * torch.log_softmax(scores, dim=-1)).sum()


def expected_label(label_logits: torch.Tensor, labels: tuple[int, ...]) -> torch.Tensor:
    """Score = E[label] under the softmax over the label tokens' logits."""
    values = torch.tensor(labels, dtype=label_logits.dtype, device=label_logits.device)
    return (torch.softmax(label_logits, dim=-1) * values).sum(-1)


def label_position_logits(model, tokenizer, texts: list[str], label_ids: list[int]):
    """Logits of the label tokens at the position that predicts the final (label) token of each text.
    Texts are never truncated here (that would cut the label): documents are clipped beforehand."""
    batch = tokenizer(texts, return_tensors="pt", padding=True)
    batch = {k: v.to(model.device) for k, v in batch.items()}
    logits = model(**batch).logits
    positions = batch["attention_mask"].sum(dim=1) - 2
    rows = torch.arange(logits.shape[0], device=logits.device)
    return logits[rows, positions][:, label_ids]


def generation_loss(model, tokenizer, texts: list[str], prompt_lengths: list[int]):
    """Cross-entropy on the explanation and label tokens only (prompt tokens are masked)."""
    batch = tokenizer(texts, return_tensors="pt", padding=True)
    batch = {k: v.to(model.device) for k, v in batch.items()}
    targets = batch["input_ids"].clone()
    targets[batch["attention_mask"] == 0] = -100
    for row, length in enumerate(prompt_lengths):
        targets[row, :length] = -100
    return model(**batch, labels=targets).loss


def training_groups(examples: list[StudentExample], group_size: int, seed: int) -> list[list[StudentExample]]:
    """Per query, groups of candidates that mix labels (a group of one label teaches no ranking)."""
    by_query: dict[str, list[StudentExample]] = {}
    for ex in examples:
        by_query.setdefault(ex.query_id, []).append(ex)
    rng = random.Random(seed)
    groups = []
    for query_id in sorted(by_query):
        items = sorted(by_query[query_id], key=lambda e: e.doc_id)
        rng.shuffle(items)
        for start in range(0, len(items), group_size):
            group = items[start : start + group_size]
            if len(group) >= 2 and len({e.label for e in group}) >= 2:
                groups.append(group)
    rng.shuffle(groups)
    return groups


def pick_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def train_lora(
    base_model_dir: str | Path,
    examples: list[StudentExample],
    settings: TrainSettings,
    out_dir: str | Path,
    log: Callable[[dict], None] | None = None,
    preferences: frozenset[tuple[str, str, str]] = frozenset(),
) -> TrainResult:
    """Train a LoRA adapter for `settings.steps` optimizer steps and save it to `out_dir`.
    `preferences` (query, preferred doc, other doc) from comparison reasoning join the pairwise loss."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.manual_seed(settings.seed)
    device = pick_device()
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    tokenizer = AutoTokenizer.from_pretrained(base_model_dir)
    tokenizer.padding_side = "right"
    model = AutoModelForCausalLM.from_pretrained(base_model_dir, dtype=dtype).to(device)
    if device.type == "cuda":
        model.gradient_checkpointing_enable()
        model.enable_input_require_grads()
    lora = LoraConfig(
        r=settings.lora_r, lora_alpha=settings.lora_alpha, target_modules=list(settings.target_modules),
        lora_dropout=0.0, task_type="CAUSAL_LM",
    )
    model = get_peft_model(model, lora)
    model.train()
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=settings.learning_rate)
    label_ids = label_token_ids(tokenizer, settings.labels)
    groups = training_groups(examples, settings.group_size, settings.seed)
    if not groups:
        raise ValueError("no training group has two different teacher labels; judge more candidates")

    losses, started = [], time.monotonic()
    for step in range(settings.steps):
        group = groups[step % len(groups)]
        labels = torch.tensor([e.label for e in group], device=device)
        texts = [score_text(e.query, e.document, e.label, settings.max_doc_words) for e in group]
        scores = expected_label(
            label_position_logits(model, tokenizer, texts, label_ids).float(), settings.labels
        )
        better = preference_matrix(group, preferences).to(device)
        l_pair, l_list = pairwise_loss(scores, better), listwise_loss(scores, labels)
        gen_texts = [explain_text(e.query, e.document, e.explanation, e.label, settings.max_doc_words) for e in group]
        prompt_lengths = [
            len(tokenizer(explain_prefix(e.query, e.document, settings.max_doc_words))["input_ids"]) for e in group
        ]
        l_gen = generation_loss(model, tokenizer, gen_texts, prompt_lengths)
        loss = settings.alpha * l_pair + settings.beta * l_list + settings.gamma * l_gen
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        record = {"step": step + 1, "loss": loss.item(), "pairwise": l_pair.item(),
                  "listwise": l_list.item(), "generation": l_gen.item()}
        if not all(math.isfinite(v) for v in record.values()):
            raise FloatingPointError(f"non-finite loss at step {step + 1}: {record}")
        losses.append(record)
        if log:
            log(record)

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    (out_dir / "train_settings.json").write_text(json.dumps(asdict(settings), indent=2))
    return TrainResult(settings.steps, losses, time.monotonic() - started, device.type, trainable)
