"""Shared fixtures: real local models (converted once per machine), the real embedded teacher."""

from __future__ import annotations

import os
import shutil
import socket
import time
import urllib.request
from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEMO_DIR = PROJECT_ROOT / "resources" / "collections" / "demo"
os.environ.setdefault("RR_MODEL_CACHE", str(PROJECT_ROOT / ".rr-test-cache" / "models"))
os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")


@pytest.fixture(scope="session")
def model_cache() -> Path:
    return Path(os.environ["RR_MODEL_CACHE"])


@pytest.fixture(scope="session")
def gguf_path(model_cache: Path) -> Path:
    from rr_assets.core.model_files import embedded_gguf

    return embedded_gguf(model_cache)


@pytest.fixture(scope="session")
def hf_base_model(model_cache: Path) -> Path:
    from rr_assets.core.model_files import embedded_student

    return embedded_student(model_cache)


@pytest.fixture(scope="session")
def teacher_url(gguf_path: Path, tmp_path_factory) -> str:
    """The real llama.cpp OpenAI-compatible server, started once and stopped after the session."""
    from rr_assets.core.llama_server import llama_cpp_server

    log = tmp_path_factory.mktemp("llama") / "server.log"
    with llama_cpp_server(gguf_path, "gemma-3-270m", log) as server:
        yield server.base_url


def demo_collection():
    from rr_assets.core.collections import CollectionSource, load_collection

    return load_collection(CollectionSource("demo", str(DEMO_DIR)))


def demo_pairs(n: int):
    """The first `n` judged (query, document) pairs of the demo collection, for the teacher."""
    from rr_assets.core.teacher import JudgePair

    collection = demo_collection()
    queries = {q.query_id: q.text for q in collection.queries}
    docs = {d.doc_id: d.text for d in collection.documents}
    return [JudgePair(r.query_id, r.doc_id, queries[r.query_id], docs[r.doc_id]) for r in collection.qrels[:n]]


def write_config(path: Path, home: Path, mlruns: Path, **sections) -> Path:
    """A small config over the demo collection for tests."""
    import yaml

    config = {
        "home": str(home),
        "collections": {"demo": {"path": str(DEMO_DIR)}},
        "teacher": {"judge_depth": 4, "train_queries": 6, "eval_queries": 4, "reasoning_queries": 3, "concurrency": 2},
        "student": {"epochs": 1, "group_size": 4, "batch_groups": 2, "gradient_accumulation": 1,
                    "student_doc_words": 40, "eval_every": 2, "dev_queries": 4, "rerank_depth": 5,
                    "promotion_max_p": 1.0},  # 4 dev queries cannot show significance: any dev gain promotes
        "rl": {"pairs": 2, "samples_per_pair": 2, "pairs_per_step": 1, "steps": 1, "max_new_tokens": 8},
        "explain": {"queries": 2, "max_new_tokens": 8},
        "mlflow_tracking_uri": f"sqlite:///{mlruns}/mlflow.db",
    }
    for key, value in sections.items():
        config[key] = {**config.get(key, {}), **value} if isinstance(value, dict) else value
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.fixture(scope="session")
def pipeline(tmp_path_factory, hf_base_model):
    """The whole graph materialised once on the demo collection (small settings) on a real
    DagsterInstance in a temporary DAGSTER_HOME; shared by the e2e tests that inspect it."""
    import dagster as dg

    from rr_assets.cli import materialize
    from rr_assets.config import load_config

    root = tmp_path_factory.mktemp("e2e")
    prompts = root / "prompts"
    shutil.copytree(PROJECT_ROOT / "resources" / "prompts" / "grounded", prompts / "grounded")
    config = load_config(write_config(root / "config.yaml", root / "home", root / "mlruns", prompts_dir=str(prompts)))
    (root / "dagster").mkdir()
    saved = os.environ.get("DAGSTER_HOME")
    os.environ["DAGSTER_HOME"] = str(root / "dagster")
    try:
        assert materialize(config)
        yield config, dg.DagsterInstance.get(), root
    finally:
        if saved is None:
            os.environ.pop("DAGSTER_HOME", None)
        else:
            os.environ["DAGSTER_HOME"] = saved


def free_port() -> int:
    """A local port that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(url: str, timeout_s: float) -> None:
    """Wait until `url` answers 200 (raises TimeoutError after `timeout_s`)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(1)
    raise TimeoutError(url)
