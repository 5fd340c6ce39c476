import pytest

from rr_assets.core.collections import Query
from rr_assets.core.first_stage import write_trec_run
from rr_assets.core.retrieval import build_index, search
from tests.conftest import demo_collection

pytestmark = pytest.mark.integration


def test_lucene_bm25_over_the_demo_collection(tmp_path):
    collection = demo_collection()
    assert build_index(collection.documents, tmp_path / "index") == len(collection.documents)
    doc = collection.documents[0]
    hits = search(tmp_path / "index", [Query("own", f"{doc.title} {doc.text}")], depth=10, k1=0.9, b=0.4)
    assert hits[0].doc_id == doc.doc_id and [h.rank for h in hits] == list(range(1, len(hits) + 1))
    assert all(a.score >= b.score for a, b in zip(hits, hits[1:]))
    write_trec_run(hits, tmp_path / "run.trec", "bm25")
    first = (tmp_path / "run.trec").read_text().splitlines()[0].split()
    assert first[:4] == ["own", "Q0", doc.doc_id, "1"] and first[5] == "bm25"


def test_rebuilding_replaces_the_index(tmp_path):
    collection = demo_collection()
    build_index(collection.documents, tmp_path / "index")
    assert build_index(collection.documents[:7], tmp_path / "index") == 7
    kept, dropped = collection.documents[0], collection.documents[-1]
    hits = search(tmp_path / "index", [Query("kept", f"{kept.title} {kept.text}"),
                                       Query("dropped", f"{dropped.title} {dropped.text}")], depth=100, k1=0.9, b=0.4)
    found = {h.doc_id for h in hits}
    assert found <= {d.doc_id for d in collection.documents[:7]} and kept.doc_id in found
    assert dropped.doc_id not in found
