"""`defs`: the asset graph, checks, jobs and resources, configured from one config file.

The config file is RR_CONFIG (default: resources/configs/demo.yaml)."""

from __future__ import annotations

import os
from pathlib import Path

import dagster as dg

from rr_assets.assets import benchmark, candidates, corpus, index, student
from rr_assets.assets.teacher import build_teacher_judgments
from rr_assets.assets.training_tables import build_training_table_assets
from rr_assets.checks import teacher_agrees_with_qrels, teacher_judgments_gx_suite
from rr_assets.config import DEMO_CONFIG, PROJECT_ROOT, RESOURCES_DIR, RRConfig, load_config
from rr_assets.core.prompts import load_variant
from rr_assets.resources import (
    BM25Settings,
    CollectionSources,
    RRHome,
    SqlModelSettings,
    StudentSettings,
    TeacherResource,
    Tracker,
)

PROMPTS_DIR = RESOURCES_DIR / "prompts"
SQL_MODELS_DIR = PROJECT_ROOT / "dbt_like_sql"
PIPELINE_JOB = "rr_pipeline"


def model_cache_dir(config: RRConfig) -> str:
    """Converted model folders are shared by every home (RR_MODEL_CACHE, default ~/.cache/rr)."""
    return os.environ.get("RR_MODEL_CACHE") or str(Path.home() / ".cache" / "rr" / "models")


def build_resources(config: RRConfig) -> dict[str, dg.ConfigurableResource]:
    cache = model_cache_dir(config)
    t, s = config.teacher, config.student
    return {
        "home": RRHome(path=config.home, model_cache=cache),
        "sources": CollectionSources(
            folders={c.name: c.path for c in config.collections},
            qrels_splits={c.name: c.qrels_split for c in config.collections},
        ),
        "bm25": BM25Settings(k1=config.retrieval.k1, b=config.retrieval.b, depth=config.retrieval.depth),
        "teacher": TeacherResource(
            base_url=t.base_url, model=t.model, api_key_env=t.api_key_env, prompts_dir=str(PROMPTS_DIR),
            prompt_variant=t.prompt_variant, depth=t.depth, max_queries=t.max_queries, concurrency=t.concurrency,
            timeout_s=t.timeout_s, max_retries=t.max_retries, seed=t.seed, min_agreement=t.min_agreement,
            max_parse_failure_rate=t.max_parse_failure_rate, model_cache=cache,
        ),
        "student": StudentSettings(
            base_model=s.base_model, model_cache=cache, lora_r=s.lora_r, lora_alpha=s.lora_alpha,
            target_modules=list(s.target_modules), steps=s.steps, learning_rate=s.learning_rate,
            group_size=s.group_size, max_doc_words=s.max_doc_words, alpha=s.alpha, beta=s.beta, gamma=s.gamma,
            seed=s.seed, rerank_depth=s.rerank_depth, batch_size=s.batch_size,
        ),
        "sql_models": SqlModelSettings(folder=str(SQL_MODELS_DIR), eval_percent=config.split.eval_percent),
        "tracker": Tracker(tracking_uri=config.mlflow_tracking_uri),
    }


def build_definitions(config: RRConfig) -> dg.Definitions:
    variant = load_variant(PROMPTS_DIR, config.teacher.prompt_variant)
    assets = [
        corpus.collection_tables, index.bm25_index, candidates.bm25_candidates, build_teacher_judgments(variant),
        *build_training_table_assets(SQL_MODELS_DIR), student.student_base_model, student.student_checkpoint,
        student.student_scores, benchmark.benchmark_report,
    ]
    pipeline = dg.define_asset_job(PIPELINE_JOB, selection=dg.AssetSelection.all())
    return dg.Definitions(
        assets=assets,
        asset_checks=[teacher_judgments_gx_suite, teacher_agrees_with_qrels],
        jobs=[pipeline],
        resources=build_resources(config),
    )


defs = build_definitions(load_config(os.environ.get("RR_CONFIG") or DEMO_CONFIG))
