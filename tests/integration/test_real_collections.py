"""Regressions that pin published figures on the real collections in ../shared/data (read in
place): rr's own BM25 on BEIR SciFact, and the official BM25 run of TREC DL 2019."""

import pytest

from rr_assets.core.collections import CollectionSource, load_collection
from rr_assets.core.metrics import evaluate
from rr_assets.core.retrieval import build_index, search
from tests.conftest import PROJECT_ROOT

pytestmark = pytest.mark.integration
SHARED_DATA = PROJECT_ROOT.parent / "shared" / "data"


def collection_folder(name: str):
    folder = SHARED_DATA / name
    if not (folder / "queries.jsonl").is_file():
        pytest.fail(f"the benchmark collection {name!r} is missing: expected it in BEIR layout at {folder} "
                    "(../shared/data beside the project root; see ../shared/data/README.md)")
    return folder


def nested(items, value) -> dict:
    result: dict = {}
    for item in items:
        result.setdefault(item.query_id, {})[item.doc_id] = value(item)
    return result


def test_bm25_on_scifact_test_reproduces_pyserini(tmp_path):
    source = CollectionSource("scifact", str(collection_folder("scifact")), eval_split="test", train_split="train")
    collection = load_collection(source)
    assert len(collection.documents) == 5183 and not collection.quarantined
    test_queries = {r.query_id for r in collection.qrels if r.split == "test"}
    assert len(test_queries) == 300 and len({r.query_id for r in collection.qrels if r.split == "train"}) == 809
    build_index(collection.documents, tmp_path / "index")
    queries = [q for q in collection.queries if q.query_id in test_queries]
    run = nested(search(tmp_path / "index", queries, depth=100, k1=0.9, b=0.4), lambda c: c.score)
    metrics = evaluate(nested([r for r in collection.qrels if r.split == "test"], lambda r: r.relevance), run)
    assert metrics["nDCG@10"] == pytest.approx(0.6789, abs=0.0005)
    assert metrics["R@100"] == pytest.approx(0.9253, abs=0.0005)


def test_dl19_official_bm25_run_evaluates_to_the_published_figure():
    folder = collection_folder("dl19")
    source = CollectionSource("dl19", str(folder), eval_split="test", first_stage_run=str(folder / "bm25.run.trec"))
    collection = load_collection(source)
    assert len({c.query_id for c in collection.candidates}) == 43 and len(collection.documents) == 4297
    corpus = {d.doc_id for d in collection.documents}
    assert any(r.doc_id not in corpus for r in collection.qrels)  # kept: they count in the ideal DCG
    assert len(collection.qrels) == 9260
    metrics = evaluate(nested(collection.qrels, lambda r: r.relevance), nested(collection.candidates, lambda c: c.score))
    assert metrics["nDCG@10"] == pytest.approx(0.5058, abs=0.0005)
    assert metrics["nDCG@5"] == pytest.approx(0.5278, abs=0.0005)
