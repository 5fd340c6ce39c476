"""R2R student training: epochs over query groups with R2R's pairwise, listwise and generation
losses plus the label token's cross-entropy (pointwise, which keeps the label distribution from
collapsing to one label, where the expected-label score stops carrying gradient), with warmup and
decay (to zero at the last step or at the time budget, whichever comes first), gradient
accumulation, dev-slice selection of the best checkpoint, early stopping and a time budget; in one
process or in several (DistributedDataParallel, one per GPU), with the same loss curve."""

from __future__ import annotations

import math
import os
import random
import re
import tempfile
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import torch
import torch.distributed as dist
import torch.nn.functional as F

from rr_assets.core.fusion import choose_fusion_weight
from rr_assets.core.metrics import compare, ndcg_at_10, per_query, reranked
from rr_assets.core.processes import die_with_parent
from rr_assets.core.reranker import StudentReranker
from rr_assets.core.settings import StudentSettings
from rr_assets.core.student_model import (
    Precision,
    StudentExample,
    StudentInfo,
    cast_weights,
    checkpoint_activations,
    encode,
    expected_label,
    explain_prefix,
    explain_text,
    generation_loss,
    label_logits,
    label_token_ids,
    load_base_model,
    load_tokenizer,
    merged_adapter,
    query_likelihood_ids,
    query_log_likelihoods,
    right_padded,
    score_text,
    token_batches,
)

# --- losses ------------------------------------------------------------------------------------

def preference_matrix(group: list[StudentExample], preferences: frozenset[tuple[str, str, str]]) -> torch.Tensor:
    """preferred[i, j]: document i beats document j for the group's query, by its label or by the
    teacher's (swap-consistent) comparison reasoning, given as (query, preferred, other)."""
    return torch.tensor([[a.label > b.label or (a.query_id, a.doc_id, b.doc_id) in preferences for b in group]
                         for a in group])


def pairwise_loss(scores: torch.Tensor, better: torch.Tensor) -> torch.Tensor:
    """RankNet: −log σ(s_i − s_j) over every pair with better[i, j] (0 when there is none)."""
    if not better.any():
        return scores.sum() * 0.0
    differences = scores[:, None] - scores[None, :]
    return -F.logsigmoid(differences[better]).mean()


