"""The teacher stage against the real llama.cpp OpenAI-compatible server."""

import socket
from pathlib import Path
from urllib.parse import urlparse

import pytest

from rr_assets.core.llama_server import llama_cpp_server
from rr_assets.core.prompts import load_variant
from rr_assets.core.teacher import RequestCache, Teacher, TeacherEndpoint
from rr_assets.core.warehouse import Warehouse
from tests.conftest import PROJECT_ROOT, demo_collection, demo_pairs

pytestmark = pytest.mark.integration


def cache_db(path: Path) -> Warehouse:
    return Warehouse(path)


def test_judgments_are_parsed_and_cached(teacher_url, tmp_path):
    variant = load_variant(PROJECT_ROOT / "resources" / "prompts", "default")
    endpoint = TeacherEndpoint(teacher_url, "gemma-3-270m", concurrency=2)
    warehouse = cache_db(tmp_path / "w.duckdb")
    teacher = Teacher(endpoint, variant, RequestCache(warehouse))
    judgments = teacher.judge(demo_pairs(6))
    first = teacher.usage
    assert len(judgments) == 6 and first.new_calls >= 6 and first.completion_tokens > 0
    assert all(j.raw for j in judgments)
    assert sum(j.label in (0, 1, 2) for j in judgments) >= 4
    assert all((j.label is None) == (j.parse_error is not None) or j.parse_error == "empty explanation"
               for j in judgments)
    again = Teacher(endpoint, variant, RequestCache(warehouse))
    repeated = again.judge(demo_pairs(6))
    assert again.usage.new_calls == 0 and again.usage.cache_hits == again.usage.requests
    assert [j.label for j in repeated] == [j.label for j in judgments]
    with warehouse.connect() as con:
        stored = con.execute("SELECT count(*) FROM teacher_requests").fetchone()[0]
    assert stored == first.new_calls


def test_embedded_server_stops_after_the_block(gguf_path, tmp_path):
    with llama_cpp_server(gguf_path, "gemma-3-270m", tmp_path / "log.txt") as server:
        port = urlparse(server.base_url).port
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
        assert server.failure() is None
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=2).close()


def test_comparisons_and_sliding_window_rankings(teacher_url, tmp_path):
    from dataclasses import replace

    from rr_assets.core.candidate_sampling import comparison_pairs

    variant = load_variant(PROJECT_ROOT / "resources" / "prompts", "default")
    variant = replace(variant, listwise={"window": 3, "stride": 2})
    endpoint = TeacherEndpoint(teacher_url, "gemma-3-270m", concurrency=2)
    teacher = Teacher(endpoint, variant, RequestCache(cache_db(tmp_path / "w.duckdb")))
    collection = demo_collection()
    queries = {q.query_id: q.text for q in collection.queries}
    documents = {d.doc_id: d.text for d in collection.documents}
    ranked = {"bio-q01": [d.doc_id for d in collection.documents[:5]]}

    pairs = comparison_pairs(ranked, {}, max_pairs_per_query=2, swap_fraction=1.0, seed=0)
    comparisons = teacher.compare(pairs, queries, documents)
    assert len(comparisons) == 4 and sum(c.swapped for c in comparisons) == 2
    assert all(c.preferred_doc_id in (c.doc_a, c.doc_b, None) for c in comparisons)
    assert sum(c.preferred_doc_id is not None for c in comparisons) >= 3

    windows, final = teacher.rank(ranked, queries, documents)
    assert [(w.window_index, w.start_rank) for w in windows] == [(0, 3), (1, 1)]
    assert sorted(final["bio-q01"]) == sorted(ranked["bio-q01"])
    assert all(sorted(w.ranked_doc_ids) == sorted(w.input_doc_ids) for w in windows)
    assert final["bio-q01"][:3] == windows[-1].ranked_doc_ids


def test_chat_variant_gets_schema_constrained_json(teacher_url, tmp_path):
    import json

    variant = load_variant(PROJECT_ROOT / "resources" / "prompts", "chat-json")
    endpoint = TeacherEndpoint(teacher_url, "gemma-3-270m", concurrency=2)
    judgments = Teacher(endpoint, variant, RequestCache(cache_db(tmp_path / "w.duckdb"))).judge(demo_pairs(3))
    for j in judgments:
        answer = json.loads(j.raw)
        assert set(answer) == {"explanation", "label"} and answer["label"] in (0, 1, 2)
        assert j.label == answer["label"] and j.explanation == answer["explanation"].strip()


def test_grounded_variant_explains_the_label_it_is_shown(teacher_url, tmp_path):
    from dataclasses import replace

    variant = load_variant(PROJECT_ROOT / "resources" / "prompts", "grounded")
    teacher = Teacher(TeacherEndpoint(teacher_url, "gemma-3-270m", concurrency=2), variant,
                      RequestCache(cache_db(tmp_path / "w.duckdb")))
    shown = [replace(p, gold_label=label) for p, label in zip(demo_pairs(3), (2, 0, 1))]
    judged = teacher.judge(shown + [replace(demo_pairs(4)[3], split="eval")])
    assert [j.label for j in judged[:3]] == [2, 0, 1] and all(j.label_source == "qrels" for j in judged[:3])
    assert all(j.explanation and "\n" not in j.explanation for j in judged[:3])
    assert judged[3].label_source == "teacher"  # an evaluation pair: no label shown, the teacher judges
