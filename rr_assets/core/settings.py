"""The settings of every stage, each defined once with a one-line help text. The config loader
reads them from YAML, the Dagster resources hold them and the stage code takes them as they are."""

from __future__ import annotations

from dataclasses import MISSING, dataclass, field, fields, replace
from typing import Literal


def setting(default, help: str):
    """A settings field with its help text (shown by `rr settings`)."""
    if isinstance(default, (dict, list)):
        return field(default_factory=lambda: type(default)(default), metadata={"help": help})
    return field(default=default, metadata={"help": help})


def help_lines(cls) -> list[str]:
    """`name (default): help` for each field of a settings class."""
    lines = []
    for f in fields(cls):
        default = f.default if f.default is not MISSING else f.default_factory()
        lines.append(f"{f.name} ({default!r}): {f.metadata.get('help', '')}")
    return lines


@dataclass(frozen=True)
class RetrievalSettings:
    k1: float = setting(0.9, "BM25 term-frequency saturation")
    b: float = setting(0.4, "BM25 length normalisation")
    first_stage_depth: int = setting(100, "candidates kept per query from the first stage (BM25 or a given run)")


@dataclass(frozen=True)
class SplitSettings:
    eval_percent: int = setting(40, "share of judged queries held out for evaluation when a collection has one qrels split")
    dev_percent: int = setting(15, "share of judged training queries set aside as the dev slice for model selection")


@dataclass(frozen=True)
class TeacherSettings:
    base_url: str = setting("", "OpenAI-compatible endpoint; empty (and no endpoints) starts the embedded llama.cpp server")
    endpoints: tuple[str, ...] = setting((), "more OpenAI-compatible base URLs serving the same model (replicas): "
                                             "requests spread over all of them, with concurrency and a breaker each")
    embedded_servers: int = setting(1, "embedded llama.cpp servers side by side (without base_url); they share the cores")
    model: str = setting("gemma-3-270m", "model name sent to the endpoint (and the key for prices)")
    api_key_env: str = setting("RR_TEACHER_API_KEY", "environment variable that holds the API key")
    prompt_variants: tuple[str, ...] = setting((), "variants to run; empty = every folder in prompts_dir")
    judge_depth: int = setting(10, "top first-stage candidates per query that the teacher judges")
    train_queries: int = setting(40, "training queries the teacher judges (stable pseudo-random choice); -1 = all")
    eval_queries: int = setting(20, "evaluation queries the teacher judges, for its own report row; -1 = all")
    reasoning_queries: int = setting(-1, "queries per split that also get comparison and listwise reasoning; -1 = as direct")
    concurrency: int = setting(4, "requests in flight at once, per endpoint")
    timeout_s: float = setting(120.0, "seconds to wait for one answer")
    max_retries: int = setting(4, "retries of a failed request (429, 5xx, timeouts) with backoff")
    breaker_failures: int = setting(8, "consecutive connection failures after which an endpoint gets no new request")
    seed: int = setting(0, "sampling seed sent with every request, and the seed of pair sampling")
    min_agreement: float = setting(0.3, "agreement with qrels under which the agreement check warns")
    max_swap_inconsistency: float = setting(0.5, "share of swapped comparisons allowed to flip before the check warns")
    prices: dict = setting({}, "per model, price per 1,000 tokens: {model: {prompt: x, completion: y}}")
    per_variant: dict = setting({}, "budget overrides per prompt variant: {variant: {judge_depth, train_queries, "
                                    "eval_queries, reasoning_queries}}")

    def price(self, kind: str) -> float:
        return float(self.prices.get(self.model, {}).get(kind, 0.0))

    def for_variant(self, variant: str) -> TeacherSettings:
        """These settings with the budget overrides of one prompt variant applied."""
        overrides = self.per_variant.get(variant, {})
        unknown = set(overrides) - set(BUDGET_KEYS)
        if unknown:
            raise ValueError(f"teacher.per_variant.{variant}: only {list(BUDGET_KEYS)} can differ per variant, "
                             f"not {sorted(unknown)}")
        return replace(self, **overrides, per_variant={})


