"""Real LoRA steps on the embedded Gemma 3 270M weights, then scoring with the saved adapter."""

import json
import math

import pytest

from rr_assets.core.collections import load_beir
from rr_assets.core.scoring import StudentReranker
from rr_assets.core.student_format import StudentExample
from rr_assets.core.training import TrainSettings, train_lora
from tests.conftest import DEMO_DIR

pytestmark = pytest.mark.integration


def test_lora_training_saves_an_adapter_that_scores(hf_base_model, tmp_path):
    collection = load_beir("demo", DEMO_DIR)
    queries = {q.query_id: q.text for q in collection.queries}
    docs = {d.doc_id: d.text for d in collection.documents}
    examples = [StudentExample(r.query_id, r.doc_id, queries[r.query_id], docs[r.doc_id], r.relevance,
                               "The document explains the principle behind the question.")
                for r in collection.qrels[:6]]
    examples += [StudentExample(r.query_id, d.doc_id, queries[r.query_id], d.text, 0, "Unrelated topic.")
                 for r, d in zip(collection.qrels[:6], collection.documents[-6:])]
    settings = TrainSettings(steps=2, max_doc_words=40, group_size=3)
    result = train_lora(hf_base_model, examples, settings, tmp_path / "ckpt")
    assert result.steps == 2 and len(result.losses) == 2
    assert all(math.isfinite(r["loss"]) and r["generation"] > 0 for r in result.losses)
    assert (tmp_path / "ckpt" / "adapter_model.safetensors").exists()
    assert 0 < result.trainable_parameters < 5_000_000
    (tmp_path / "ckpt" / "card.json").write_text(json.dumps({"base_model_dir": str(hf_base_model)}))

    reranker = StudentReranker(tmp_path / "ckpt")
    ex = examples[0]
    scored = reranker.score(ex.query, [(e.doc_id, e.document) for e in examples[:4]], batch_size=2)
    assert [s.doc_id for s in scored] == [e.doc_id for e in examples[:4]]
    assert all(0.0 <= s.score <= 2.0 for s in scored)
    alone = reranker.score(ex.query, [(ex.doc_id, ex.document)])[0].score
    assert alone == pytest.approx(scored[0].score, abs=1e-4)  # padding does not change a score
    explained = reranker.explain(ex.query, [(ex.doc_id, ex.document)], max_new_tokens=16)[0]
    assert explained.explanation and 0.0 <= explained.score <= 2.0
