import subprocess
import sys
from dataclasses import fields
from pathlib import Path

import pytest

from rr_assets.config import DEMO_CONFIG, RESOURCES_DIR, SECTIONS, ConfigError, load_config
from rr_assets.core.checkpoints import STUDENT_FILE
from rr_assets.core.settings import help_lines
from tests.conftest import PROJECT_ROOT

pytestmark = pytest.mark.unit
SHARED_DATA = PROJECT_ROOT.parent / "shared" / "data"  # /work/shared/data


def write(tmp_path, text: str) -> Path:
    """A config file beside a collection folder with a `test` qrels split (`path: .`)."""
    (tmp_path / "qrels").mkdir(exist_ok=True)
    (tmp_path / "qrels" / "test.tsv").write_text("")
    path = tmp_path / "c.yaml"
    path.write_text(text)
    return path


def test_demo_config_resolves_collection_paths():
    config = load_config(DEMO_CONFIG)
    demo = config.collection("demo")
    assert Path(demo.path) == RESOURCES_DIR / "collections" / "demo"
    assert demo.eval_split == "test" and demo.train_split == "" and demo.first_stage_run == ""
    assert config.retrieval.k1 == 0.9 and config.retrieval.b == 0.4
    assert config.teacher.prompt_variants == ("grounded",)  # YAML lists become tuples
    assert config.splits.dev_percent == 20 and config.student.hard_negative_depth == 20
    assert Path(config.prompts_dir) == RESOURCES_DIR / "prompts"


def test_scifact_config_reads_the_shared_data_with_named_splits():
    scifact = load_config(RESOURCES_DIR / "configs" / "scifact.yaml").collection("scifact")
    assert Path(scifact.path) == SHARED_DATA / "scifact"
    assert (scifact.train_split, scifact.eval_split) == ("train", "test")
    assert scifact.first_stage_run == "" and scifact.first_stage_label == "bm25"


def test_dl19_config_reads_the_shared_data_with_its_given_run():
    config = load_config(RESOURCES_DIR / "configs" / "dl19.yaml")
    dl19 = config.collection("dl19")
    assert Path(dl19.path) == SHARED_DATA / "dl19"
    assert Path(dl19.first_stage_run) == SHARED_DATA / "dl19" / "bm25.run.trec"
    assert dl19.train_split == "" and dl19.first_stage_label == "bm25"
    assert config.student.hard_negative_depth == 30


def test_msmarco_dl19_config_trains_on_r2r_selects_on_dev600_and_evaluates_dl19():
    from rr_assets.resources import Collections

    config = load_config(RESOURCES_DIR / "configs" / "msmarco-dl19.yaml")
    r2r = config.collection("msmarco-r2r")
    assert [Path(f).name for f in r2r.teacher_answers] == ["gpt-4.jsonl", "r2r-structured.jsonl"]
    assert all(Path(f).parent == SHARED_DATA / "msmarco-r2r" / "teacher" for f in r2r.teacher_answers)
    assert r2r.dev_from == "msmarco-dev600" and config.collection("msmarco-dev600").dev_split == "dev"
    assert config.collection("dl19").trained_on == "msmarco-r2r" and config.teacher.prompt_variants == ("imported",)
    roles = Collections(config.collections)
    assert [c.name for c in config.collections if roles.trains(c.name)] == ["msmarco-r2r"]
    assert [c.name for c in config.collections if roles.reports(c.name)] == ["dl19"]


@pytest.mark.parametrize("links, message", [
    ("{x: {path: ., student_from: y}}", "student_from: 'y' is not another configured collection"),
    ("{x: {path: ., dev_from: y}, y: {path: ., eval_split: test}}", "dev_from: 'y' has no dev_split"),
    ("{x: {path: ., teacher_answers: a.jsonl}}", "teacher_answers: expected a list of file paths"),
])
def test_links_between_collections_are_checked_at_load(tmp_path, links, message):
    with pytest.raises(ConfigError, match=message):
        load_config(write(tmp_path, f"collections: {links}\n"))


def test_relative_paths_resolve_against_the_config_folder(tmp_path):
    (tmp_path / "sub" / "runs").mkdir(parents=True)
    (tmp_path / "sub" / "runs" / "x.trec").write_text("")
    (tmp_path / "data" / "x").mkdir(parents=True)
    write(tmp_path / "data" / "x", "")
    path = tmp_path / "sub" / "c.yaml"
    path.write_text("collections:\n  x: {path: ../data/x, first_stage_run: runs/x.trec, first_stage_name: splade}\n")
    x = load_config(path).collection("x")
    assert Path(x.path) == tmp_path / "data" / "x"
    assert Path(x.first_stage_run) == tmp_path / "sub" / "runs" / "x.trec"
    assert x.first_stage_label == "splade"


def test_a_student_to_go_on_training_resolves_against_the_config_folder_and_must_be_a_checkpoint(tmp_path):
    (tmp_path / "ckpt").mkdir()
    path = write(tmp_path, "collections: {x: {path: .}}\nstudent: {init_from: ckpt}\n")
    with pytest.raises(ConfigError, match=r"c.yaml: student.init_from: .*ckpt is not a student checkpoint"):
        load_config(path)
    (tmp_path / "ckpt" / STUDENT_FILE).write_text("{}")
    assert Path(load_config(path).student.init_from) == tmp_path / "ckpt"


