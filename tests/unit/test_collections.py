import json

import pytest

from rr_assets.core.collections import CollectionError, CollectionSource, load_collection, source_fingerprint
from tests.conftest import DEMO_DIR

pytestmark = pytest.mark.unit


def write_beir(folder, corpus_lines, queries_lines, qrels_text, split="test"):
    (folder / "qrels").mkdir(parents=True, exist_ok=True)
    (folder / "corpus.jsonl").write_bytes(b"\n".join(corpus_lines) + b"\n")
    (folder / "queries.jsonl").write_bytes(b"\n".join(queries_lines) + b"\n")
    (folder / "qrels" / f"{split}.tsv").write_text(qrels_text)


def doc(i: int) -> bytes:
    return json.dumps({"_id": f"d{i}", "title": "T", "text": f"text {i}"}).encode()


def query(i: int) -> bytes:
    return json.dumps({"_id": f"q{i}", "text": f"question {i}"}).encode()


GOOD_DOCS = [doc(i) for i in range(1, 5)]
GOOD_QUERY = query(1)


def load(folder, **source):
    return load_collection(CollectionSource("c", str(folder), **source))


def test_demo_collection_is_large_graded_and_consistent():
    collection = load_collection(CollectionSource("demo", str(DEMO_DIR)))
    assert len(collection.queries) >= 40 and len(collection.documents) >= 300
    assert not collection.quarantined
    assert {r.relevance for r in collection.qrels} == {1, 2}
    assert {r.split for r in collection.qrels} == {"test"}
    judged = {r.query_id for r in collection.qrels if r.relevance == 2}
    assert judged == {q.query_id for q in collection.queries}
    domains = {d.doc_id.split("-")[0] for d in collection.documents}
    assert len(domains) >= 4
    assert collection.candidates is None and collection.run_sha256 == ""


@pytest.mark.parametrize(
    "corpus, qrels, where, reason",
    [
        ([*GOOD_DOCS, b"{not json"], "", "corpus.jsonl:5", "not valid JSON"),
        ([*GOOD_DOCS, b'{"title": "no id", "text": "x"}'], "", "corpus.jsonl:5", "missing '_id'"),
        ([*GOOD_DOCS, GOOD_DOCS[0]], "", "corpus.jsonl:5", "duplicate id 'd1' (the first occurrence is kept)"),
        ([*GOOD_DOCS, b'{"_id": "d9", "text": "caf\xe9"}'], "", "corpus.jsonl:5", "invalid UTF-8"),
        ([*GOOD_DOCS, b'{"_id": "d9", "title": "", "text": "  "}'], "", "corpus.jsonl:5", "document 'd9' has no text"),
        (GOOD_DOCS, "query-id\tcorpus-id\tscore\nq1\td1\t2\nq1\td9\t1\n", "test.tsv:3", "unknown document 'd9'"),
        (GOOD_DOCS, "q1\td1\t2\nq1\td2\thigh\n", "test.tsv:2", "score 'high' is not an integer"),
        (GOOD_DOCS, "q1\td1\t2\nq7\td2\t1\n", "test.tsv:2", "unknown query 'q7'"),
        (GOOD_DOCS, "q1\td1\t2\nq1\td1\t1\n", "test.tsv:2", "duplicate judgment of ('q1', 'd1')"),
        (GOOD_DOCS, "q1\td1\t2\nq1\td2\n", "test.tsv:2", "expected 3 tab-separated columns, got 2"),
    ],
)
def test_bad_lines_are_quarantined_with_file_line_and_reason(tmp_path, corpus, qrels, where, reason):
    write_beir(tmp_path, corpus, [GOOD_QUERY], qrels)
    collection = load(tmp_path)
    [bad] = collection.quarantined
    assert f"{bad.file.rsplit('/', 1)[-1]}:{bad.line}" == where and bad.reason.startswith(reason)
    assert len(collection.documents) == 4


def test_a_file_of_mostly_bad_lines_is_an_error(tmp_path):
    write_beir(tmp_path, [GOOD_DOCS[0], b"nope", b"[1]", b"{"], [GOOD_QUERY], "")
    with pytest.raises(CollectionError, match=r"corpus.jsonl: 3 of 4 lines are bad \(line 2: not valid JSON"):
        load(tmp_path)


def test_missing_file_is_an_error(tmp_path):
    write_beir(tmp_path, GOOD_DOCS, [GOOD_QUERY], "")
    (tmp_path / "queries.jsonl").unlink()
    with pytest.raises(CollectionError, match="queries.jsonl: file not found"):
        load(tmp_path)