BUDGET_KEYS = ("judge_depth", "train_queries", "eval_queries", "reasoning_queries")


@dataclass(frozen=True)
class StudentSettings:
    base_model: str = setting("embedded", "'embedded' (Gemma 3 270M from the GGUF wheel), a local folder or a hub id")
    precision: str = setting("auto", "auto (bf16 autocast on CUDA and where the CPU runs bf16 fast), float32 or bfloat16")
    lora_r: int = setting(16, "LoRA rank; 0 = full fine-tuning of the transformer layers (embeddings frozen)")
    lora_alpha: int = setting(32, "LoRA scaling numerator (scale = lora_alpha / lora_r)")
    lora_targets: tuple[str, ...] = setting(("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"),
                                            "linear layers that get LoRA adapters")
    trained_layers: int = setting(0, "only the top N transformer blocks train (their LoRA adapters, or their weights); "
                                     "backward stops below them, so a step costs less; 0 = all blocks")
    init_from: str = setting("", "a student checkpoint folder to go on training (its adapter, labels and base model "
                                 "kind); relative to the config file; '' = a fresh adapter")
    epochs: int = setting(1, "passes over the training groups")
    max_steps: int = setting(0, "optimizer steps to train, over as many epochs as that takes (overrides epochs; the same "
                                "count on every machine, unlike the time budget); 0 = epochs decide")
    learning_rate: float = setting(1e-4, "peak learning rate (AdamW), after linear warmup, then linear decay to zero "
                                         "at the last step or at the end of the time budget")
    warmup_ratio: float = setting(0.1, "share of optimizer steps spent warming the learning rate up")
    group_size: int = setting(8, "documents per query group: one of the query's best and lower-labelled ones")
    batch_groups: int = setting(2, "query groups per forward pass")
    gradient_accumulation: int = setting(4, "forward passes per optimizer step")
    score_with: Literal["label", "query_likelihood"] = setting(
        "label", "how score mode reads a pair: 'label' (the expected label at the label position, after a label head "
                 "trained pointwise) or 'query_likelihood' (log P(query | document): the base model's own prior, "
                 "trained by the ranking losses; no pointwise loss)")
    pointwise_weight: float = setting(1.0, "weight of the label token's cross-entropy in score mode (monoT5-style)")
    pairwise_weight: float = setting(1.0, "weight of R2R's pairwise (RankNet) loss")
    listwise_weight: float = setting(1.0, "weight of R2R's listwise loss (teacher window order, else labels)")
    generation_weight: float = setting(0.2, "weight of R2R's generation loss on the teacher's explanations")
    generation_docs_per_group: int = setting(2, "documents per group whose explanation is trained (best first)")
    student_doc_words: int = setting(128, "words of each document the student reads")
    hard_negative_depth: int = setting(20, "grounded variants: a training query's unjudged first-stage candidates to this "
                                           "rank train as non-relevant")
    max_train_queries: int = setting(-1, "training queries used (stable pseudo-random choice); -1 = all")
    eval_every: int = setting(50, "optimizer steps between dev-slice evaluations")
    patience: int = setting(3, "dev evaluations without improvement before training stops")
    dev_queries: int = setting(60, "dev-slice queries scored at each evaluation; -1 = all")
    time_budget_minutes: float = setting(0.0, "stop training cleanly after this long, keeping the best checkpoint; 0 = no limit")
    promotion_max_p: float = setting(0.05, "a candidate takes the registry's champion alias only when, on the dev "
                                           "slice, the student alone ranks above the first stage with a paired t-test "
                                           "p below this (as well as beating the champion); 1.0 = any gain")
    fusion_max_p: float = setting(1.0, "the fused system (student+first_stage) is used only when its dev gain over the "
                                       "first stage has a paired t-test p below this; else its weight is 0 (the first "
                                       "stage alone); 1.0 = any gain")
    rerank_depth: int = setting(20, "top first-stage candidates the student reranks (dev and evaluation)")
    score_batch_size: int = setting(16, "pairs per forward pass when scoring")
    score_token_budget: int = setting(0, "tokens (longest pair × pairs) per scoring forward pass over length-sorted "
                                         "pairs; 0 = sized from free GPU memory on CUDA, score_batch_size pairs on the CPU")
    train_token_budget: int = setting(0, "tokens (longest text × texts) per training forward pass: a batch's texts "
                                         "go through in length-sorted passes within it, each padded only to its own "
                                         "longest text; the same losses; 0 = one pass per batch")
    seed: int = setting(0, "seed of initialisation, grouping and sampling")
    gradient_checkpointing: bool = setting(False, "recompute each block's activations in the backward pass instead of "
                                                  "keeping them: much less memory for larger batches on a GPU, for "
                                                  "about a third more compute; the same gradients")
    processes: int = setting(1, "training processes (PyTorch DistributedDataParallel), e.g. one per GPU of a multi-GPU "
                                "node, gloo on the CPU; each runs gradient_accumulation / processes of every "
                                "optimizer step's forward passes, so the global batch and the loss curve stay one "
                                "process's; 0 = one per visible GPU")


