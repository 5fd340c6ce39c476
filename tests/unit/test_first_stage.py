import hashlib
import json

import pytest

from rr_assets.core.first_stage import Candidate, RunFormatError, read_run, write_trec_run

pytestmark = pytest.mark.unit


def ranked(run):
    return [(c.query_id, c.doc_id, c.rank) for c in run.candidates]


def test_trec_ranks_are_recomputed_by_descending_score(tmp_path):
    path = tmp_path / "run.trec"
    # The file's rank column is wrong on purpose; ties keep file order; a repeated pair keeps the first.
    path.write_text("q1 Q0 a 1 1.0 t\nq1 Q0 b 2 3.0 t\nq1 Q0 c 3 3.0 t\nq1 Q0 a 4 9.0 t\n\nq2 Q0 x 7 0.5 t\n")
    run = read_run(path)
    assert ranked(run) == [("q1", "b", 1), ("q1", "c", 2), ("q1", "a", 3), ("q2", "x", 1)]
    assert run.candidates[0].score == 3.0
    assert run.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert not run.bad_lines and not run.documents and not run.queries


def test_bad_trec_lines_are_collected_with_line_and_reason(tmp_path):
    path = tmp_path / "run.trec"
    path.write_text("q1 Q0 a 1 2.0 t\nq1 Q0 b 2\nq1 Q0 c 3 high t\nq1 Q0 d 4 1.0 t\n")
    run = read_run(path)
    assert ranked(run) == [("q1", "a", 1), ("q1", "d", 2)]
    assert [(b.line, b.reason) for b in run.bad_lines] == [
        (2, "expected 6 columns (qid Q0 docid rank score tag), got 4"),
        (3, "score 'high' is not a number")]


def test_a_file_of_mostly_bad_lines_is_a_format_error(tmp_path):
    path = tmp_path / "run.trec"
    path.write_text("q1 Q0 a 1 2.0 t\nnot a run\nstill not\n")
    with pytest.raises(RunFormatError, match=r"run.trec: 2 bad lines, e.g. line 2"):
        read_run(path)


@pytest.mark.parametrize("content, message", [
    ("", "no candidates could be read \\(empty file\\)"),
    ("just words here\n", "no candidates could be read \\(line 1: expected 6 columns"),
    ("[{\"query\": ", "not valid JSON"),
])
def test_unreadable_files_are_format_errors_naming_the_file(tmp_path, content, message):
    path = tmp_path / "run.txt"
    path.write_text(content)
    with pytest.raises(RunFormatError, match=f"run.txt: {message}"):
        read_run(path)


def test_missing_run_file_is_a_format_error(tmp_path):
    with pytest.raises(RunFormatError, match="nope.trec: first-stage run file not found"):
        read_run(tmp_path / "nope.trec")


def test_rankgpt_json_list_gives_candidates_and_texts(tmp_path):
    path = tmp_path / "run.json"
    path.write_text(json.dumps([
        {"query": {"text": "why is the sky blue", "qid": "q1"},
         "hits": [{"docid": "d1", "content": "Rayleigh scattering.", "score": 1.5},
                  {"docid": "d2", "content": "Clouds are white.", "score": 2.5}]},
        # rank_llm style: the query is text and the id sits on the hits; no scores: file order
        {"query": "what makes rain",
         "hits": [{"qid": "q2", "docid": "d3", "content": "Condensation."}, {"qid": "q2", "docid": "d1"}]},
    ]))
    run = read_run(path)
    assert ranked(run) == [("q1", "d2", 1), ("q1", "d1", 2), ("q2", "d3", 1), ("q2", "d1", 2)]
    assert run.queries == {"q1": "why is the sky blue", "q2": "what makes rain"}
    assert run.documents == {"d1": "Rayleigh scattering.", "d2": "Clouds are white.", "d3": "Condensation."}


def test_jsonl_bad_records_are_collected(tmp_path):
    path = tmp_path / "run.jsonl"
    path.write_text("\n".join([
        json.dumps({"query": {"text": "t", "qid": "q1"}, "hits": [{"docid": "a", "score": 2}, {"docid": "b", "score": 1}]}),
        "{broken",
        json.dumps({"query": "no id anywhere", "hits": [{"docid": "c"}]}),
        json.dumps({"query": {"text": "t2", "qid": "q2"}, "hits": [{"content": "no docid"}, {"docid": "e", "score": 0}]}),
    ]) + "\n")
    run = read_run(path)
    assert ranked(run) == [("q1", "a", 1), ("q1", "b", 2), ("q2", "e", 1)]
    assert [(b.line, b.reason) for b in run.bad_lines] == [
        (2, "expected an object with 'query' and 'hits'"),
        (3, "no query id (query.qid, qid or hits[].qid)"),
        (4, "hit 0 has no 'docid'")]


def test_a_non_numeric_json_score_is_a_bad_line_not_a_crash(tmp_path):
    path = tmp_path / "run.json"
    path.write_text(json.dumps([{"query": {"text": "t", "qid": "q1"},
                                 "hits": [{"docid": "a", "score": "high"}, {"docid": "b", "score": 1.0}]}]))
    try:
        run = read_run(path)
    except RunFormatError:
        return
    assert [c.doc_id for c in run.candidates] == ["b"] and len(run.bad_lines) == 1


def test_written_trec_run_reads_back(tmp_path):
    candidates = [Candidate("q1", "d2", 1, 2.5), Candidate("q1", "d1", 2, 1.25), Candidate("q2", "d9", 1, -0.5)]
    path = tmp_path / "out" / "run.trec"
    write_trec_run(candidates, path, tag="rr")
    assert path.read_text().splitlines()[0] == "q1 Q0 d2 1 2.500000 rr"
    assert read_run(path).candidates == candidates
