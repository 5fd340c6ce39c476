"""`defs`: the asset graph, checks, jobs and resources, configured from one config file.

The config file is RR_CONFIG (default: resources/configs/demo.yaml). Every asset's code version
joins the version declared beside its code (`code_version=` on the asset; an SQL model's is its
file's hash) with a hash of the settings it reads, so a change to those settings in the config file
makes that asset (and what follows it) stale, and nothing else. tests/unit/test_code_versions.py
fails when an asset's code changes and its declared version does not say whether that matters."""

from __future__ import annotations

import functools
import hashlib
import json
import os
from dataclasses import asdict
from pathlib import Path

import dagster as dg
from dagster_celery import celery_executor

from rr_assets.assets import candidates, corpus, index, prompts, report, student, teacher
from rr_assets.assets.training_tables import build_sql_model_assets
from rr_assets.automation import (
    REFRESH_WHEN_INPUTS_CHANGE,
    build_automation_sensor,
    build_collection_sensor,
    build_prompt_variant_sensor,
    build_weekly_refresh,
)
from rr_assets.checks import all_checks
from rr_assets.config import DEMO_CONFIG, RRConfig, load_config
from rr_assets.jobs import (
    BASE_MODEL_JOB,
    COLLECTION_JOB,
    OBSERVE_ANSWERS_JOB,
    OBSERVE_COLLECTIONS_JOB,
    OBSERVE_PROMPTS_JOB,
    REPORT_JOB,
    VARIANT_JOB,
)
from rr_assets.partitions import collection_partitions, collection_variant_partitions
from rr_assets.resources import Collections, RRHome, StudentBase, TeacherService, Tracker
from rr_assets.run_logs import console_logger

# Package data (pyproject.toml), so an installed rr finds its models; the top-level dbt_like_sql/ links here.
SQL_MODELS_DIR = Path(__file__).resolve().parent / "dbt_like_sql"


def build_resources(config: RRConfig) -> dict[str, object]:
    return {
        "home": RRHome(path=config.home),
        "collections": Collections(config.collections),
        "retrieval": config.retrieval,
        "splits": config.splits,
        "teacher": TeacherService(config.teacher, config.prompts_dir, config.model_cache),
        "student": config.student,
        "base": StudentBase(config.student, config.model_cache),
        "rl": config.rl,
        "explain": config.explain,
        "tracker": Tracker(tracking_uri=config.mlflow_tracking_uri),
    }


# Settings that change how a teacher runs but not what it answers.
_TEACHER_OPERATIONS = ("api_key_env", "concurrency", "timeout_s", "max_retries", "breaker_failures", "prices",
                       "min_agreement", "max_swap_inconsistency", "prompt_variants", "endpoints", "embedded_servers")
# Settings of the student that change nothing it learns or scores (how fast, on how many processes).
_STUDENT_OPERATIONS = ("score_batch_size", "score_token_budget", "train_token_budget", "processes",
                       "gradient_checkpointing")


def _digest(*parts) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:12]


def code_versions(config: RRConfig) -> dict[str, str]:
    """Asset name → a hash of the settings it reads; `_versioned` joins it to the code version that
    each asset declares beside its code (an SQL model's: the hash of its file)."""
    teacher = {k: v for k, v in asdict(config.teacher).items() if k not in _TEACHER_OPERATIONS}
    student = {k: v for k, v in asdict(config.student).items() if k not in _STUDENT_OPERATIONS}
    sources = [asdict(s) for s in config.collections]
    versions = {
        "corpus": _digest(sources), "queries": _digest(sources), "qrels": _digest(sources),
        "first_stage_candidates": _digest(asdict(config.retrieval)),
        "splits": _digest(sources, asdict(config.splits)),
        "train_pointwise": _digest(config.student.hard_negative_depth),
        **{name: _digest(teacher) for name in ("teacher_judgments", "teacher_comparisons", "teacher_rankings",
                                               "teacher_injection_probe")},
        "student_base_model": _digest(config.student.base_model),
        "student_checkpoint": _digest(student),
        "student_rl_checkpoint": _digest(student, asdict(config.rl)),
        "student_scores": _digest(config.student.rerank_depth, config.student.precision, asdict(config.explain)),
    }
    return versions


