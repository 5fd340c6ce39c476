"""The teacher stage against the real llama.cpp OpenAI-compatible server."""

import socket
from pathlib import Path
from urllib.parse import urlparse

import pytest

from rr_assets.core.collections import load_beir
from rr_assets.core.llama_server import llama_cpp_server
from rr_assets.core.prompts import load_variant
from rr_assets.core.teacher import JudgePair, RequestCache, TeacherEndpoint, TeacherUsage, judge_direct
from rr_assets.core.warehouse import Warehouse
from tests.conftest import DEMO_DIR, PROJECT_ROOT

pytestmark = pytest.mark.integration


def demo_pairs(n: int) -> list[JudgePair]:
    collection = load_beir("demo", DEMO_DIR)
    queries = {q.query_id: q.text for q in collection.queries}
    docs = {d.doc_id: d.text for d in collection.documents}
    return [JudgePair(r.query_id, r.doc_id, queries[r.query_id], docs[r.doc_id]) for r in collection.qrels[:n]]


def cache_db(path: Path) -> Warehouse:
    return Warehouse(path)


def test_judgments_are_parsed_and_cached(teacher_url, tmp_path):
    variant = load_variant(PROJECT_ROOT / "resources" / "prompts", "default")
    endpoint = TeacherEndpoint(teacher_url, "gemma-3-270m", concurrency=2)
    warehouse = cache_db(tmp_path / "w.duckdb")
    first = TeacherUsage()
    judgments = judge_direct(demo_pairs(6), variant, endpoint, RequestCache(warehouse), first)
    assert len(judgments) == 6 and first.new_calls >= 6 and first.completion_tokens > 0
    assert all(j.raw for j in judgments)
    assert sum(j.label in (0, 1, 2) for j in judgments) >= 4
    assert all((j.label is None) == (j.parse_error is not None) or j.parse_error == "empty explanation"
               for j in judgments)
    again = TeacherUsage()
    repeated = judge_direct(demo_pairs(6), variant, endpoint, RequestCache(warehouse), again)
    assert again.new_calls == 0 and again.cache_hits == again.requests
    assert [j.label for j in repeated] == [j.label for j in judgments]
    stored = warehouse.fetch_df("SELECT count(*) AS n FROM teacher_requests")["n"][0]
    assert stored == first.new_calls


def test_embedded_server_stops_after_the_block(gguf_path, tmp_path):
    with llama_cpp_server(gguf_path, "gemma-3-270m", tmp_path / "log.txt") as url:
        port = urlparse(url).port
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=2).close()


def test_comparisons_and_sliding_window_rankings(teacher_url, tmp_path):
    from rr_assets.core.candidate_sampling import comparison_pairs
    from rr_assets.core.teacher import compare_pairs, rank_listwise

    variant = load_variant(PROJECT_ROOT / "resources" / "prompts", "default")
    endpoint = TeacherEndpoint(teacher_url, "gemma-3-270m", concurrency=2)
    cache = RequestCache(cache_db(tmp_path / "w.duckdb"))
    collection = load_beir("demo", DEMO_DIR)
    queries = {q.query_id: q.text for q in collection.queries}
    documents = {d.doc_id: d.text for d in collection.documents}
    ranked = {"bio-q01": [d.doc_id for d in collection.documents[:5]]}

    pairs = comparison_pairs(ranked, {}, max_pairs_per_query=2, swap_fraction=1.0, seed=0)
    usage = TeacherUsage()
    comparisons = compare_pairs(pairs, queries, documents, variant, endpoint, cache, usage)
    assert len(comparisons) == 4 and sum(c.swapped for c in comparisons) == 2
    assert all(c.preferred_doc_id in (c.doc_a, c.doc_b, None) for c in comparisons)
    assert sum(c.preferred_doc_id is not None for c in comparisons) >= 3

    windows, final = rank_listwise(ranked, queries, documents, variant, endpoint, cache, TeacherUsage(), 3, 2)
    assert [(w.window_index, w.start_rank) for w in windows] == [(0, 3), (1, 1)]
    assert sorted(final["bio-q01"]) == sorted(ranked["bio-q01"])
    assert all(sorted(w.ranked_doc_ids) == sorted(w.input_doc_ids) for w in windows)
    assert final["bio-q01"][:3] == windows[-1].ranked_doc_ids


def test_chat_variant_gets_schema_constrained_json(teacher_url, tmp_path):
    import json

    variant = load_variant(PROJECT_ROOT / "resources" / "prompts", "chat-json")
    endpoint = TeacherEndpoint(teacher_url, "gemma-3-270m", concurrency=2)
    judgments = judge_direct(demo_pairs(3), variant, endpoint, RequestCache(cache_db(tmp_path / "w.duckdb")),
                             TeacherUsage())
    for j in judgments:
        answer = json.loads(j.raw)
        assert set(answer) == {"explanation", "label"} and answer["label"] in (0, 1, 2)
        assert j.label == answer["label"] and j.explanation == answer["explanation"].strip()
