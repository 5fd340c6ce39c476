"""InteRank's second stage: refine the distilled student's explain-then-score policy with GRPO.

For each training pair the policy samples a group of explanations. The reward of an explanation is
how well the label the policy then gives agrees with the training label: 1 − |E[label] − gold| /
(top label), where E[label] is the score explain mode reads after that explanation (graded and
continuous, so a near miss earns more than a far one and two explanations rarely tie). Advantages
are normalised within the group (group-relative, no value model); the loss is the policy gradient
on the explanation tokens plus a KL penalty (the k3 estimator, per token) to the frozen distilled
policy. One update per batch of samples, so the importance ratio is 1 and PPO's clipping never binds.

We use a small loop rather than trl's GRPOTrainer: the reward reads the policy's own label
distribution after each sample (a model call, not a function of the text), the reference policy is
the distilled adapter (trl's peft path takes the base model with adapters disabled as the
reference), and the loop is ~100 lines that run the same on 2 CPU cores and on a GPU."""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch

from rr_assets.core.settings import RLSettings
from rr_assets.core.student_model import (
    Precision,
    StudentExample,
    StudentInfo,
    encode,
    expected_label,
    explain_prefix,
    explain_text,
    generate_explanations,
    label_logits,
    label_token_ids,
    load_student,
    target_log_probs,
)


def group_advantages(rewards: torch.Tensor, eps: float = 1e-4) -> torch.Tensor:
    """(reward − group mean) / group std, per row of a [pairs, samples] tensor; 0 for a group whose
    samples all earned the same reward."""
    mean, std = rewards.mean(dim=1, keepdim=True), rewards.std(dim=1, keepdim=True, unbiased=False)
    return (rewards - mean) / (std + eps)


def label_reward(expected: torch.Tensor, gold: torch.Tensor, top_label: int) -> torch.Tensor:
    """1 − |expected label − training label| / top label, in [0, 1]."""
    return 1.0 - (expected.float() - gold.float()).abs() / max(1, top_label)


def kl_k3(policy_log_probs: torch.Tensor, reference_log_probs: torch.Tensor) -> torch.Tensor:
    """Per-token estimate of KL(policy ‖ reference) from samples of the policy: e^(r−p) − (r−p) − 1 ≥ 0."""
    delta = reference_log_probs - policy_log_probs
    return torch.exp(delta) - delta - 1.0


@dataclass
class RLResult:
    steps: int = 0
    seconds: float = 0.0
    stop_reason: str = "finished"
    curve: list[dict] = field(default_factory=list)


def training_pairs(examples: list[StudentExample], count: int, seed: int) -> list[StudentExample]:
    """A seeded sample that mixes labels: alternately the highest-labelled and the other pairs."""
    rng = random.Random(seed)
    top = max(e.label for e in examples)
    best = [e for e in examples if e.label == top]
    rest = [e for e in examples if e.label != top]
    rng.shuffle(best)
    rng.shuffle(rest)
    mixed = [e for pair in zip(best, rest) for e in pair] + best[len(rest):] + rest[len(best):]
    return mixed[:count]


class GRPORefiner:
    """Refines a distilled checkpoint; `log(record)` receives every step."""

    def __init__(self, settings: RLSettings, precision: Precision, log: Callable[[dict], None] | None = None):
        self.settings, self.precision, self.log = settings, precision, log or (lambda record: None)

    def refine(self, checkpoint_dir: str | Path, examples: list[StudentExample], out_dir: str | Path) -> RLResult:
        s, started = self.settings, time.monotonic()
        deadline = started + s.time_budget_minutes * 60 if s.time_budget_minutes > 0 else math.inf
        torch.manual_seed(0)
        policy, tokenizer, info = load_student(checkpoint_dir, self.precision)
        reference, _, _ = load_student(checkpoint_dir, self.precision)
        for name, parameter in policy.named_parameters():
            parameter.requires_grad = "lora_" in name if info.adapter == "lora" else (
                "embed_tokens" not in name and "lm_head" not in name)
        trainable = [p for p in policy.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(trainable, lr=s.learning_rate, weight_decay=0.0)
        label_ids = label_token_ids(tokenizer, info.labels)
        labels = torch.tensor(info.labels, device=self.precision.device)
        pairs = training_pairs(examples, s.pairs, seed=0)
        result = RLResult()
        for step in range(s.steps):
            if time.monotonic() > deadline:
                result.stop_reason = "time budget"
                break
            batch = [pairs[(step * s.pairs_per_step + i) % len(pairs)] for i in range(s.pairs_per_step)]
            record = self._step(policy, reference, tokenizer, info, label_ids, labels, batch, optimizer, trainable)
            record = {"step": step + 1, **record, "seconds": round(time.monotonic() - started, 1)}
            result.curve.append(record)
            result.steps = step + 1
            self.log(record)
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        policy.save_pretrained(out_dir)
        tokenizer.save_pretrained(out_dir)
        StudentInfo(info.base_model_dir, info.labels, info.doc_words, info.adapter, info.fusion_weight,
                    info.score_with).write(out_dir)
        result.seconds = time.monotonic() - started
        return result

    def _step(self, policy, reference, tokenizer, info, label_ids, labels, batch, optimizer, trainable) -> dict:
        s, device = self.settings, self.precision.device
        prompts = [explain_prefix(e.query, e.document, info.doc_words) for e in batch for _ in range(s.samples_per_pair)]
        policy.eval()
        explanations = generate_explanations(policy, tokenizer, prompts, s.max_new_tokens, len(prompts),
                                             self.precision, temperature=s.temperature)
        examples = [e for e in batch for _ in range(s.samples_per_pair)]
        with torch.no_grad(), self.precision.autocast():
            scored = [explain_text(e.query, e.document, x, info.labels[0], info.doc_words)
                      for e, x in zip(examples, explanations)]
            logits = label_logits(policy, encode(tokenizer, scored, device), label_ids)
        expected = expected_label(logits, info.labels)
        gold = torch.tensor([e.label for e in examples], device=device)
        rewards = label_reward(expected, gold, int(labels.max())).view(len(batch), s.samples_per_pair)
        advantages = group_advantages(rewards).flatten()

        completions = [f"{p} {x}" for p, x in zip(prompts, explanations)]
        encoded = encode(tokenizer, completions, device)
        prompt_lengths = [len(tokenizer(p)["input_ids"]) for p in prompts]
        policy.train()
        with self.precision.autocast():
            token_log_probs, rows = target_log_probs(policy, encoded, prompt_lengths)
            with torch.no_grad():
                reference_log_probs, _ = target_log_probs(reference, encoded, prompt_lengths)
        counts = torch.zeros(len(completions), device=device).index_add(0, rows, torch.ones_like(token_log_probs)).clamp(min=1)
        per_sequence = torch.zeros(len(completions), device=device).index_add(0, rows, token_log_probs) / counts
        kl = torch.zeros(len(completions), device=device).index_add(
            0, rows, kl_k3(token_log_probs, reference_log_probs)) / counts
        loss = -(advantages.detach() * per_sequence).mean() + s.kl_weight * kl.mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(trainable, 1.0)
        optimizer.step()
        record = {"loss": float(loss.detach()), "reward": float(rewards.mean()), "kl": float(kl.detach().mean()),
                  "label_accuracy": float((labels[logits.argmax(dim=-1)] == gold).float().mean())}
        if not all(math.isfinite(v) for v in record.values()):
            raise FloatingPointError(f"non-finite RL step: {record}")
        return record
