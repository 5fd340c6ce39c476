"""Shared fixtures: real local models (converted once per machine), the real embedded teacher."""

from __future__ import annotations

import os
import shutil
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
    from rr_assets.core.models import embedded_gguf

    return embedded_gguf(model_cache)


@pytest.fixture(scope="session")
def hf_base_model(gguf_path: Path, model_cache: Path) -> Path:
    from rr_assets.core.models import gguf_to_hf_folder

    return gguf_to_hf_folder(gguf_path, model_cache / "gemma-3-270m-hf")


@pytest.fixture(scope="session")
def teacher_url(gguf_path: Path, tmp_path_factory) -> str:
    """The real llama.cpp OpenAI-compatible server, started once and stopped after the session."""
    from rr_assets.core.llama_server import llama_cpp_server

    log = tmp_path_factory.mktemp("llama") / "server.log"
    with llama_cpp_server(gguf_path, "gemma-3-270m", log) as url:
        yield url


def write_config(path: Path, home: Path, mlruns: Path, **sections) -> Path:
    """A small config over the demo collection for tests."""
    import yaml

    config = {
        "home": str(home),
        "collections": {"demo": {"path": str(DEMO_DIR)}},
        "teacher": {"depth": 5, "max_queries": 10, "concurrency": 2},
        "student": {"steps": 2, "group_size": 4, "max_doc_words": 50, "rerank_depth": 5},
        "mlflow_tracking_uri": f"sqlite:///{mlruns}/mlflow.db",
    }
    for key, value in sections.items():
        config[key] = {**config[key], **value} if isinstance(value, dict) else value
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
    shutil.copytree(PROJECT_ROOT / "resources" / "prompts" / "default", prompts / "default")
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
