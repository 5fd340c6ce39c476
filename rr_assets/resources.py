"""Dagster resources: configured once from the config file, never constructed inside assets.

Stage settings are the dataclasses of core/settings.py, given to assets as they are
(`dg.ResourceParam[StudentSettings]`); the resources here add behaviour: where runs write, the
collections, the teacher endpoint and MLflow."""

from __future__ import annotations

import multiprocessing
import os
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from urllib.parse import urlparse

import dagster as dg
from mlflow.tracking import MlflowClient

from rr_assets.core.collections import Collection, CollectionSource, load_collection
from rr_assets.core.llama_server import llama_cpp_server
from rr_assets.core.model_files import EMBEDDED, embedded_gguf, embedded_student
from rr_assets.core.processes import die_with_parent
from rr_assets.core.prompts import PromptVariant, list_variants, load_variant
from rr_assets.core.registry import StudentRegistry
from rr_assets.core.settings import StudentSettings, TeacherSettings
from rr_assets.core.teacher import Progress, RequestCache, Teacher, TeacherEndpoint, TeacherUsage
from rr_assets.core.tracking import TrackedRun, experiment_id, mlflow_run
from rr_assets.core.warehouse import Warehouse


class RRHome(dg.ConfigurableResource):
    """Where runs write (RR_HOME): warehouse, indexes, TREC runs, checkpoints, reports, logs."""

    path: str

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        """A step in a process of its own (the multiprocess executor's) dies with the run's process,
        as rr's own children do: a `kill -9` of rr leaves no step running on."""
        parent = multiprocessing.parent_process()
        if parent is not None:
            die_with_parent(parent.pid)

    def dir(self, *parts: str) -> Path:
        folder = Path(self.path, *parts)
        folder.mkdir(parents=True, exist_ok=True)
        return folder

    def warehouse(self) -> Warehouse:
        return Warehouse(Path(self.path) / "warehouse.duckdb")


class Collections:
    """The configured collections by name."""

    def __init__(self, sources: tuple[CollectionSource, ...]):
        self.sources = {s.name: s for s in sources}

    def source(self, name: str) -> CollectionSource:
        return self.sources[name]

    def load(self, name: str) -> Collection:
        return load_collection(self.sources[name])

    def selects_only(self, name: str) -> bool:
        """Another collection's dev slice (its `dev_from`), and nothing else."""
        return any(s.dev_from == name for s in self.sources.values()) and not self.sources[name].student_from

    def trains(self, name: str) -> bool:
        """Whether a student is trained on this collection (not one evaluated with another's student)."""
        return not self.sources[name].student_from and not self.selects_only(name)

    def reports(self, name: str) -> bool:
        """Whether this collection has evaluation queries, and so student scores and a report."""
        return bool(self.sources[name].eval_split) and not self.selects_only(name)


class TeacherService:
    """The teacher settings, the prompt variants and the endpoint (the embedded llama.cpp server is
    started for the length of a block and supervised)."""

    def __init__(self, settings: TeacherSettings, prompts_dir: str, model_cache: str):
        self.settings, self.prompts_dir, self.model_cache = settings, prompts_dir, model_cache

    def urls(self) -> list[str]:
        """The configured endpoints' base URLs; none means the embedded server."""
        return [url for url in (self.settings.base_url, *self.settings.endpoints) if url]

    @staticmethod
    def host(url: str) -> str:
        """A URL's host, never its path or query or user part, which can carry credentials."""
        return urlparse(url).netloc.rsplit("@", 1)[-1]

    def endpoint_label(self) -> str:
        """Where the teacher runs, for records: "embedded" (×N) or the servers' hosts."""
        if not self.urls():
            return "embedded" + (f" ×{self.settings.embedded_servers}" if self.settings.embedded_servers > 1 else "")
        return ", ".join(self.host(url) for url in self.urls())

    def variant(self, name: str) -> PromptVariant:
        return load_variant(self.prompts_dir, name)

    def variant_names(self) -> list[str]:
        """The configured variants, or every variant folder that asks an endpoint ("default" first;
        an imported variant needs its collections' files, so it runs only when named); the first
        is primary."""
        if self.settings.prompt_variants:
            return list(self.settings.prompt_variants)
        asked = [name for name in list_variants(self.prompts_dir) if not self.variant(name).imported]
        return sorted(asked, key=lambda name: name != "default")

    def cost(self, usage: TeacherUsage) -> float:
        """Estimated cost of the new calls of a run, from the configured prices of the model."""
        return (usage.prompt_tokens * self.settings.price("prompt")
                + usage.completion_tokens * self.settings.price("completion")) / 1000

    @contextmanager
    def open(self, variant: PromptVariant, cache: RequestCache, log_dir: Path, servers_dir: Path,
             progress=None) -> Iterator[Teacher]:
        """A Teacher for the block, over every configured endpoint; without one, starts (and
        afterwards stops) `embedded_servers` embedded servers, recorded in `servers_dir` while they
        run (see `reap_stale_servers`)."""
        s = self.settings
        settings = dict(model=s.model, api_key=os.environ.get(s.api_key_env, ""), concurrency=s.concurrency,
                        timeout_s=s.timeout_s, max_retries=s.max_retries, seed=s.seed,
                        breaker_failures=s.breaker_failures)
        if self.urls():
            yield Teacher([TeacherEndpoint(base_url=url, label=self.host(url), **settings) for url in self.urls()],
                          variant, cache, progress)
            return
        threads = max(1, (os.cpu_count() or 1) // s.embedded_servers)
        with ExitStack() as stack:
            endpoints = []
            for number in range(s.embedded_servers):
                log = log_dir / ("llama_server.log" if number == 0 else f"llama_server-{number}.log")
                server = stack.enter_context(llama_cpp_server(embedded_gguf(self.model_cache), s.model, log,
                                                              threads=threads, records_dir=servers_dir))
                endpoints.append(TeacherEndpoint(base_url=server.base_url, server_failure=server.failure,
                                                 label=f"the embedded llama.cpp server ({server.base_url})", **settings))
            yield Teacher(endpoints, variant, cache, progress)


class StudentBase:
    """The base model folder of the student (the embedded GGUF is converted once)."""

    def __init__(self, settings: StudentSettings, model_cache: str):
        self.settings, self.model_cache = settings, model_cache

    def prepare(self) -> Path:
        if self.settings.base_model != EMBEDDED:
            return Path(self.settings.base_model)
        return embedded_student(self.model_cache)


class Tracker(dg.ConfigurableResource):
    """MLflow tracking and model registry; every run is tagged with the Dagster run, asset and partition."""

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

    def registry(self) -> StudentRegistry:
        return StudentRegistry(self.tracking_uri)

    def prepare(self) -> None:
        """Create the store and the experiment now, before runs that would race to."""
        experiment_id(MlflowClient(self.tracking_uri), self.experiment)


def progress_logger(context, what: str, every_s: float = 15.0):
    """Progress of teacher requests for the Dagster log: each tenth of the answers, and at least
    every `every_s` seconds even when nothing arrives (with retries and the last error)."""
    state = {"last": 0.0, "step": -1}

    def report(p: Progress) -> None:
        step = p.answered * 10 // max(1, p.total)
        now = time.monotonic()
        if step != state["step"] or p.answered == p.total or now - state["last"] >= every_s:
            state["step"], state["last"] = step, now
            tail = f", {p.retries} retries, last error: {p.last_error}" if p.retries or p.last_error else ""
            context.log.info(f"{what}: {p.answered}/{p.total} new teacher requests answered{tail}")

    return report