def _versioned(assets_def: dg.AssetsDefinition, versions: dict[str, str]) -> dg.AssetsDefinition:
    """Join each spec's declared code version with the hash of the settings it reads."""
    def with_version(spec: dg.AssetSpec) -> dg.AssetSpec:
        name = spec.key.to_user_string()
        if name in versions:
            version = versions[name] if spec.code_version is None else f"{spec.code_version}-{versions[name]}"
            return spec.replace_attributes(code_version=version)
        return spec
    return assets_def.map_asset_specs(with_version)


def build_definitions(config: RRConfig) -> dg.Definitions:
    sql_assets = build_sql_model_assets(SQL_MODELS_DIR)
    refreshed = [
        index.bm25_index, candidates.first_stage_candidates, teacher.teacher_judgments, teacher.teacher_comparisons,
        teacher.teacher_rankings, teacher.teacher_injection_probe, *sql_assets, student.student_checkpoint,
        student.student_rl_checkpoint, student.student_scores, student.champion_candidate, student.champion,
        report.benchmark_report,
    ]
    versions = code_versions(config)
    assets = [
        _versioned(a, versions) for a in [
            corpus.collection_tables, student.student_base_model,
            *[a.with_attributes(automation_condition=REFRESH_WHEN_INPUTS_CHANGE) for a in refreshed]]
    ]
    sources = [corpus.collection_files, prompts.prompt_templates, teacher.teacher_answer_files]

    def keys_partitioned_by(partitions_def) -> list[dg.AssetKey]:
        return [key for a in assets if a.partitions_def == partitions_def for key in a.keys]

    report_keys = [report.benchmark_report.key]
    jobs = [
        dg.define_asset_job(OBSERVE_COLLECTIONS_JOB, selection=dg.AssetSelection.assets(corpus.collection_files.key)),
        dg.define_asset_job(OBSERVE_PROMPTS_JOB, selection=dg.AssetSelection.assets(prompts.prompt_templates.key)),
        dg.define_asset_job(OBSERVE_ANSWERS_JOB, selection=dg.AssetSelection.assets(teacher.teacher_answer_files.key)),
        dg.define_asset_job(COLLECTION_JOB, selection=dg.AssetSelection.assets(
            *[k for k in keys_partitioned_by(collection_partitions) if k not in report_keys])),
        dg.define_asset_job(BASE_MODEL_JOB, selection=dg.AssetSelection.assets(student.student_base_model)),
        dg.define_asset_job(VARIANT_JOB, selection=dg.AssetSelection.assets(
            *keys_partitioned_by(collection_variant_partitions))),
        dg.define_asset_job(REPORT_JOB, selection=dg.AssetSelection.assets(*report_keys)),
    ]
    return dg.Definitions(
        assets=[*sources, *assets],
        asset_checks=all_checks,
        jobs=jobs,
        schedules=[build_weekly_refresh([c.name for c in config.collections])],
        sensors=[build_prompt_variant_sensor(config.prompts_dir), build_collection_sensor(config.collections),
                 build_automation_sensor(config.execution.automation)],
        resources=build_resources(config),
        loggers={"console": console_logger},
        executor=celery_executor if config.execution.executor == "celery" else dg.multi_or_in_process_executor,
    )


@functools.cache
def _definitions_of(config_file: str) -> dg.Definitions:
    return build_definitions(load_config(config_file))


def _config_file() -> str:
    return os.environ.get("RR_CONFIG") or str(DEMO_CONFIG)


@dg.definitions
def defs() -> dg.Definitions:
    """The graph of the config that RR_CONFIG names (default: the demo), built when Dagster's tools
    load this code location, not when the module is imported."""
    return _definitions_of(_config_file())


def job_named(name: str) -> dg.JobDefinition:
    """A job of the definitions of RR_CONFIG, as it names the config now: what an out-of-process
    executor rebuilds a run's job from, in every process (a reconstructable pointer here)."""
    return _definitions_of(_config_file()).resolve_job_def(name)
