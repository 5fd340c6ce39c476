"""The one configuration file of a run (YAML), parsed into typed dataclasses."""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields
from pathlib import Path

import yaml

PROJECT_ROOT = Path(__file__).resolve().parent.parent
RESOURCES_DIR = PROJECT_ROOT / "resources"
DEMO_CONFIG = RESOURCES_DIR / "configs" / "demo.yaml"


class ConfigError(ValueError):
    """A configuration file that cannot be used; the message names the file and the key."""


@dataclass(frozen=True)
class CollectionSource:
    name: str
    path: str
    qrels_split: str = "test"


@dataclass(frozen=True)
class RetrievalConfig:
    k1: float = 0.9
    b: float = 0.4
    depth: int = 100


@dataclass(frozen=True)
class TeacherConfig:
    base_url: str = ""
    model: str = "gemma-3-270m"
    api_key_env: str = "RR_TEACHER_API_KEY"
    prompt_variants: tuple[str, ...] = ()
    depth: int = 10
    max_queries: int = 0
    concurrency: int = 4
    timeout_s: float = 120.0
    max_retries: int = 4
    seed: int = 0
    min_agreement: float = 0.3
    max_swap_inconsistency: float = 0.5
    prices: dict = field(default_factory=dict)


@dataclass(frozen=True)
class StudentConfig:
    base_model: str = "embedded"
    lora_r: int = 8
    lora_alpha: int = 16
    target_modules: tuple[str, ...] = ("q_proj", "v_proj")
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


@dataclass(frozen=True)
class SplitConfig:
    eval_percent: int = 40


@dataclass(frozen=True)
class RRConfig:
    home: str
    collections: tuple[CollectionSource, ...]
    retrieval: RetrievalConfig = field(default_factory=RetrievalConfig)
    teacher: TeacherConfig = field(default_factory=TeacherConfig)
    student: StudentConfig = field(default_factory=StudentConfig)
    split: SplitConfig = field(default_factory=SplitConfig)
    mlflow_tracking_uri: str = "sqlite:///mlruns/mlflow.db"
    prompts_dir: str = str(RESOURCES_DIR / "prompts")
    source_file: str = ""

    def collection(self, name: str) -> CollectionSource:
        for source in self.collections:
            if source.name == name:
                return source
        raise ConfigError(f"{self.source_file}: no collection named {name!r}")


def _section(cls, raw: dict | None, where: str):
    raw = raw or {}
    known = {f.name for f in fields(cls)}
    unknown = set(raw) - known
    if unknown:
        raise ConfigError(f"{where}: unknown keys {sorted(unknown)}; known: {sorted(known)}")
    values = {k: tuple(v) if isinstance(v, list) else v for k, v in raw.items()}
    return cls(**values)


def load_config(path: str | os.PathLike) -> RRConfig:
    """Parse a config file; relative paths in it are relative to the file's folder,
    except `home` and the MLflow store, which are relative to the working directory."""
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"{path}: config file not found")
    raw = yaml.safe_load(path.read_text()) or {}
    if not isinstance(raw.get("collections"), dict) or not raw["collections"]:
        raise ConfigError(f"{path}: 'collections' must map collection names to sources")
    collections = []
    for name, spec in raw["collections"].items():
        if not isinstance(spec, dict) or "path" not in spec:
            raise ConfigError(f"{path}: collections.{name} needs a 'path' to a BEIR folder")
        source_path = Path(spec["path"])
        if not source_path.is_absolute():
            source_path = (path.parent / source_path).resolve()
        collections.append(CollectionSource(name, str(source_path), spec.get("qrels_split", "test")))
    home = os.environ.get("RR_HOME") or raw.get("home") or ".rr"
    return RRConfig(
        home=str(Path(home).resolve()),
        collections=tuple(collections),
        retrieval=_section(RetrievalConfig, raw.get("retrieval"), f"{path}: retrieval"),
        teacher=_section(TeacherConfig, raw.get("teacher"), f"{path}: teacher"),
        student=_section(StudentConfig, raw.get("student"), f"{path}: student"),
        split=_section(SplitConfig, raw.get("split"), f"{path}: split"),
        mlflow_tracking_uri=os.environ.get(
            "MLFLOW_TRACKING_URI", raw.get("mlflow_tracking_uri", "sqlite:///mlruns/mlflow.db")
        ),
        prompts_dir=str((path.parent / raw.get("prompts_dir", RESOURCES_DIR / "prompts")).resolve()),
        source_file=str(path.resolve()),
    )
