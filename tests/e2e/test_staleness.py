"""`rr run` recomputes only what is stale, on a real Dagster instance: an unchanged re-run
materialises nothing and calls no teacher; editing one variant's template recomputes exactly that
variant's chain and the report; a student setting reruns the student and what follows."""

import re
import shutil
import time

import dagster as dg
import pytest
import yaml

from rr_assets.cli import materialize
from rr_assets.config import load_config
from rr_assets.partitions import variant_key
from tests.conftest import PROJECT_ROOT, write_config
from tests.proxy import RecordingProxy

pytestmark = pytest.mark.e2e
VARIANTS = ("default", "chat-json")


@pytest.fixture(scope="module")
def two_variants(tmp_path_factory, teacher_url, hf_base_model):
    """The whole graph for two prompt variants, materialised once, behind a recording proxy."""
    root = tmp_path_factory.mktemp("staleness")
    for variant in VARIANTS:
        shutil.copytree(PROJECT_ROOT / "resources" / "prompts" / variant, root / "prompts" / variant)
    proxy = RecordingProxy(teacher_url)
    path = write_config(root / "config.yaml", root / "home", root / "mlruns", prompts_dir=str(root / "prompts"),
                        teacher={"base_url": proxy.start(), "prompt_variants": list(VARIANTS), "judge_depth": 3,
                                 "train_queries": 4, "eval_queries": 3, "reasoning_queries": 2},
                        rl={"enabled": False}, explain={"queries": 0})
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DAGSTER_HOME", str(root / "dagster"))
        (root / "dagster").mkdir()
        assert materialize(load_config(path))
        yield path, root, proxy, dg.DagsterInstance.get()
    proxy.stop()


def steps_run(capsys) -> set[str]:
    """The steps a materialize() call reported as done."""
    return {m.group(1) for m in re.finditer(r"^(\S+): done", capsys.readouterr().out, re.MULTILINE)}


def data_version(instance, asset: str, variant: str) -> str | None:
    """The data version of the latest materialisation of `asset[demo|variant]`."""
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey(asset), asset_partitions=[variant_key("demo", variant)]), limit=1).records
    tags = records[0].asset_materialization.tags if records else {}
    return tags.get("dagster/data_version")


def below_checkpoint(instance, variant: str, before: str | None) -> set[str]:
    """What runs below a retrained checkpoint: everything when its weights changed, nothing when
    training kept the same state (the best dev state can be the initial one on the tiny demo)."""
    if data_version(instance, "student_checkpoint", variant) == before:
        return set()
    return {f"{asset}[demo|{variant}]" for asset in ("student_scores", "champion_candidate")}


def materializations(instance) -> int:
    return len(instance.fetch_materializations(dg.AssetRecordsFilter(asset_key=dg.AssetKey("corpus")), limit=1000).records
               ) + sum(len(instance.fetch_materializations(dg.AssetRecordsFilter(asset_key=dg.AssetKey(k)), limit=1000).records)
                       for k in ("teacher_judgments", "train_pointwise", "student_checkpoint", "student_scores",
                                 "benchmark_report", "splits", "first_stage_candidates", "bm25_index"))


def test_an_unchanged_rerun_materialises_nothing_and_calls_no_teacher(two_variants, capsys):
    path, _, proxy, instance = two_variants
    capsys.readouterr()
    before, sent = materializations(instance), len(proxy.exchanges)
    started = time.monotonic()
    assert materialize(load_config(path))
    seconds = time.monotonic() - started
    assert steps_run(capsys) == set()
    assert materializations(instance) == before and len(proxy.exchanges) == sent
    assert seconds < 120


def test_the_report_says_rl_is_off_and_has_no_rl_rows(two_variants):
    _, root, _, _ = two_variants
    report = (root / "home" / "reports" / "demo" / "report.md").read_text()
    for variant in VARIANTS:
        assert f"{variant}: no RL refinement (`rl.enabled: false`)" in report
    assert not re.search(r"^\| student_rl(_explain|_score_subset)?(:\S+)? \|", report, re.MULTILINE)
    assert re.search(r"^\| student:chat-json \|", report, re.MULTILINE)


def test_dry_run_says_what_would_run_and_why(two_variants, capsys):
    path, root, _, _ = two_variants
    settings = yaml.safe_load(path.read_text())
    settings["student"]["eval_every"] = 3
    path.write_text(yaml.safe_dump(settings))
    capsys.readouterr()
    try:
        assert materialize(load_config(path), dry_run=True)
        out = capsys.readouterr().out
    finally:
        settings["student"]["eval_every"] = 2
        path.write_text(yaml.safe_dump(settings))
    assert "student_checkpoint[demo|default]: its code or settings changed" in out
    assert re.search(r"student_scores\[demo\|chat-json\]: upstream student_(rl_)?checkpoint\[demo\|chat-json\] will be "
                     r"recomputed", out)
    assert "teacher_judgments" not in out


def test_editing_one_variant_recomputes_exactly_its_chain(two_variants, capsys):
    path, root, proxy, instance = two_variants
    checkpoint = data_version(instance, "student_checkpoint", "chat-json")
    template = root / "prompts" / "chat-json" / "direct.jinja"
    template.write_text(template.read_text() + "Keep the explanation short.\n")
    known = {e.body_hash for e in proxy.exchanges}
    sent = len(proxy.exchanges)
    capsys.readouterr()
    assert materialize(load_config(path))
    ran = steps_run(capsys)
    chain = {f"{asset}[demo|chat-json]" for asset in (
        "teacher_judgments", "teacher_comparisons", "teacher_rankings", "teacher_injection_probe", "train_pointwise",
        "train_pairwise", "student_checkpoint", "student_rl_checkpoint")} | below_checkpoint(instance, "chat-json", checkpoint)
    assert ran - {"champion[demo|chat-json]"} == chain | {"benchmark_report[demo]"}
    assert not [step for step in ran if "default" in step]
    new = proxy.exchanges[sent:]
    assert new and not {e.body_hash for e in new} & known  # only prompts never sent before


def test_a_student_setting_reruns_the_student_and_what_follows_only(two_variants, capsys):
    path, _, proxy, instance = two_variants
    checkpoints = {v: data_version(instance, "student_checkpoint", v) for v in VARIANTS}
    settings = yaml.safe_load(path.read_text())
    settings["student"]["learning_rate"] = 5e-5
    path.write_text(yaml.safe_dump(settings))
    sent = len(proxy.exchanges)
    capsys.readouterr()
    assert materialize(load_config(path))
    ran = steps_run(capsys)
    retrained = {f"{asset}[demo|{variant}]" for variant in VARIANTS for asset in ("student_checkpoint", "student_rl_checkpoint")}
    below = set().union(*(below_checkpoint(instance, v, checkpoints[v]) for v in VARIANTS))
    report = {"benchmark_report[demo]"} if below else set()
    assert ran - {f"champion[demo|{v}]" for v in VARIANTS} == retrained | below | report
    assert len(proxy.exchanges) == sent
