"""The one configuration file of a run (YAML), parsed into the stage settings of core/settings.py."""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields, replace
from pathlib import Path

import yaml
from pydantic import TypeAdapter, ValidationError

from rr_assets.core.checkpoints import STUDENT_FILE
from rr_assets.core.collections import CollectionSource
from rr_assets.core.settings import (
    ExecutionSettings,
    ExplainSettings,
    RetrievalSettings,
    RLSettings,
    SplitSettings,
    StudentSettings,
    TeacherSettings,
)

PROJECT_ROOT = Path(__file__).resolve().parent.parent
RESOURCES_DIR = PROJECT_ROOT / "resources"
DEMO_CONFIG = RESOURCES_DIR / "configs" / "demo.yaml"


class ConfigError(ValueError):
    """A configuration file that cannot be used; the message names the file and the key."""


@dataclass(frozen=True)
class RRConfig:
    home: str
    collections: tuple[CollectionSource, ...]
    retrieval: RetrievalSettings = field(default_factory=RetrievalSettings)
    splits: SplitSettings = field(default_factory=SplitSettings)
    teacher: TeacherSettings = field(default_factory=TeacherSettings)
    student: StudentSettings = field(default_factory=StudentSettings)
    rl: RLSettings = field(default_factory=RLSettings)
    explain: ExplainSettings = field(default_factory=ExplainSettings)
    execution: ExecutionSettings = field(default_factory=ExecutionSettings)
    mlflow_tracking_uri: str = "sqlite:///mlruns/mlflow.db"
    prompts_dir: str = str(RESOURCES_DIR / "prompts")
    model_cache: str = str(Path.home() / ".cache" / "rr" / "models")
    source_file: str = ""

    def collection(self, name: str) -> CollectionSource:
        for source in self.collections:
            if source.name == name:
                return source
        raise ConfigError(f"{self.source_file}: no collection named {name!r}")


SECTIONS = {"retrieval": RetrievalSettings, "splits": SplitSettings, "teacher": TeacherSettings,
            "student": StudentSettings, "rl": RLSettings, "explain": ExplainSettings,
            "execution": ExecutionSettings}
_TOP_LEVEL = {"home", "collections", "mlflow_tracking_uri", "prompts_dir", *SECTIONS}


