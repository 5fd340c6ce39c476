import json

import pytest

from rr_assets.core.collections import CollectionError, load_beir
from tests.conftest import DEMO_DIR

pytestmark = pytest.mark.unit


def write_beir(folder, corpus_lines, queries_lines, qrels_text):
    (folder / "qrels").mkdir(parents=True)
    (folder / "corpus.jsonl").write_bytes(b"\n".join(corpus_lines) + b"\n")
    (folder / "queries.jsonl").write_bytes(b"\n".join(queries_lines) + b"\n")
    (folder / "qrels" / "test.tsv").write_text(qrels_text)


def doc(i: int) -> bytes:
    return json.dumps({"_id": f"d{i}", "title": "T", "text": f"text {i}"}).encode()


GOOD_DOCS = [doc(i) for i in range(1, 5)]
GOOD_QUERY = json.dumps({"_id": "q1", "text": "a question"}).encode()


def test_demo_collection_is_large_graded_and_consistent():
    collection = load_beir("demo", DEMO_DIR)
    assert len(collection.queries) >= 40 and len(collection.documents) >= 300
    assert not collection.quarantined
    assert {r.relevance for r in collection.qrels} == {1, 2}
    judged = {r.query_id for r in collection.qrels if r.relevance == 2}
    assert judged == {q.query_id for q in collection.queries}
    domains = {d.doc_id.split("-")[0] for d in collection.documents}
    assert len(domains) >= 4


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
    ],
)
def test_bad_lines_are_quarantined_with_file_line_and_reason(tmp_path, corpus, qrels, where, reason):
    write_beir(tmp_path, corpus, [GOOD_QUERY], qrels)
    collection = load_beir("bad", tmp_path)
    [bad] = collection.quarantined
    assert f"{bad.file.rsplit('/', 1)[-1]}:{bad.line}" == where and bad.reason.startswith(reason)
    assert len(collection.documents) == 4


def test_a_file_of_mostly_bad_lines_is_an_error(tmp_path):
    write_beir(tmp_path, [GOOD_DOCS[0], b"nope", b"[1]", b"{"], [GOOD_QUERY], "")
    with pytest.raises(CollectionError, match=r"corpus.jsonl: 3 of 4 lines are bad \(line 2: not valid JSON"):
        load_beir("bad", tmp_path)


def test_missing_file_is_an_error(tmp_path):
    write_beir(tmp_path, GOOD_DOCS, [GOOD_QUERY], "")
    (tmp_path / "queries.jsonl").unlink()
    with pytest.raises(CollectionError, match="queries.jsonl: file not found"):
        load_beir("bad", tmp_path)