@pytest.mark.parametrize("text, message", [
    ("collections: {x: {path: .}}\nstudent: {epochs: two}\n", r"c.yaml: student.epochs: input should be a valid integer"),
    ("collections: {x: {path: .}}\nteacher: {concurrency: [2]}\n", r"c.yaml: teacher.concurrency: input should be a valid"),
    ("collections: {x: {path: .}\nstudent: [\n", r"c.yaml:2: not valid YAML"),
    ("- just\n- a list\n", r"c.yaml: expected a mapping of sections"),
    ("collections: {x: {path: .}}\nstudent: {score_with: logits}\n", r"c.yaml: student.score_with: input should be"),
    ("collections: {x: {path: .}}\nstudent: {score_with: query_likelihood}\n",
     r"c.yaml: rl.enabled needs student.score_with: label"),
])
def test_a_wrong_type_or_bad_yaml_fails_at_load_naming_the_key_or_line(tmp_path, text, message):
    with pytest.raises(ConfigError, match=message):
        load_config(write(tmp_path, text))


def test_the_cli_reports_a_config_error_in_one_line_without_a_traceback(tmp_path):
    path = write(tmp_path, "collections: {x: {path: .}}\nstudent: {epochs: two}\n")
    run = subprocess.run([sys.executable, "-m", "rr_assets.cli", "run", "-c", str(path), "--dry-run"],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 2 and "Traceback" not in run.stderr
    assert run.stderr.strip().splitlines() == [f"rr: {path}: student.epochs: input should be a valid integer, "
                                               "unable to parse string as an integer (got 'two')"]


def test_the_cli_reports_a_missing_checkpoint_in_one_line_without_a_traceback(tmp_path):
    (tmp_path / "docs.jsonl").write_text('{"_id": "d1", "text": "a document"}\n')
    run = subprocess.run([sys.executable, "-m", "rr_assets.cli", "rerank", "--model", str(tmp_path / "nothing"),
                          "--query", "q", "--docs", str(tmp_path / "docs.jsonl")], capture_output=True, text=True,
                         timeout=120)
    assert run.returncode == 2 and "Traceback" not in run.stderr
    assert run.stderr.strip().splitlines() == [f"rr: {tmp_path / 'nothing' / STUDENT_FILE}: not a student checkpoint "
                                               f"(no {STUDENT_FILE})"]


def test_unknown_key_is_named(tmp_path):
    path = write(tmp_path, "collections: {x: {path: .}}\nteacher: {temprature: 0.5}\n")
    with pytest.raises(ConfigError, match=r"c.yaml: teacher: unknown keys \['temprature'\]"):
        load_config(path)


def test_unknown_collection_key_is_named(tmp_path):
    path = write(tmp_path, "collections: {x: {path: ., evalsplit: dev}}\n")
    with pytest.raises(ConfigError, match=r"c.yaml: collections.x: unknown keys \['evalsplit'\]"):
        load_config(path)


def test_unknown_section_is_named(tmp_path):
    path = write(tmp_path, "collections: {x: {path: .}}\ntrainer: {epochs: 1}\n")
    with pytest.raises(ConfigError, match=r"c.yaml: unknown sections \['trainer'\]"):
        load_config(path)


@pytest.mark.parametrize("text, message", [
    ("collections: {x: {eval_split: test}}\n", "collections.x needs a 'path'"),
    ("collections: {x: {path: ., train_split: test, eval_split: test}}\n", "train_split, eval_split and dev_split must differ"),
    ("teacher: {}\n", "'collections' must map collection names to sources"),
])
def test_unusable_collections_are_errors(tmp_path, text, message):
    with pytest.raises(ConfigError, match=message):
        load_config(write(tmp_path, text))


def test_missing_config_and_unknown_collection_are_errors(tmp_path):
    with pytest.raises(ConfigError, match="nope.yaml: config file not found"):
        load_config(tmp_path / "nope.yaml")
    with pytest.raises(ConfigError, match="no collection named 'other'"):
        load_config(DEMO_CONFIG).collection("other")


@pytest.mark.parametrize("section", sorted(SECTIONS))
def test_every_setting_has_help_text(section):
    cls = SECTIONS[section]
    names = [f.name for f in fields(cls)]
    assert names and all(f.metadata.get("help", "").strip() for f in fields(cls))
    lines = help_lines(cls)
    assert [line.split(" (", 1)[0] for line in lines] == names
    assert all(line.split("): ", 1)[1].strip() for line in lines)


def test_per_variant_budgets_override_only_budget_keys():
    from rr_assets.core.settings import TeacherSettings

    settings = TeacherSettings(judge_depth=10, train_queries=150, per_variant={"chat-json": {"train_queries": 30}})
    assert settings.for_variant("chat-json").train_queries == 30 and settings.for_variant("chat-json").judge_depth == 10
    assert settings.for_variant("grounded").train_queries == 150
    with pytest.raises(ValueError, match=r"teacher.per_variant.x: only .* not \['model'\]"):
        TeacherSettings(per_variant={"x": {"model": "other"}}).for_variant("x")


@pytest.mark.parametrize("collection, message", [
    ("{path: missing}", r"c.yaml: collections.x.path: .*missing is not a folder"),
    ("{path: ., eval_split: dev}", r"c.yaml: collections.x.eval_split: no qrels file .*dev.tsv \(splits there: \['test'\]"),
    ("{path: ., train_split: train}", r"c.yaml: collections.x.train_split: no qrels file .*train.tsv"),
    ("{path: ., first_stage_run: bm25.trec}", r"c.yaml: collections.x.first_stage_run: .*bm25.trec does not exist"),
    ("{path: ., teacher_answers: [gpt.jsonl]}", r"c.yaml: collections.x.teacher_answers: .*gpt.jsonl does not exist"),
])
def test_a_missing_folder_split_run_or_answer_file_fails_at_load_naming_the_key(tmp_path, collection, message):
    with pytest.raises(ConfigError, match=message):
        load_config(write(tmp_path, f"collections: {{x: {collection}}}\n"))
