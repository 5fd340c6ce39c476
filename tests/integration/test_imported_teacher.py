"""An imported teacher through the real pipeline (Dagster instance, DuckDB, GX checks): its answers
become training tables that teach a real student; a mostly bad file fails and keeps what was
imported; a changed file makes exactly the imported teacher partitions stale."""

import json
import os
import shutil
from dataclasses import replace

import dagster as dg
import pytest

from rr_assets.cli import materialize
from rr_assets.config import load_config
from rr_assets.core.reranker import StudentReranker
from rr_assets.core.student_data import reasoning_targets, training_examples
from rr_assets.core.student_model import choose_precision
from rr_assets.core.training import StudentTrainer
from rr_assets.core.warehouse import Warehouse
from rr_assets.definitions import build_definitions
from rr_assets.refresh import Refresher
from tests.conftest import DEMO_DIR, PROJECT_ROOT, demo_collection, write_config
from tests.integration.test_student import LABELS, SETTINGS

pytestmark = pytest.mark.integration
TEACHER_TABLES = '+key:"train_pointwise" or +key:"train_pairwise" or +key:"train_listwise"'
WHERE = {"collection": "demo", "prompt_variant": "imported"}


def answer_lines(queries: int = 4) -> list[str]:
    """`queries` demo queries, each shown its best judged document among three of another subject;
    the teacher ranks the best first (R2R's form)."""
    collection = demo_collection()
    best = {}
    for r in sorted(collection.qrels, key=lambda r: -r.relevance):
        best.setdefault(r.query_id, r.doc_id)
    docs = sorted(d.doc_id for d in collection.documents)
    lines = []
    for i, query_id in enumerate(sorted(best)[:queries]):
        others = [d for d in docs if not d.startswith(best[query_id].split("-")[0])][i * 3: i * 3 + 3]
        lines.append(json.dumps({"query_id": query_id, "shown": [others[0], best[query_id], *others[1:]],
                                 "ranking": [best[query_id], *others],
                                 "direct_reasons": {best[query_id]: "It explains the cause the query asks about."}}))
    return lines


@pytest.fixture
def imported(tmp_path):
    """A config over the demo collection whose only variant imports `answers.jsonl`; every judged
    query trains; DAGSTER_HOME in tmp_path."""
    answers = tmp_path / "answers.jsonl"
    answers.write_text("\n".join(answer_lines()) + "\n")
    path = write_config(tmp_path / "config.yaml", tmp_path / "home", tmp_path / "mlruns",
                        collections={"demo": {"path": str(PROJECT_ROOT / "resources" / "collections" / "demo"),
                                              "teacher_answers": [str(answers)]}},
                        splits={"eval_percent": 0, "dev_percent": 0}, teacher={"prompt_variants": ["imported"]})
    (tmp_path / "dagster").mkdir()
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DAGSTER_HOME", str(tmp_path / "dagster"))
        config = load_config(path)
        assert materialize(config, selection=TEACHER_TABLES)
        yield config, answers, dg.DagsterInstance.get()


def test_imported_answers_train_a_student(imported, hf_base_model, tmp_path):
    config, _, _ = imported
    warehouse = Warehouse(os.path.join(config.home, "warehouse.duckdb"))
    examples = training_examples(warehouse, WHERE, -1)
    preferences, orders = reasoning_targets(warehouse, WHERE)
    ranked = {q: order for q, (order,) in orders.items()}
    assert len(ranked) == 4 and len(examples) == 16 and len(preferences) == 4 * 6  # every pair the order implies
    assert {e.label for e in examples if e.doc_id == ranked[e.query_id][0]} == {2}
    precision = choose_precision("auto")
    out = tmp_path / "student"
    StudentTrainer(hf_base_model, replace(SETTINGS, epochs=6), LABELS, precision).train(examples, out, None, preferences,
                                                                         orders)
    texts = {(e.query_id, e.doc_id): (e.query, e.document) for e in examples}
    keys = [(q, d) for q, order in ranked.items() for d in (order[0], order[-1])]
    scores = dict(zip(keys, StudentReranker.load(out, precision).score([texts[k] for k in keys], batch_size=8)))
    first_above_last = sum(scores[q, order[0]] > scores[q, order[-1]] for q, order in ranked.items())
    assert first_above_last >= 3


