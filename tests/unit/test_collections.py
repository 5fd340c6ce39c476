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


GOOD_DOC = json.dumps({"_id": "d1", "title": "T", "text": "some text"}).encode()
GOOD_QUERY = json.dumps({"_id": "q1", "text": "a question"}).encode()


def test_demo_collection_is_large_graded_and_consistent():
    collection = load_beir("demo", DEMO_DIR)
    assert len(collection.queries) >= 40 and len(collection.documents) >= 300
    assert {r.relevance for r in collection.qrels} == {1, 2}
    judged = {r.query_id for r in collection.qrels if r.relevance == 2}
    assert judged == {q.query_id for q in collection.queries}
    domains = {d.doc_id.split("-")[0] for d in collection.documents}
    assert len(domains) >= 4


def test_content_hash_changes_with_content(tmp_path):
    write_beir(tmp_path / "a", [GOOD_DOC], [GOOD_QUERY], "q1\td1\t2\n")
    write_beir(tmp_path / "b", [GOOD_DOC], [GOOD_QUERY], "q1\td1\t1\n")
    assert load_beir("x", tmp_path / "a").content_hash() != load_beir("x", tmp_path / "b").content_hash()


@pytest.mark.parametrize(
    "corpus, queries, qrels, message",
    [
        ([GOOD_DOC, b"{not json"], [GOOD_QUERY], "", "corpus.jsonl line 2: not valid JSON"),
        ([GOOD_DOC, b'{"title": "no id", "text": "x"}'], [GOOD_QUERY], "", "corpus.jsonl line 2: missing '_id'"),
        ([GOOD_DOC, GOOD_DOC], [GOOD_QUERY], "", "corpus.jsonl line 2: duplicate id 'd1'"),
        ([GOOD_DOC, b'{"_id": "d2", "text": "caf\xe9"}'], [GOOD_QUERY], "", "corpus.jsonl line 2: invalid UTF-8"),
        ([GOOD_DOC], [GOOD_QUERY], "query-id\tcorpus-id\tscore\nq1\td9\t1\n", "test.tsv line 2: unknown document 'd9'"),
        ([GOOD_DOC], [GOOD_QUERY], "q1\td1\thigh\n", "test.tsv line 1: score 'high' is not an integer"),
    ],
)
def test_bad_input_names_file_and_line(tmp_path, corpus, queries, qrels, message):
    write_beir(tmp_path, corpus, queries, qrels)
    with pytest.raises(CollectionError, match=message):
        load_beir("bad", tmp_path)
