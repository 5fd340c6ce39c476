import pytest

from benchmarks.scale import write_synthetic_collection
from rr_assets.core.collections import load_collection

pytestmark = pytest.mark.unit


def test_synthetic_collection_is_a_beir_folder_rr_loads_with_the_asked_counts(tmp_path):
    source = write_synthetic_collection(tmp_path / "a", docs=300, queries=40, seed=7)

    collection = load_collection(source)

    assert (len(collection.documents), len(collection.queries), len(collection.qrels)) == (300, 40, 40)
    assert collection.quarantined == []
    assert {r.split for r in collection.qrels} == {"train", "test"}
    assert all(len(q.text.split()) == 6 for q in collection.queries)  # 4 of its document's words, 2 drawn at large


def test_synthetic_collection_is_the_same_for_the_same_seed(tmp_path):
    files = ("corpus.jsonl", "queries.jsonl", "qrels/train.tsv", "qrels/test.tsv")
    write_synthetic_collection(tmp_path / "a", docs=200, queries=20, seed=3)
    write_synthetic_collection(tmp_path / "b", docs=200, queries=20, seed=3)
    write_synthetic_collection(tmp_path / "c", docs=200, queries=20, seed=4)

    assert all((tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes() for f in files)
    assert (tmp_path / "a" / "corpus.jsonl").read_bytes() != (tmp_path / "c" / "corpus.jsonl").read_bytes()