def test_a_mostly_bad_file_fails_and_keeps_what_was_imported(imported):
    config, answers, _ = imported
    warehouse = Warehouse(os.path.join(config.home, "warehouse.duckdb"))
    before = warehouse.table_hash("teacher_rankings", WHERE)
    answers.write_text(answers.read_text().splitlines()[0] + "\n{broken\n[]\n{\"query_id\": \"nope\"}\n")
    assert not materialize(config, selection='key:"teacher_rankings"')
    assert warehouse.table_hash("teacher_rankings", WHERE) == before


def test_a_changed_file_makes_exactly_the_imported_teacher_stale(imported):
    config, answers, instance = imported
    defs = build_definitions(config)
    wanted = set(dg.AssetSelection.from_string(TEACHER_TABLES).resolve(defs.resolve_asset_graph()))
    refresher = Refresher(defs, instance, ["demo"], ["imported"], wanted, say=lambda line: None)
    refresher.observe_sources()
    assert refresher.plan() == []
    lines = answers.read_text().splitlines()
    answers.write_text("\n".join(lines[1:]) + "\n")  # one answer fewer
    refresher.observe_sources()
    stale = {step.label: step.reason for step in refresher.plan()}
    readers = {f"{a}[demo|imported]" for a in ("teacher_judgments", "teacher_comparisons", "teacher_rankings")}
    assert readers <= set(stale) and all("upstream teacher_answer_files[demo|imported] changed" in stale[s] for s in readers)
    assert not any(s.startswith(("corpus", "splits", "bm25_index", "first_stage_candidates")) for s in stale)


def test_held_out_reasons_never_train_and_are_the_references(imported):
    config, _, _ = imported
    warehouse = Warehouse(os.path.join(config.home, "warehouse.duckdb"))
    assert {e.explanation for e in training_examples(warehouse, WHERE, -1, held_out_percent=100)} == {""}
    trained = [e for e in training_examples(warehouse, WHERE, -1) if e.explanation]
    references = warehouse.query("held_out_reasons", {**WHERE, "held_out_percent": 100, "pairs": 10})
    assert len(trained) == len(references) == 4
    assert set(references["explanation"]) == {"It explains the cause the query asks about."}
    assert warehouse.query("held_out_reasons", {**WHERE, "held_out_percent": 0, "pairs": 10}).empty


def unjudged_demo(tmp_path):
    """The demo collection without its qrels."""
    folder = tmp_path / "unjudged"
    folder.mkdir()
    for name in ("corpus.jsonl", "queries.jsonl"):
        shutil.copy(DEMO_DIR / name, folder / name)
    return folder


def test_imported_answers_without_qrels_pass_the_qrels_check_with_nothing_to_compare(tmp_path, monkeypatch):
    answers = tmp_path / "answers.jsonl"
    answers.write_text("\n".join(answer_lines()) + "\n")
    path = write_config(tmp_path / "config.yaml", tmp_path / "home", tmp_path / "mlruns",
                        collections={"demo": {"path": str(unjudged_demo(tmp_path)), "eval_split": "",
                                              "teacher_answers": [str(answers)]}},
                        teacher={"prompt_variants": ["imported"]})
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster"))
    (tmp_path / "dagster").mkdir()
    assert materialize(load_config(path), selection='+key:"teacher_judgments"')
    key = dg.AssetCheckKey(dg.AssetKey("teacher_judgments"), "teacher_agrees_with_qrels")
    record = dg.DagsterInstance.get().event_log_storage.get_latest_asset_check_execution_by_key([key])[key]
    assert record.status.value == "SUCCEEDED"
    assert record.event.asset_check_evaluation.metadata["pairs"].value == 0


def test_a_grounded_variant_on_a_collection_without_qrels_fails_before_any_teacher_call(tmp_path, monkeypatch):
    folder = unjudged_demo(tmp_path)
    path = write_config(tmp_path / "config.yaml", tmp_path / "home", tmp_path / "mlruns",
                        collections={"demo": {"path": str(folder), "eval_split": ""}},
                        teacher={"base_url": "http://127.0.0.1:9/v1", "prompt_variants": ["grounded"]})
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster"))
    (tmp_path / "dagster").mkdir()
    assert not materialize(load_config(path), selection='key:"teacher_judgments"')
    instance = dg.DagsterInstance.get()
    [run] = instance.get_run_records(dg.RunsFilter(tags={"dagster/partition": "demo|grounded"}), limit=1)
    [failure] = [e.dagster_event for e in instance.all_logs(run.dagster_run.run_id)
                 if e.dagster_event and e.dagster_event.event_type_value == "STEP_FAILURE"]
    assert "collection 'demo' has no qrels" in failure.step_failure_data.error.message
