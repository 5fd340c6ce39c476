from dataclasses import replace

import dagster as dg
import pytest

from rr_assets.config import DEMO_CONFIG, load_config
from rr_assets.definitions import build_definitions, code_versions
from rr_assets.jobs import PHASES

pytestmark = pytest.mark.unit

COLLECTION = {"collection_files", "corpus", "queries", "qrels", "bm25_index", "first_stage_candidates", "splits",
              "benchmark_report"}
BY_VARIANT = {"teacher_judgments", "teacher_comparisons", "teacher_rankings", "teacher_injection_probe",
              "train_pointwise", "train_pairwise", "train_listwise", "student_checkpoint", "student_rl_checkpoint",
              "student_scores", "champion_candidate", "champion"}
TEACHER = {"teacher_judgments", "teacher_comparisons", "teacher_rankings", "teacher_injection_probe"}


@pytest.fixture(scope="module")
def config():
    return load_config(DEMO_CONFIG)


@pytest.fixture(scope="module")
def defs(config):
    return build_definitions(config)


@pytest.fixture(scope="module")
def graph(defs):
    return defs.resolve_asset_graph()


def names(keys):
    return {k.to_user_string() for k in keys}


def test_the_graph_holds_every_stage(graph):
    assert names(graph.get_all_asset_keys()) == COLLECTION | BY_VARIANT | {"prompt_templates", "teacher_answer_files",
                                                                           "student_base_model"}


def test_partitions_of_each_asset(graph):
    def partitions(name):
        return graph.get(dg.AssetKey(name)).partitions_def

    for name in COLLECTION:
        assert isinstance(partitions(name), dg.DynamicPartitionsDefinition) and partitions(name).name == "collection", name
    assert partitions("prompt_templates").name == "prompt_variant"
    for name in BY_VARIANT:
        dimensions = partitions(name).partitions_defs
        assert isinstance(partitions(name), dg.MultiPartitionsDefinition), name
        assert {d.name: d.partitions_def.name for d in dimensions} == {"collection": "collection",
                                                                       "prompt_variant": "prompt_variant"}, name
    assert partitions("student_base_model") is None


def test_each_phase_is_a_job_over_one_partitioning(defs):
    def selected(job):
        return names(defs.resolve_job_def(job).asset_layer.selected_asset_keys)

    assert len(PHASES) == 7
    assert selected("rr_observe_collections") == {"collection_files"}
    assert selected("rr_observe_prompts") == {"prompt_templates"}
    assert selected("rr_observe_teacher_answers") == {"teacher_answer_files"}
    assert selected("rr_collection") == COLLECTION - {"collection_files", "benchmark_report"}
    assert selected("rr_base_model") == {"student_base_model"}
    assert selected("rr_teacher_and_student") == BY_VARIANT
    assert selected("rr_report") == {"benchmark_report"}


def test_checks_guard_the_teacher_data_the_student_and_the_champion(graph):
    assert names(graph.asset_check_keys) == {
        "teacher_judgments:teacher_judgments_gx_suite", "teacher_comparisons:teacher_comparisons_gx_suite",
        "teacher_rankings:teacher_rankings_gx_suite", "teacher_judgments:teacher_agrees_with_qrels",
        "teacher_comparisons:teacher_comparisons_swap_consistency", "teacher_rankings:teachers_agree_on_shared_lists",
        "student_checkpoint:learned_on_dev",
        "student_checkpoint:beats_first_stage_on_dev", "champion_candidate:beats_first_stage",
        "champion_candidate:beats_champion"}


def test_code_versions_join_the_declared_version_with_the_settings(graph, config):
    """An SQL model declares its file's hash, a Python asset the version beside its code."""
    assert graph.get(dg.AssetKey("train_pointwise")).code_version.endswith("-" + code_versions(config)["train_pointwise"])
    assert graph.get(dg.AssetKey("teacher_judgments")).code_version == f"1-{code_versions(config)['teacher_judgments']}"
    assert graph.get(dg.AssetKey("student_checkpoint")).code_version.startswith("5-")


def changed(config, **sections):
    """The assets whose code version changes when the given settings change."""
    edited = replace(config, **{name: replace(getattr(config, name), **values) for name, values in sections.items()})
    before, after = code_versions(config), code_versions(edited)
    assert before.keys() == after.keys()
    return {name for name in before if before[name] != after[name]}


def test_a_student_setting_changes_only_the_student_checkpoints(config):
    doubled = {"learning_rate": 2 * config.student.learning_rate}
    assert changed(config, student=doubled) == {"student_checkpoint", "student_rl_checkpoint"}


def test_the_hard_negative_depth_also_changes_the_pointwise_table(config):
    assert changed(config, student={"hard_negative_depth": 5}) == {
        "train_pointwise", "student_checkpoint", "student_rl_checkpoint"}


def test_an_rl_setting_changes_only_the_rl_checkpoint(config):
    assert changed(config, rl={"steps": 99}) == {"student_rl_checkpoint"}


def test_a_teacher_output_setting_changes_the_teacher_assets(config):
    assert changed(config, teacher={"judge_depth": 3}) == TEACHER


def test_teacher_operations_change_nothing(config):
    assert changed(config, teacher={"concurrency": 16}) == set()
    assert changed(config, teacher={"timeout_s": 5.0, "max_retries": 0}) == set()


def test_retrieval_settings_change_the_first_stage(config):
    assert changed(config, retrieval={"first_stage_depth": 50}) == {"first_stage_candidates"}


def test_the_automation_sensor_starts_as_the_config_says(config, defs):
    assert defs.resolve_sensor_def("rr_automation").default_status == dg.DefaultSensorStatus.RUNNING
    quiet = build_definitions(replace(config, execution=replace(config.execution, automation=False)))
    assert quiet.resolve_sensor_def("rr_automation").default_status == dg.DefaultSensorStatus.STOPPED
    assert changed(config, execution={"automation": False}) == set()