def test_named_splits_follow_their_qrels_files(tmp_path):
    write_beir(tmp_path, GOOD_DOCS, [query(1), query(2), query(3)], "q1\td1\t1\nq2\td2\t1\n", split="train")
    (tmp_path / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq3\td3\t2\n")
    collection = load(tmp_path, train_split="train", eval_split="test")
    assert {(r.query_id, r.split) for r in collection.qrels} == {("q1", "train"), ("q2", "train"), ("q3", "test")}
    assert not collection.quarantined
    only_eval = load(tmp_path, eval_split="test")
    assert {(r.query_id, r.split) for r in only_eval.qrels} == {("q3", "test")}


def test_a_query_judged_in_both_splits_is_an_error_naming_it(tmp_path):
    write_beir(tmp_path, GOOD_DOCS, [query(1), query(2)], "q1\td1\t1\nq2\td2\t1\n", split="train")
    (tmp_path / "qrels" / "test.tsv").write_text("q2\td3\t2\n")
    with pytest.raises(CollectionError, match=r"query 'q2' is judged in both train.tsv and test.tsv"):
        load(tmp_path, train_split="train", eval_split="test")


def test_missing_train_split_file_is_an_error(tmp_path):
    write_beir(tmp_path, GOOD_DOCS, [GOOD_QUERY], "q1\td1\t1\n")
    with pytest.raises(CollectionError, match=r"train.tsv: file not found"):
        load(tmp_path, train_split="train", eval_split="test")


def test_candidate_only_corpus_keeps_qrels_of_documents_outside_it(tmp_path):
    # A TREC run over d1..d4; the qrels also judge d99, which is not among the candidates.
    write_beir(tmp_path, GOOD_DOCS, [GOOD_QUERY], "q1\td1\t1\nq1\td99\t2\n")
    run = tmp_path / "bm25.trec"
    run.write_text("q1 Q0 d2 1 9.0 bm25\nq1 Q0 d1 2 8.0 bm25\nq1 Q0 d77 3 7.0 bm25\n")
    collection = load(tmp_path, first_stage_run=str(run))
    assert {(r.doc_id, r.relevance) for r in collection.qrels} == {("d1", 1), ("d99", 2)}
    assert [(c.doc_id, c.rank) for c in collection.candidates] == [("d2", 1), ("d1", 2)]
    [bad] = collection.quarantined  # the run's candidate outside the corpus
    assert bad.file == str(run) and "unknown document 'd77'" in bad.reason
    assert len(collection.run_sha256) == 64

    without_run = load(tmp_path)
    assert {r.doc_id for r in without_run.qrels} == {"d1"}
    assert [q.reason for q in without_run.quarantined] == ["unknown document 'd99'"]


def test_a_json_run_supplies_query_and_document_texts(tmp_path):
    (tmp_path / "qrels").mkdir()
    (tmp_path / "qrels" / "test.tsv").write_text("q1\tp2\t3\nq1\tp9\t1\n")
    run = tmp_path / "run.json"
    run.write_text(json.dumps([{"query": {"text": "how do tides work", "qid": "q1"},
                                "hits": [{"docid": "p1", "content": "The moon's pull.", "score": 3.0},
                                         {"docid": "p2", "content": "Tides follow the moon.", "score": 5.0}]}]))
    collection = load(tmp_path, first_stage_run=str(run))
    assert [(q.query_id, q.text) for q in collection.queries] == [("q1", "how do tides work")]
    assert {d.doc_id: d.text for d in collection.documents} == {"p1": "The moon's pull.",
                                                               "p2": "Tides follow the moon."}
    assert [(c.doc_id, c.rank) for c in collection.candidates] == [("p2", 1), ("p1", 2)]
    assert {r.doc_id for r in collection.qrels} == {"p2", "p9"}
    assert not collection.quarantined


def test_source_labels_and_splits():
    assert CollectionSource("c", ".").first_stage_label == "bm25"
    assert CollectionSource("c", ".", first_stage_run="r.trec").first_stage_label == "first_stage"
    assert CollectionSource("c", ".", first_stage_run="r.trec", first_stage_name="splade").first_stage_label == "splade"
    assert CollectionSource("c", ".").qrels_splits == ("test",)
    assert CollectionSource("c", ".", train_split="train", eval_split="dev").qrels_splits == ("train", "dev")


def test_fingerprint_follows_the_files(tmp_path):
    write_beir(tmp_path, GOOD_DOCS, [GOOD_QUERY], "q1\td1\t1\n")
    source = CollectionSource("c", str(tmp_path))
    before = source_fingerprint(source)
    assert source_fingerprint(source) == before
    (tmp_path / "qrels" / "test.tsv").write_text("q1\td1\t1\nq1\td2\t2\n")
    assert source_fingerprint(source) != before