@dataclass(frozen=True)
class RLSettings:
    enabled: bool = setting(True, "refine the distilled student with GRPO (InteRank's second stage)")
    pairs: int = setting(32, "training pairs sampled for refinement")
    samples_per_pair: int = setting(4, "explanations sampled per pair (the GRPO group)")
    steps: int = setting(8, "policy-gradient steps")
    pairs_per_step: int = setting(4, "pairs per step")
    learning_rate: float = setting(5e-5, "learning rate of the refinement")
    kl_weight: float = setting(0.05, "weight of the KL penalty to the distilled policy")
    temperature: float = setting(0.8, "sampling temperature of the explanations")
    max_new_tokens: int = setting(40, "longest sampled explanation, in tokens")
    time_budget_minutes: float = setting(0.0, "stop cleanly after this long; 0 = no limit")


@dataclass(frozen=True)
class ExplainSettings:
    queries: int = setting(20, "evaluation queries reranked in explain mode as well (a fixed, stated subset); 0 = none")
    max_new_tokens: int = setting(48, "longest generated explanation, in tokens")
    batch_size: int = setting(8, "pairs generated at once")
    quality_pairs: int = setting(40, "held-out pairs whose explanations are scored against the teacher's reasons "
                                     "(BLEU, ROUGE-L), for variants that hold reasons out")


@dataclass(frozen=True)
class ExecutionSettings:
    executor: Literal["in_process", "multiprocess", "celery"] = setting(
        "in_process", "Dagster executor of each run: in_process, multiprocess (each step in a process of its own) or "
                      "celery (each step on a worker of a Celery cluster, `celery -A dagster_celery.app worker`)")
    parallel_runs: int = setting(0, "partitions of one asset materialised side by side, each its own Dagster run in a "
                                    "process of its own, within the asset's pool; 0 = one per two cores, as free memory "
                                    "allows; 1 = one at a time, in the rr process")
    submit_to: str = setting("", "a Dagster webserver (`rr ui -c <this config>`, or a deployment's) to submit each run "
                                 "to: its run coordinator queues the run and its run launcher starts it, as a launch "
                                 "from the UI does, and rr follows it to the end; '' = rr executes its runs itself")
    automation: bool = setting(True, "the Dagster deployment's automation sensor starts running: a daemon (`rr ui`'s) "
                                     "refreshes whatever an update made stale; false = it starts stopped (a user "
                                     "starts it in the UI), for a deployment that `rr run --submit-to` drives alone")
    celery_broker: str = setting("redis://localhost:6379/0", "the Celery broker (and result backend) of the celery "
                                                              "executor; RR_CELERY_BROKER in the environment overrides it")
