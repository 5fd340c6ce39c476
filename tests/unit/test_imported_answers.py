"""Imported teacher answers: both forms read, every kind of bad line quarantined with its file and
line, a mostly bad file refused, and the rows of the teacher tables derived from the answers."""

import json

import pytest

from rr_assets.core.imported_answers import (
    TeacherAnswersError,
    comparison_rows,
    judgment_rows,
    ranking_rows,
    read_answer_file,
    teacher_agreement,
)

pytestmark = pytest.mark.unit

QUERIES = {"q1", "q2"}
DOCS = {"a", "b", "c", "d", "e"}


def r2r(query_id="q1", shown=("a", "b", "c"), ranking=("b", "a", "c"), **extra) -> str:
    return json.dumps({"query_id": query_id, "shown": list(shown), "ranking": list(ranking), **extra})


def write(path, *lines):
    path.write_text("\n".join(lines) + "\n")
    return path


def test_the_r2r_form_with_its_reasons(tmp_path):
    line = r2r(listwise_reason="[2] answers it.", direct_reasons={"b": "It answers the query."},
               listwise_reasons={"b": "Better than the others."})
    found = read_answer_file(write(tmp_path / "gpt-4.jsonl", line), QUERIES, DOCS)
    (answer,) = found.answers
    assert (answer.query_id, answer.shown, answer.ranking) == ("q1", ("a", "b", "c"), ("b", "a", "c"))
    assert answer.model == "gpt-4" and found.models == ["gpt-4"]  # named by the file
    assert answer.direct_reasons == {"b": "It answers the query."}
    assert answer.comparison_reasons == {"b": "Better than the others."}
    assert len(found.sha256) == 64 and answer.request_hash.startswith("imported:") and found.quarantined == []


def test_the_rank_llm_form_shows_candidates_in_first_stage_order(tmp_path):
    line = json.dumps({"query": {"qid": "q2", "text": "x"}, "model": "rank_zephyr",
                       "candidates": [{"docid": "c", "score": 1.0}, {"docid": "a", "score": 3.0},
                                      {"docid": "b", "score": 2.0}]})
    (answer,) = read_answer_file(write(tmp_path / "zephyr.jsonl", line), QUERIES, DOCS).answers
    assert answer.ranking == ("c", "a", "b") and answer.shown == ("a", "b", "c") and answer.model == "rank_zephyr"


def test_bad_lines_are_quarantined_with_file_line_and_reason(tmp_path):
    good = [r2r("q1"), r2r("q2"), r2r("q1", shown=("c", "d"), ranking=("d", "c")),
            r2r("q2", shown=("d", "e"), ranking=("e", "d")), r2r("q1", shown=("a", "e"), ranking=("e", "a")),
            r2r("q2", shown=("a", "d"), ranking=("a", "d"))]
    bad = ["{not json",
           r2r(ranking=("b", "a", "z")),                  # ranks a passage not in its list
           r2r(shown=("a", "b", "b"), ranking=("b", "a", "b")),  # names a passage twice
           r2r(query_id="nope"),                          # unknown query
           r2r(shown=("a", "x"), ranking=("x", "a")),     # unknown passage
           r2r("q1")]                                     # the same list answered again
    path = write(tmp_path / "t.jsonl", *good, *bad)
    found = read_answer_file(path, QUERIES, DOCS)
    assert len(found.answers) == 6
    reasons = {q.line: q.reason for q in found.quarantined}
    assert set(reasons) == {7, 8, 9, 10, 11, 12} and all(q.file == str(path) for q in found.quarantined)
    assert reasons[7].startswith("not valid JSON")
    assert "names passage 'z', which was not in the list shown" in reasons[8]
    assert "'b' appears twice" in reasons[9]
    assert "unknown query 'nope'" in reasons[10]
    assert "unknown passage 'x'" in reasons[11]
    assert "a second answer" in reasons[12]


def test_a_file_of_mostly_bad_lines_is_refused_naming_it(tmp_path):
    path = write(tmp_path / "mostly-bad.jsonl", r2r(), "{", "[]", r2r(query_id="nope"))
    with pytest.raises(TeacherAnswersError, match=r"mostly-bad.jsonl: 3 of 4 answers are bad \(line 2: not valid JSON"):
        read_answer_file(path, QUERIES, DOCS)
    with pytest.raises(TeacherAnswersError, match="not found"):
        read_answer_file(tmp_path / "missing.jsonl", QUERIES, DOCS)


def answers(tmp_path):
    gpt35 = write(tmp_path / "gpt-3.5.jsonl", r2r(shown=("a", "b", "c"), ranking=("a", "b", "c")))
    gpt4 = write(tmp_path / "gpt-4.jsonl", r2r(shown=("a", "b", "c"), ranking=("b", "a", "c"),
                                              direct_reasons={"b": "Direct."}, listwise_reasons={"b": "Compared."}))
    return [a for path in (gpt35, gpt4) for a in read_answer_file(path, QUERIES, DOCS).answers]


def test_labels_come_from_rank_positions_averaged_over_teachers_with_their_reasons(tmp_path):
    rows = {r["doc_id"]: r for r in judgment_rows(answers(tmp_path), {"q1": "train"}, (2, 1, 0), ("direct", "comparison"))}
    # a: ranks 1 and 2 → (2 + 1) / 2 rounds half up to 2; b: ranks 2 and 1 → 2; c: last twice → 0
    assert {d: r["label"] for d, r in rows.items()} == {"a": 2, "b": 2, "c": 0}
    assert rows["b"]["explanation"] == "Direct. Compared." and rows["a"]["explanation"] is None
    only_direct = judgment_rows(answers(tmp_path), {}, (2, 1, 0), ("direct",))
    assert [r["explanation"] for r in only_direct if r["doc_id"] == "b"] == ["Direct."]


def test_each_answer_is_a_window_and_the_pairs_follow_the_majority(tmp_path):
    found = answers(tmp_path)
    windows = ranking_rows(found)
    assert [(w["window_index"], json.loads(w["final_doc_ids"]), w["model"]) for w in windows] == [
        (0, ["a", "b", "c"], "gpt-3.5"), (1, ["b", "a", "c"], "gpt-4")]
    pairs = {(p["doc_a"], p["doc_b"]): p["preferred_doc_id"] for p in comparison_rows(found)}
    assert pairs == {("a", "c"): "a", ("b", "c"): "b"}  # a vs b: one vote each, no row
    agreement = teacher_agreement(found)
    assert agreement == {"gpt-3.5 vs gpt-4": {"lists": 1, "same_top1": 0.0, "same_ranking": 0.0}}