def listwise_label_loss(scores: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """ListNet: cross-entropy between softmax(labels) and softmax(scores)."""
    target = torch.softmax(labels.float(), dim=-1)
    return -(target * torch.log_softmax(scores, dim=-1)).sum()


def listwise_order_loss(scores: torch.Tensor, order: list[int]) -> torch.Tensor:
    """Plackett–Luce (ListMLE): −log P(the teacher's order | scores), over the documents it ranked
    (`order` indexes `scores`, best first), averaged per position."""
    ordered = scores[order]
    tails = torch.logcumsumexp(ordered.flip(0), dim=0).flip(0)
    return -(ordered - tails)[:-1].mean()


def listwise_loss(scores: torch.Tensor, group: list[StudentExample],
                  teacher_orders: list[list[str]] | None) -> tuple[torch.Tensor, str]:
    """The teacher's orders that rank at least two of the group's documents (averaged: a query can
    have several lists, and several teachers may have ranked one list), else the labels."""
    losses = []
    for order in teacher_orders or []:
        position = {doc_id: i for i, doc_id in enumerate(order)}
        ranked = sorted((i for i, e in enumerate(group) if e.doc_id in position), key=lambda i: position[group[i].doc_id])
        if len(ranked) >= 2:
            losses.append(listwise_order_loss(scores, ranked))
    if losses:
        return torch.stack(losses).mean(), "teacher_order"
    labels = torch.tensor([e.label for e in group], device=scores.device)
    return listwise_label_loss(scores, labels), "labels"


# --- data --------------------------------------------------------------------------------------

def training_groups(examples: list[StudentExample], group_size: int, rng: random.Random) -> list[list[StudentExample]]:
    """Per query, one group per document with the query's top label: that document first, then up
    to `group_size` − 1 documents with lower labels, sampled. A query whose documents share one
    label still gives groups (of up to `group_size`): they teach the label, not a ranking."""
    by_query: dict[str, list[StudentExample]] = {}
    for ex in examples:
        by_query.setdefault(ex.query_id, []).append(ex)
    groups = []
    for query_id in sorted(by_query):
        items = sorted(by_query[query_id], key=lambda e: e.doc_id)
        top = max(e.label for e in items)
        lower = [e for e in items if e.label < top]
        if not lower:
            rng.shuffle(items)
            groups += [items[i : i + group_size] for i in range(0, len(items), group_size)]
            continue
        for best in (e for e in items if e.label == top):
            groups.append([best, *rng.sample(lower, min(len(lower), group_size - 1))])
    rng.shuffle(groups)
    return groups


@dataclass(frozen=True)
class DevSet:
    """Dev-slice queries for model selection: top candidates as (doc id, text, first-stage score)."""

    queries: dict[str, str]
    candidates: dict[str, list[tuple[str, str, float]]]
    qrels: dict[str, dict[str, int]]

    def first_stage_run(self) -> dict[str, dict[str, float]]:
        return {q: {d: s for d, _, s in docs} for q, docs in self.candidates.items()}


def dev_scores(reranker, dev: DevSet, batch_size: int) -> dict[str, dict[str, float]]:
    """A reranker's (anything with `score(pairs, batch_size)`) scores of the dev slice's candidates."""
    keys = [(q, d) for q in sorted(dev.candidates) for d, _, _ in dev.candidates[q]]
    pairs = [(dev.queries[q], text) for q in sorted(dev.candidates) for _, text, _ in dev.candidates[q]]
    scores: dict[str, dict[str, float]] = {}
    for (q, d), value in zip(keys, reranker.score(pairs, batch_size)):
        scores.setdefault(q, {})[d] = value
    return scores


@dataclass(frozen=True)
class DevComparison:
    """A reranker against the first stage on the dev slice: nDCG@10 of each, and the paired t-test p."""

    ndcg: float
    first_stage_ndcg: float
    p_value: float


def compare_on_dev(dev: DevSet, scores: dict[str, dict[str, float]]) -> DevComparison:
    """How the first stage reranked by `scores` compares with it on the dev slice."""
    first_stage = dev.first_stage_run()
    run = reranked(first_stage, scores)
    gain = compare(per_query(dev.qrels, run), per_query(dev.qrels, first_stage))
    return DevComparison(ndcg_at_10(dev.qrels, run), ndcg_at_10(dev.qrels, first_stage), gain.p_value_t)


def evaluate_on_dev(reranker, dev: DevSet, batch_size: int) -> DevComparison:
    """The dev slice's first stage reranked by `reranker`, against the first stage alone."""
    return compare_on_dev(dev, dev_scores(reranker, dev, batch_size))


@dataclass
class TrainResult:
    optimizer_steps: int = 0
    epochs: float = 0.0
    seconds: float = 0.0
    precision: str = ""
    trainable_parameters: int = 0
    stop_reason: str = "finished"
    listwise_groups: dict[str, int] = field(default_factory=dict)  # groups trained per listwise target
    curve: list[dict] = field(default_factory=list)
    dev_curve: list[dict] = field(default_factory=list)
    best_step: int = 0
    best_dev_ndcg: float | None = None
    first_stage_dev_ndcg: float | None = None
    first_stage_dev_p: float | None = None  # paired t-test p of the kept checkpoint against the first stage on dev
    fusion_weight: float | None = None
    fusion_dev_ndcg: float | None = None
    budget_note: str = ""  # set when the time budget covers less than an epoch

    @property
    def listwise_target(self) -> str:
        """Which listwise target trained: the teacher's window order, the direct labels, or both
        (groups the teacher's windows ranked fewer than two documents of fall back to the labels)."""
        ordered, labelled = self.listwise_groups.get("teacher_order", 0), self.listwise_groups.get("labels", 0)
        if ordered and labelled:
            return f"teacher window order ({ordered} groups), direct labels ({labelled} groups)"
        return "teacher window order" if ordered else "direct labels"

    @property
    def kept_untrained(self) -> bool:
        """Checkpoint selection kept the untrained model: no evaluation after step 0 beat it on the
        dev slice, so the student learned nothing the dev slice rewards."""
        return bool(self.dev_curve) and self.best_step == 0

    @property
    def below_first_stage(self) -> bool:
        """The kept checkpoint, reranking alone, ranks the dev slice worse than the first stage."""
        return None not in (self.best_dev_ndcg, self.first_stage_dev_ndcg) and (
            self.best_dev_ndcg < self.first_stage_dev_ndcg)


# --- one forward pass, and the processes that run them ----------------------------------------

class _PassLosses(torch.nn.Module):
    """One forward pass's losses over a batch of query groups, and the listwise target each group
    trained. A module, because DistributedDataParallel averages the gradients of what runs in its
    forward (the student's own forward is reached through its decoder, not its `forward`)."""

    def __init__(self, model, tokenizer, label_ids: list[int], labels: tuple[int, ...], settings: StudentSettings,
                 device: torch.device):
        super().__init__()
        self.model, self.tokenizer, self.label_ids, self.labels = model, tokenizer, label_ids, labels
        self.settings, self.device = settings, device

    def forward(self, batch: list[list[StudentExample]], preferences: frozenset[tuple[str, str, str]],
                teacher_orders: dict[str, list[list[str]]]) -> tuple[dict[str, torch.Tensor], list[str]]:
        s, model, tokenizer = self.settings, self.model, self.tokenizer
        if s.score_with == "query_likelihood":
            ids, prompt_lengths = query_likelihood_ids(tokenizer, [(e.query, e.document) for g in batch for e in g],
                                                       s.student_doc_words)
            scores = self._by_tokens(ids, lambda padded, rows: query_log_likelihoods(
                model, padded, [prompt_lengths[i] for i in rows]))
            pointwise = scores.sum() * 0.0  # no label head to train
        else:
            texts = [score_text(e.query, e.document, e.label, s.student_doc_words) for g in batch for e in g]
            logits = self._by_tokens(tokenizer(texts)["input_ids"],
                                     lambda padded, rows: label_logits(model, padded, self.label_ids))
            scores = expected_label(logits, self.labels)
            pointwise = F.cross_entropy(logits, torch.tensor([self.labels.index(e.label) for g in batch for e in g],
                                                             device=logits.device))
        pairwise, listwise, listwise_targets, offset = [], [], [], 0
        for group in batch:
            group_scores = scores[offset : offset + len(group)]
            offset += len(group)
            pairwise.append(pairwise_loss(group_scores, preference_matrix(group, preferences).to(scores.device)))
            value, target = listwise_loss(group_scores, group, teacher_orders.get(group[0].query_id))
            listwise.append(value)
            listwise_targets.append(target)
        explained = [e for g in batch for e in [x for x in g if x.explanation][: s.generation_docs_per_group]]
        if explained and s.generation_weight > 0:
            gen_texts = [explain_text(e.query, e.document, e.explanation, e.label, s.student_doc_words) for e in explained]
            prompt_lengths = [len(tokenizer(explain_prefix(e.query, e.document, s.student_doc_words))["input_ids"])
                              for e in explained]
            generation = generation_loss(model, encode(tokenizer, gen_texts, self.device), prompt_lengths)
        else:
            generation = scores.sum() * 0.0
        return {"pointwise": pointwise, "pairwise": torch.stack(pairwise).mean(),
                "listwise": torch.stack(listwise).mean(), "generation": generation}, listwise_targets

    def _by_tokens(self, ids: list[list[int]], forward: Callable[[dict, list[int]], torch.Tensor]) -> torch.Tensor:
        """`forward(padded batch, its rows)` over the token id rows, in length-sorted passes of at most
        student.train_token_budget padded tokens (`token_batches`; 0 = one pass), its rows back in order."""
        passes = token_batches([len(row) for row in ids], len(ids), self.settings.train_token_budget)
        outputs = [forward(right_padded([ids[i] for i in rows], self.tokenizer.pad_token_id, self.device), rows)
                   for rows in passes]
        order = torch.tensor([i for rows in passes for i in rows], device=outputs[0].device)
        return torch.cat(outputs)[torch.argsort(order)]


@dataclass(frozen=True)
class _Ranks:
    """The training processes this one is among (an initialised torch.distributed group), or itself
    alone. Only control values travel here (rank 0's stop decisions and clock, the logged losses);
    gradients are DistributedDataParallel's."""

    rank: int = 0
    size: int = 1
    device: torch.device = torch.device("cpu")  # where collectives' tensors live: the GPU under nccl

    @classmethod
    def joined(cls, device: torch.device) -> _Ranks:
        if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
            return cls()
        return cls(dist.get_rank(), dist.get_world_size(), device if dist.get_backend() == "nccl" else torch.device("cpu"))

    @property
    def leader(self) -> bool:
        return self.rank == 0

    def from_leader(self, value: float) -> float:
        """Rank 0's value, on every rank."""
        if self.size == 1:
            return value
        tensor = torch.tensor([float(value)], dtype=torch.float64, device=self.device)
        dist.broadcast(tensor, src=0)
        return tensor.item()

    def summed(self, values: list[float]) -> list[float]:
        """Each value summed over the ranks."""
        if self.size == 1:
            return values
        tensor = torch.tensor(values, dtype=torch.float64, device=self.device)
        dist.all_reduce(tensor)
        return tensor.tolist()


class _DevSelection:
    """Model selection on the dev slice while a student trains: each evaluation scores the slice with
    the model being trained (on rank 0; the adapter merged for it, unless the base is bf16: merging
    into bf16 weights and out again would round them) and keeps the trainable state that scores
    best; training goes on while `student.patience` allows."""

    def __init__(self, dev: DevSet, student: StudentReranker, settings: StudentSettings, ranks: _Ranks,
                 result: TrainResult, merge: bool, log: Callable[[dict], None], started: float):
        self.dev, self.student, self.settings, self.ranks, self.result = dev, student, settings, ranks, result
        self.merge, self.log, self.started = merge, log, started
        self.first_stage = dev.first_stage_run()
        self.trainable = {name for name, p in student.model.named_parameters() if p.requires_grad}
        self.best_state: dict[str, torch.Tensor] | None = None
        self.best_scores: dict[str, dict[str, float]] | None = None
        self.stale, self.evaluated_at = 0, None
        result.first_stage_dev_ndcg = ndcg_at_10(dev.qrels, self.first_stage)

    def evaluate(self, step: int) -> bool:
        """Score the dev slice at `step`; keep the state if it is the best so far. False = stop."""
        model, ranks = self.student.model, self.ranks
        self.evaluated_at = step
        model.eval()
        # on every rank: unmerging leaves the same float rounding in each replica
        with merged_adapter(model) if self.merge else nullcontext():
            scores = dev_scores(self.student, self.dev, self.settings.score_batch_size) if ranks.leader else None
        model.train()
        if not ranks.leader:
            return bool(ranks.from_leader(True))
        value, result = ndcg_at_10(self.dev.qrels, reranked(self.first_stage, scores)), self.result
        if result.best_dev_ndcg is None or value > result.best_dev_ndcg:
            result.best_dev_ndcg, result.best_step, self.best_scores, self.stale = value, step, scores, 0
            self.best_state = {k: v.detach().clone() for k, v in model.state_dict().items() if k in self.trainable}
        else:
            self.stale += 1
        record = {"step": step, "dev_nDCG@10": value, "best": result.best_dev_ndcg,
                  "seconds": round(time.monotonic() - self.started, 1)}
        result.dev_curve.append(record)
        self.log(record)
        return bool(ranks.from_leader(self.stale < self.settings.patience))

    def keep_best(self) -> None:
        """Back to the best state; its dev scores decide the paired test against the first stage
        and the fusion weight."""
        if self.best_state is not None:
            self.student.model.load_state_dict(self.best_state, strict=False)
        if self.best_scores is not None:
            self.result.first_stage_dev_p = compare_on_dev(self.dev, self.best_scores).p_value
            self.result.fusion_weight, self.result.fusion_dev_ndcg = choose_fusion_weight(
                self.dev.qrels, self.first_stage, self.best_scores, self.settings.fusion_max_p)


def training_processes(settings: StudentSettings, device: torch.device) -> int:
    """How many processes train (student.processes; 0 = one per visible GPU), checked against the
    GPUs there are and the passes each step can share out."""
    gpus = torch.cuda.device_count() if device.type == "cuda" else 0
    processes = settings.processes or max(1, gpus)
    if device.type == "cuda" and processes > gpus:
        raise ValueError(f"student.processes: {processes} training processes, but {gpus} GPUs are visible")
    if settings.gradient_accumulation % processes:
        raise ValueError(f"student.gradient_accumulation ({settings.gradient_accumulation}) must be a multiple of the "
                         f"{processes} training processes: each runs gradient_accumulation / processes of every step's "
                         f"forward passes of batch_groups groups (e.g. batch_groups {settings.batch_groups}, "
                         f"gradient_accumulation {processes * max(1, settings.gradient_accumulation // processes)})")
    return processes


def _train_rank(rank: int, size: int, parent: int, rendezvous: str, trainer: tuple, train_args: tuple, messages) -> None:
    """One of the processes StudentTrainer.train starts (student.processes), dying with it: GPU
    `rank` under nccl, or a share of the CPU's threads under gloo. Rank 0 sends its log records and
    its result."""
    die_with_parent(parent)
    base_model_dir, settings, labels, precision = trainer
    if precision.device.type == "cuda":
        torch.cuda.set_device(rank)
        precision = Precision(torch.device("cuda", rank), precision.bf16)
    else:
        torch.set_num_threads(max(1, torch.get_num_threads() // size))
    dist.init_process_group("nccl" if precision.device.type == "cuda" else "gloo", init_method=rendezvous, rank=rank,
                            world_size=size, timeout=timedelta(hours=1))
    try:
        log = (lambda kind, record: messages.put((kind, record))) if rank == 0 else None
        result = StudentTrainer(base_model_dir, settings, labels, precision, log).train(*train_args)
        if rank == 0:
            messages.put(("result", result))
    finally:
        dist.destroy_process_group()


# --- the trainer -------------------------------------------------------------------------------

BUDGET_PROJECTION_STEPS = 5  # optimizer steps timed before the budget's reach is projected

def learning_rate_factor(step: int, warmup_steps: int, total_steps: int, budget_used: float) -> float:
    """The peak learning rate's multiplier at optimizer step `step`: linear warmup, then linear
    decay that reaches zero at `total_steps` or when the time budget is used up (`budget_used`, the
    share of it spent; 0 without one), whichever comes first. A run that its budget cuts short
    therefore still ends annealed (budgeted training, Li et al., 2020), not at a high rate."""
    if step < warmup_steps:
        return step / warmup_steps
    by_steps = (total_steps - step) / max(1, total_steps - warmup_steps)
    return max(0.0, min(by_steps, 1.0 - budget_used))


def budget_shortfall(steps_done: int, loop_seconds: float, seconds_left: float, steps_planned: int,
                     steps_per_epoch: int, train_queries: int) -> str | None:
    """What the time budget will cover at the pace of the steps so far, in words, when that is less
    than the planned steps and less than one epoch; None otherwise."""
    per_step = loop_seconds / max(1, steps_done)
    reachable = steps_done + int(seconds_left / per_step)
    if reachable >= min(steps_planned, steps_per_epoch):
        return None
    share = reachable / steps_per_epoch
    return (f"the time budget covers about {reachable} optimizer steps, {share:.2f} of an epoch, at {per_step:.1f} s "
            f"per step: raise student.time_budget_minutes, or set student.max_train_queries to about "
            f"{max(1, int(train_queries * share))} (of {train_queries}) to train one whole epoch")


def _adapted_model(base_model_dir: str | Path, settings: StudentSettings, labels: tuple[int, ...], precision: Precision):
    """The model to train: the base with a fresh LoRA adapter (or its transformer weights to train),
    or the checkpoint `settings.init_from` to train on; only the top `settings.trained_layers`
    transformer blocks train (0 = all), so backward stops below them."""
    layers = _trained_layer_range(base_model_dir, settings.trained_layers)
    if settings.init_from:
        info = StudentInfo.read(settings.init_from)
        if info.labels != labels:
            raise ValueError(f"student.init_from: {settings.init_from} scores labels {list(info.labels)}, "
                             f"this variant {list(labels)}")
        if info.adapter == "lora":
            from peft import PeftModel

            model = PeftModel.from_pretrained(load_base_model(base_model_dir, precision), settings.init_from,
                                              is_trainable=True)
        else:
            model = load_base_model(settings.init_from, precision)
    elif settings.lora_r:
        from peft import LoraConfig, get_peft_model

        lora = LoraConfig(r=settings.lora_r, lora_alpha=settings.lora_alpha, target_modules=list(settings.lora_targets),
                          layers_to_transform=list(layers), lora_dropout=0.0, task_type="CAUSAL_LM")
        return get_peft_model(load_base_model(base_model_dir, precision), lora)
    else:
        model = load_base_model(base_model_dir, precision)
    adapter = hasattr(model, "peft_config")
    for name, parameter in model.named_parameters():
        block = _LAYER.search(name)
        in_trained_block = int(block.group(1)) in layers if block else not adapter  # the final norm is on top
        parameter.requires_grad = in_trained_block and (
            "lora_" in name if adapter else "embed_tokens" not in name and "lm_head" not in name)
    return model


_LAYER = re.compile(r"\.layers\.(\d+)\.")


def _trained_layer_range(base_model_dir: str | Path, trained_layers: int) -> range:
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(base_model_dir)
    total = getattr(config, "text_config", config).num_hidden_layers
    if trained_layers > total:
        raise ValueError(f"student.trained_layers: {trained_layers}, but the base model has {total} layers")
    return range(total - trained_layers if trained_layers > 0 else 0, total)


class StudentTrainer:
    """Trains a student from a base model folder; `log(kind, record)` receives every optimizer
    step ("train") and dev evaluation ("dev").

    Several processes (DistributedDataParallel): `student.processes` > 1 has `train` start them
    itself, or `train` runs in every process of an initialised torch.distributed group (torchrun,
    each process on its own current GPU). Every rank draws the same groups; each runs its share of
    every optimizer step's forward passes (gradient_accumulation / processes of them), and DDP
    averages the gradients, so a step sees the same global batch as one process and the loss curve
    is one process's. Rank 0 alone evaluates, logs and saves."""

    def __init__(self, base_model_dir: str | Path, settings: StudentSettings, labels: tuple[int, ...],
                 precision: Precision, log: Callable[[str, dict], None] | None = None):
        self.base_model_dir, self.settings, self.labels = str(base_model_dir), settings, labels
        self.precision, self.log = precision, log or (lambda kind, record: None)

    def train(self, examples: list[StudentExample], out_dir: str | Path, dev: DevSet | None = None,
              preferences: frozenset[tuple[str, str, str]] = frozenset(),
              teacher_orders: dict[str, list[list[str]]] | None = None) -> TrainResult:
        """Train, keep the best state by dev nDCG@10 (the last one without a dev set), save it to
        `out_dir` with its StudentInfo, and choose the fusion weight on the dev slice."""
        s, teacher_orders = self.settings, teacher_orders or {}
        ranks = _Ranks.joined(self.precision.device)
        if ranks.size == 1 and training_processes(s, self.precision.device) > 1:
            return self._train_in_processes(examples, out_dir, dev, preferences, teacher_orders)
        if ranks.size > 1 and s.gradient_accumulation % ranks.size:
            raise ValueError(f"student.gradient_accumulation ({s.gradient_accumulation}) must be a multiple of the "
                             f"{ranks.size} training processes")
        log = self.log if ranks.leader else lambda kind, record: None
        torch.manual_seed(s.seed)
        started = time.monotonic()
        budget_seconds = s.time_budget_minutes * 60

        def budget_used() -> float:
            """Share of the time budget spent (past 1 = over it); 0 without a budget."""
            return (time.monotonic() - started) / budget_seconds if budget_seconds > 0 else 0.0

        tokenizer = load_tokenizer(self.base_model_dir)
        model = _adapted_model(self.base_model_dir, s, self.labels, self.precision)
        # a LoRA adapter's frozen base in bf16 on CUDA (Precision.weight_dtype), its matrices in float32
        frozen_bf16 = hasattr(model, "peft_config") and self.precision.weight_dtype == torch.bfloat16
        if frozen_bf16:
            cast_weights(model, torch.bfloat16, frozen_only=True)
        if s.gradient_checkpointing:
            checkpoint_activations(model)
        trainable = [p for p in model.parameters() if p.requires_grad]
        result = TrainResult(precision=self.precision.name, trainable_parameters=sum(p.numel() for p in trainable))
        label_ids = label_token_ids(tokenizer, self.labels)
        rng = random.Random(s.seed)
        groups_per_epoch = len(training_groups(examples, s.group_size, random.Random(s.seed)))
        if not groups_per_epoch:
            raise ValueError("no training examples: the training table of this variant is empty")
        per_step = s.batch_groups * s.gradient_accumulation
        total_steps = s.max_steps if s.max_steps > 0 else s.epochs * math.ceil(groups_per_epoch / per_step)
        optimizer = torch.optim.AdamW(trainable, lr=s.learning_rate, weight_decay=0.0)
        warmup_steps = int(s.warmup_ratio * total_steps)
        step_budget_used = 0.0  # several ranks: rank 0's clock at the step's start, the same on each
        schedule = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda step: learning_rate_factor(step, warmup_steps, total_steps,
                                                         budget_used() if ranks.size == 1 else step_budget_used))
        pass_losses = _PassLosses(model, tokenizer, label_ids, self.labels, s, self.precision.device)
        if ranks.size > 1:
            from torch.nn.parallel import DistributedDataParallel

            pass_losses = DistributedDataParallel(pass_losses)
        selection = None
        if dev:
            student = StudentReranker(model, tokenizer, self._info(model), self.precision, s.score_token_budget)
            selection = _DevSelection(dev, student, s, ranks, result, merge=not frozen_bf16,
                                      log=lambda record: log("dev", record), started=started)
            selection.evaluate(0)
        model.train()
        loop_started, steps_per_epoch = time.monotonic(), math.ceil(groups_per_epoch / per_step)
        step, epoch, pairs_seen = 0, 0, 0
        window = {"loss": 0.0, "pointwise": 0.0, "pairwise": 0.0, "listwise": 0.0, "generation": 0.0}
        listwise_groups: dict[str, int] = {}
        stop = None
        while step < total_steps and not stop:
            groups = training_groups(examples, s.group_size, rng)
            batches = [groups[start : start + s.batch_groups] for start in range(0, len(groups), s.batch_groups)]
            for first in range(0, len(batches), s.gradient_accumulation):
                step_batches = batches[first : first + s.gradient_accumulation]  # the epoch's last step may have fewer
                passes = len(step_batches)
                mine = step_batches[ranks.rank :: ranks.size]
                # a rank without a pass of its own (a short last step) runs one with weight 0, to take part in
                # the gradients' all-reduce
                for i, batch in enumerate(mine or step_batches[:1]):
                    if ranks.size == 1 or i == 0:
                        step_budget_used = ranks.from_leader(budget_used())
                        if step_budget_used > 1.0:
                            stop = "time budget"
                            break
                    last = i == len(mine) - 1 or not mine
                    with nullcontext() if ranks.size == 1 or last else pass_losses.no_sync():
                        with self.precision.autocast():
                            losses, targets = pass_losses(batch, preferences, teacher_orders)
                        loss = (s.pointwise_weight * losses["pointwise"] + s.pairwise_weight * losses["pairwise"]
                                + s.listwise_weight * losses["listwise"] + s.generation_weight * losses["generation"])
                        (loss / passes * (ranks.size if mine else 0)).backward()  # DDP divides by the ranks
                    if mine:
                        for key, value in [("loss", loss), *losses.items()]:
                            window[key] += float(value.detach()) / passes
                        for target in targets:
                            listwise_groups[target] = listwise_groups.get(target, 0) + 1
                if stop:
                    break
                pairs_seen += sum(len(g) for batch in step_batches for g in batch)
                torch.nn.utils.clip_grad_norm_(trainable, 1.0)
                optimizer.step()
                schedule.step()
                optimizer.zero_grad(set_to_none=True)
                step += 1
                window = dict(zip(window, ranks.summed(list(window.values()))))
                done = min(len(groups), (first + passes) * s.batch_groups)
                record = {"step": step, "epoch": round(epoch + done / len(groups), 3),
                          "lr": schedule.get_last_lr()[0], **window,
                          "pairs_per_s": round(pairs_seen / (time.monotonic() - started), 2)}
                if not all(math.isfinite(v) for v in window.values()):
                    raise FloatingPointError(f"non-finite loss at step {step}: {record}")
                result.curve.append(record)
                log("train", record)
                if budget_seconds > 0 and step == BUDGET_PROJECTION_STEPS:
                    note = budget_shortfall(step, time.monotonic() - loop_started, budget_seconds * (1 - budget_used()),
                                            total_steps, steps_per_epoch, len({e.query_id for e in examples}))
                    if note:
                        result.budget_note = note
                        log("budget", {"step": step, "note": note})
                window = dict.fromkeys(window, 0.0)
                if selection and step % s.eval_every == 0 and not selection.evaluate(step):
                    stop = "early stopping"
                if stop or step == total_steps:
                    break
            epoch += 1
        if ranks.size > 1:
            kinds = ("teacher_order", "labels")
            counts = ranks.summed([float(listwise_groups.get(kind, 0)) for kind in kinds])
            listwise_groups = {kind: int(n) for kind, n in zip(kinds, counts) if n}
        result.listwise_groups = listwise_groups
        result.optimizer_steps, result.stop_reason = step, stop or "finished"
        result.epochs = result.curve[-1]["epoch"] if result.curve else 0.0
        if selection and selection.evaluated_at != step and step:
            selection.evaluate(step)
        if not ranks.leader:
            return result
        if selection:
            selection.keep_best()
        self._save(model, tokenizer, Path(out_dir), result)
        result.seconds = time.monotonic() - started
        return result

    def _train_in_processes(self, *train_args) -> TrainResult:
        """`train` in student.processes processes (one per GPU, or gloo on the CPU), started here and
        stopped with it; rank 0's log records reach `log` here, and its result is returned."""
        import torch.multiprocessing as mp

        processes = training_processes(self.settings, self.precision.device)
        messages = mp.get_context("spawn").SimpleQueue()
        result = None
        with tempfile.TemporaryDirectory(prefix="rr-ddp-") as folder:
            trainer = (self.base_model_dir, self.settings, self.labels, self.precision)
            context = mp.start_processes(_train_rank, (processes, os.getpid(), f"file://{folder}/rendezvous", trainer,
                                                       train_args, messages), nprocs=processes, join=False,
                                         start_method="spawn")
            try:
                while True:
                    finished = context.join(timeout=0.2)
                    while not messages.empty():
                        kind, record = messages.get()
                        if kind == "result":
                            result = record
                        else:
                            self.log(kind, record)
                    if finished:
                        break
            finally:
                for process in context.processes:
                    if process.is_alive():
                        process.kill()
                        process.join()
        if result is None:
            raise RuntimeError(f"none of the {processes} training processes returned a result")
        return result

    def _info(self, model, fusion_weight: float | None = None) -> StudentInfo:
        return StudentInfo(self.base_model_dir, self.labels, self.settings.student_doc_words,
                           "lora" if hasattr(model, "peft_config") else "full", fusion_weight, self.settings.score_with)

    def _save(self, model, tokenizer, out_dir: Path, result: TrainResult) -> None:
        out_dir.mkdir(parents=True, exist_ok=True)
        model.save_pretrained(out_dir)
        tokenizer.save_pretrained(out_dir)
        self._info(model, result.fusion_weight).write(out_dir)
