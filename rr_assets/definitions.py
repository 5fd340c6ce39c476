"""`defs`: the asset graph, checks, jobs and resources, configured from one config file.

The config file is RR_CONFIG (default: resources/configs/demo.yaml)."""

from __future__ import annotations

import os
from dataclasses import asdict
from pathlib import Path

import dagster as dg

from rr_assets.assets import benchmark, candidates, corpus, index, prompts, student, teacher
from rr_assets.assets.training_tables import build_training_table_assets
from rr_assets.automation import (
    COLLECTION_JOB,
    PROMPTS_JOB,
    REFRESH_WHEN_INPUTS_CHANGE,
    automation_sensor,
    build_collection_sensor,
    build_prompt_variant_sensor,
    build_weekly_refresh,
)
from rr_assets.checks import all_checks
from rr_assets.config import DEMO_CONFIG, PROJECT_ROOT, RRConfig, load_config
from rr_assets.partitions import collection_partitions, collection_variant_partitions
from rr_assets.resources import (
    BM25Settings,
    CollectionSources,
    RRHome,
    SqlModelSettings,
    StudentSettings,
    TeacherResource,
    Tracker,
)

SQL_MODELS_DIR = PROJECT_ROOT / "dbt_like_sql"


def model_cache_dir(config: RRConfig) -> str:
    """Converted model folders are shared by every home (RR_MODEL_CACHE, default ~/.cache/rr)."""
    return os.environ.get("RR_MODEL_CACHE") or str(Path.home() / ".cache" / "rr" / "models")


def build_resources(config: RRConfig) -> dict[str, dg.ConfigurableResource]:
    cache = model_cache_dir(config)
    t = config.teacher
    return {
        "home": RRHome(path=config.home, model_cache=cache),
        "sources": CollectionSources(
            folders={c.name: c.path for c in config.collections},
            qrels_splits={c.name: c.qrels_split for c in config.collections},
        ),
        "bm25": BM25Settings(k1=config.retrieval.k1, b=config.retrieval.b, depth=config.retrieval.depth),
        "teacher": TeacherResource(
            base_url=t.base_url, model=t.model, api_key_env=t.api_key_env, prompts_dir=config.prompts_dir,
            prompt_variants=list(t.prompt_variants), depth=t.depth, max_queries=t.max_queries, concurrency=t.concurrency,
            timeout_s=t.timeout_s, max_retries=t.max_retries, seed=t.seed, min_agreement=t.min_agreement,
            max_swap_inconsistency=t.max_swap_inconsistency,
            price_per_1k_prompt_tokens=t.prices.get(t.model, {}).get("prompt", 0.0),
            price_per_1k_completion_tokens=t.prices.get(t.model, {}).get("completion", 0.0), model_cache=cache,
        ),
        "student": StudentSettings(
            model_cache=cache, **{k: list(v) if isinstance(v, tuple) else v for k, v in asdict(config.student).items()}
        ),
        "sql_models": SqlModelSettings(folder=str(SQL_MODELS_DIR), eval_percent=config.split.eval_percent),
        "tracker": Tracker(tracking_uri=config.mlflow_tracking_uri),
    }


# The pipeline in phases, one job per partitioning (a Dagster run has one partition key).
BASE_MODEL_JOB, VARIANT_JOB, REPORT_JOB = "rr_base_model", "rr_teacher_and_student", "rr_report"
PHASES = (COLLECTION_JOB, PROMPTS_JOB, BASE_MODEL_JOB, VARIANT_JOB, REPORT_JOB)


def build_definitions(config: RRConfig) -> dg.Definitions:
    sql_assets = build_training_table_assets(SQL_MODELS_DIR)
    refreshed = [
        index.bm25_index, candidates.bm25_candidates, teacher.teacher_judgments, teacher.teacher_comparisons,
        teacher.teacher_rankings, teacher.teacher_injection_probe, *sql_assets, student.student_checkpoint,
        student.student_scores, benchmark.benchmark_report,
    ]
    assets = [
        corpus.collection_tables, prompts.prompt_templates, student.student_base_model,
        *[a.with_attributes(automation_condition=REFRESH_WHEN_INPUTS_CHANGE) for a in refreshed],
    ]

    def keys_partitioned_by(partitions_def) -> list[dg.AssetKey]:
        return [key for a in assets if a.partitions_def == partitions_def for key in a.keys]

    report = [benchmark.benchmark_report.key]
    names = [c.name for c in config.collections]
    jobs = [
        dg.define_asset_job(COLLECTION_JOB, selection=dg.AssetSelection.assets(
            *[k for k in keys_partitioned_by(collection_partitions) if k not in report])),
        dg.define_asset_job(PROMPTS_JOB, selection=dg.AssetSelection.assets(prompts.prompt_templates)),
        dg.define_asset_job(BASE_MODEL_JOB, selection=dg.AssetSelection.assets(student.student_base_model)),
        dg.define_asset_job(VARIANT_JOB, selection=dg.AssetSelection.assets(
            *keys_partitioned_by(collection_variant_partitions))),
        dg.define_asset_job(REPORT_JOB, selection=dg.AssetSelection.assets(*report)),
    ]
    return dg.Definitions(
        assets=assets,
        asset_checks=all_checks,
        jobs=jobs,
        schedules=[build_weekly_refresh(names)],
        sensors=[build_prompt_variant_sensor(config.prompts_dir),
                 build_collection_sensor({c.name: c.path for c in config.collections}), automation_sensor],
        resources=build_resources(config),
    )


defs = build_definitions(load_config(os.environ.get("RR_CONFIG") or DEMO_CONFIG))
