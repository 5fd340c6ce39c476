"""Dagster resources: configured once (from the config file), never constructed inside assets."""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator
from urllib.parse import urlparse

import dagster as dg

from rr_assets.core.collections import Collection, load_beir
from rr_assets.core.llama_server import llama_cpp_server
from rr_assets.core.models import EMBEDDED, embedded_gguf, gguf_to_hf_folder
from rr_assets.core.prompts import PromptVariant, list_variants, load_variant
from rr_assets.core.teacher import TeacherEndpoint, TeacherUsage
from rr_assets.core.tracking import TrackedRun, mlflow_run
from rr_assets.core.training import TrainSettings
from rr_assets.core.warehouse import Warehouse


class RRHome(dg.ConfigurableResource):
    """Where runs write (RR_HOME): warehouse, indexes, TREC runs, checkpoints, reports."""

    path: str
    model_cache: str

    def dir(self, *parts: str) -> Path:
        folder = Path(self.path, *parts)
        folder.mkdir(parents=True, exist_ok=True)
        return folder

    def warehouse(self) -> Warehouse:
        return Warehouse(Path(self.path) / "warehouse.duckdb")


class CollectionSources(dg.ConfigurableResource):
    """Collection name → BEIR folder, and the qrels split to evaluate with."""

    folders: dict[str, str]
    qrels_splits: dict[str, str]

    def load(self, name: str) -> Collection:
        return load_beir(name, self.folders[name], self.qrels_splits.get(name, "test"))


class BM25Settings(dg.ConfigurableResource):
    k1: float = 0.9
    b: float = 0.4
    depth: int = 100


class TeacherResource(dg.ConfigurableResource):
    """Any OpenAI-compatible endpoint; with no base_url, the embedded llama.cpp server."""

    base_url: str = ""
    model: str = "gemma-3-270m"
    api_key_env: str = "RR_TEACHER_API_KEY"
    prompts_dir: str
    prompt_variants: list[str] = []
    depth: int = 10
    max_queries: int = 0
    concurrency: int = 4
    timeout_s: float = 120.0
    max_retries: int = 4
    seed: int = 0
    min_agreement: float = 0.3
    max_swap_inconsistency: float = 0.5
    price_per_1k_prompt_tokens: float = 0.0
    price_per_1k_completion_tokens: float = 0.0
    model_cache: str

    def endpoint_label(self) -> str:
        """Where the teacher runs, for records: "embedded" or the server's host (never a path or query,
        which could carry credentials)."""
        return urlparse(self.base_url).netloc.rsplit("@", 1)[-1] if self.base_url else "embedded"

    def variant(self, name: str) -> PromptVariant:
        return load_variant(self.prompts_dir, name)

    def variant_names(self) -> list[str]:
        """The configured variants, or every variant folder ("default" first); the first is primary."""
        if self.prompt_variants:
            return list(self.prompt_variants)
        return sorted(list_variants(self.prompts_dir), key=lambda name: name != "default")

    def cost(self, usage: TeacherUsage) -> float:
        """Estimated cost of the new calls of a run, from the configured prices of the model."""
        return (usage.prompt_tokens * self.price_per_1k_prompt_tokens
                + usage.completion_tokens * self.price_per_1k_completion_tokens) / 1000

    @contextmanager
    def endpoint(self, log_dir: Path) -> Iterator[TeacherEndpoint]:
        """The endpoint to call; starts (and afterwards stops) the embedded server when needed."""
        settings = dict(
            model=self.model, api_key=os.environ.get(self.api_key_env, ""), concurrency=self.concurrency,
            timeout_s=self.timeout_s, max_retries=self.max_retries, seed=self.seed,
        )
        if self.base_url:
            yield TeacherEndpoint(base_url=self.base_url, **settings)
            return
        gguf = embedded_gguf(self.model_cache)
        with llama_cpp_server(gguf, self.model, log_dir / "llama_server.log") as base_url:
            yield TeacherEndpoint(base_url=base_url, **settings)


class StudentSettings(dg.ConfigurableResource):
    base_model: str = EMBEDDED
    model_cache: str
    lora_r: int = 8
    lora_alpha: int = 16
    target_modules: list[str] = ["q_proj", "v_proj"]
    steps: int = 6
    learning_rate: float = 3e-4
    group_size: int = 4
    max_doc_words: int = 90
    alpha: float = 1.0
    beta: float = 1.0
    gamma: float = 1.0
    seed: int = 0
    rerank_depth: int = 10
    batch_size: int = 8

    def train_settings(self, labels: tuple[int, ...]) -> TrainSettings:
        return TrainSettings(
            steps=self.steps, learning_rate=self.learning_rate, group_size=self.group_size,
            max_doc_words=self.max_doc_words, alpha=self.alpha, beta=self.beta, gamma=self.gamma,
            lora_r=self.lora_r, lora_alpha=self.lora_alpha, target_modules=tuple(self.target_modules),
            labels=labels, seed=self.seed,
        )

    def prepare_base_model(self) -> Path:
        """A local transformers folder for the base model (the embedded GGUF is converted once)."""
        if self.base_model != EMBEDDED:
            return Path(self.base_model)
        gguf = embedded_gguf(self.model_cache)
        return gguf_to_hf_folder(gguf, Path(self.model_cache) / "gemma-3-270m-hf")


class SqlModelSettings(dg.ConfigurableResource):
    """The dbt-like SQL folder and the values its models may use as parameters."""

    folder: str
    eval_percent: int = 40


class Tracker(dg.ConfigurableResource):
    """MLflow tracking; every run is tagged with the Dagster run, asset and partition."""

    tracking_uri: str
    experiment: str = "rr"

    @contextmanager
    def run(self, context: dg.AssetExecutionContext, params: dict) -> Iterator[TrackedRun]:
        asset = context.asset_key.to_user_string()
        partition = context.partition_key if context.has_partition_key else ""
        tags = {"dagster.run_id": context.run.run_id, "dagster.asset_key": asset, "dagster.partition": partition}
        with mlflow_run(self.tracking_uri, self.experiment, f"{asset}/{partition}", tags) as tracked:
            tracked.params(params)
            yield tracked