def _section(cls, raw: dict | None, where: str):
    raw = raw or {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: expected a mapping of settings")
    known = {f.name for f in fields(cls)}
    unknown = set(raw) - known
    if unknown:
        raise ConfigError(f"{where}: unknown keys {sorted(unknown)}; known: {sorted(known)}")
    try:
        return TypeAdapter(cls).validate_python(raw)
    except ValidationError as exc:
        error = exc.errors()[0]
        key = ".".join(str(part) for part in error["loc"])
        raise ConfigError(f"{where}.{key}: {error['msg'].lower()} (got {error['input']!r})") from None


def _resolved(path: Path, value: str) -> str:
    return str((path.parent / value).resolve()) if value else ""


def _collection(path: Path, name: str, spec) -> CollectionSource:
    where = f"{path}: collections.{name}"
    if not isinstance(spec, dict) or "path" not in spec:
        raise ConfigError(f"{where} needs a 'path' to a BEIR folder")
    known = {f.name for f in fields(CollectionSource)} - {"name"}
    unknown = set(spec) - known
    if unknown:
        raise ConfigError(f"{where}: unknown keys {sorted(unknown)}; known: {sorted(known)}")
    answers = spec.get("teacher_answers", [])
    if not isinstance(answers, list) or not all(isinstance(a, str) for a in answers):
        raise ConfigError(f"{where}.teacher_answers: expected a list of file paths")
    source = CollectionSource(name=name, **{**spec, "path": _resolved(path, spec["path"]),
                                            "first_stage_run": _resolved(path, spec.get("first_stage_run", "")),
                                            "teacher_answers": tuple(_resolved(path, a) for a in answers)})
    named = [s for s in (source.train_split, source.eval_split, source.dev_split) if s]
    if len(named) != len(set(named)):
        raise ConfigError(f"{where}: train_split, eval_split and dev_split must differ")
    _check_files(where, source)
    return source


def _check_files(where: str, source: CollectionSource) -> None:
    """What a collection names exists: its folder, a qrels file per named split, its run and its
    teacher answer files (found now, not after the teacher stage has been paid for)."""
    folder = Path(source.path)
    if not folder.is_dir():
        raise ConfigError(f"{where}.path: {folder} is not a folder")
    for key in ("train_split", "eval_split", "dev_split"):
        split = getattr(source, key)
        if split and not (folder / "qrels" / f"{split}.tsv").is_file():
            found = sorted(p.stem for p in (folder / "qrels").glob("*.tsv"))
            raise ConfigError(f"{where}.{key}: no qrels file {folder / 'qrels' / f'{split}.tsv'} "
                              f"(splits there: {found or 'none'}; \"\" for none)")
    for key, files in (("first_stage_run", [source.first_stage_run] if source.first_stage_run else []),
                       ("teacher_answers", source.teacher_answers)):
        for file in files:
            if not Path(file).is_file():
                raise ConfigError(f"{where}.{key}: {file} does not exist")


def _check_links(path: Path, sources: tuple[CollectionSource, ...]) -> None:
    """`student_from` names a collection that trains a student; `dev_from` one with a dev split."""
    by_name = {s.name: s for s in sources}
    for source in sources:
        for key in ("student_from", "dev_from"):
            other = getattr(source, key)
            if other and (other not in by_name or other == source.name):
                raise ConfigError(f"{path}: collections.{source.name}.{key}: {other!r} is not another configured "
                                  f"collection; configured: {sorted(by_name)}")
        if source.student_from and by_name[source.student_from].student_from:
            raise ConfigError(f"{path}: collections.{source.name}.student_from: {source.student_from!r} trains no "
                              "student of its own (it has student_from too)")
        if source.dev_from and not by_name[source.dev_from].dev_split:
            raise ConfigError(f"{path}: collections.{source.name}.dev_from: {source.dev_from!r} has no dev_split")


def _student_init(path: Path, student: StudentSettings) -> StudentSettings:
    """`student.init_from` resolved against the config's folder; it must be a student checkpoint."""
    if not student.init_from:
        return student
    folder = _resolved(path, student.init_from)
    if not (Path(folder) / STUDENT_FILE).is_file():
        raise ConfigError(f"{path}: student.init_from: {folder} is not a student checkpoint (no {STUDENT_FILE})")
    return replace(student, init_from=folder)


def load_config(path: str | os.PathLike) -> RRConfig:
    """Parse a config file; relative paths in it are relative to the file's folder, except `home`
    and the MLflow store, which are relative to the working directory."""
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"{path}: config file not found")
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        raise ConfigError(f"{where}: not valid YAML ({getattr(exc, 'problem', None) or exc})") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping of sections, not {type(raw).__name__}")
    unknown = set(raw) - _TOP_LEVEL
    if unknown:
        raise ConfigError(f"{path}: unknown sections {sorted(unknown)}; known: {sorted(_TOP_LEVEL)}")
    if not isinstance(raw.get("collections"), dict) or not raw["collections"]:
        raise ConfigError(f"{path}: 'collections' must map collection names to sources")
    home = os.environ.get("RR_HOME") or raw.get("home") or ".rr"
    collections = tuple(_collection(path, name, spec) for name, spec in raw["collections"].items())
    _check_links(path, collections)
    sections = {name: _section(cls, raw.get(name), f"{path}: {name}") for name, cls in SECTIONS.items()}
    sections["student"] = _student_init(path, sections["student"])
    if sections["rl"].enabled and sections["student"].score_with != "label":
        raise ConfigError(f"{path}: rl.enabled needs student.score_with: label (GRPO's reward reads the label the "
                          f"student gives after its explanation)")
    return RRConfig(
        home=str(Path(home).resolve()),
        collections=collections,
        **sections,
        mlflow_tracking_uri=os.environ.get("MLFLOW_TRACKING_URI", raw.get("mlflow_tracking_uri", "sqlite:///mlruns/mlflow.db")),
        prompts_dir=str((path.parent / raw.get("prompts_dir", RESOURCES_DIR / "prompts")).resolve()),
        model_cache=os.environ.get("RR_MODEL_CACHE") or str(Path.home() / ".cache" / "rr" / "models"),
        source_file=str(path.resolve()),
    )
