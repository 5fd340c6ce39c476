import shutil

import pytest

from rr_assets.core.prompts import PromptError, list_variants, load_variant
from tests.conftest import PROJECT_ROOT

pytestmark = pytest.mark.unit
PROMPTS = PROJECT_ROOT / "resources" / "prompts"


def test_default_variant_renders_query_and_document_inside_delimiters():
    variant = load_variant(PROMPTS, "default")
    text = variant.render("direct", query="Why?", document="Because.")
    assert text.endswith("Query: Why?\nDocument: <document>Because.</document>\nExplanation:")
    assert variant.labels == (0, 1, 2) and variant.api == "completions"


def test_editing_a_variant_changes_only_its_hash(tmp_path):
    shutil.copytree(PROMPTS / "default", tmp_path / "a")
    shutil.copytree(PROMPTS / "default", tmp_path / "b")
    before = {name: load_variant(tmp_path, name).content_hash for name in list_variants(tmp_path)}
    (tmp_path / "b" / "direct.jinja").write_text((tmp_path / "b" / "direct.jinja").read_text() + "\n")
    after = {name: load_variant(tmp_path, name).content_hash for name in list_variants(tmp_path)}
    assert before["a"] == after["a"] and before["b"] != after["b"]


def test_truncation_is_reported():
    variant = load_variant(PROMPTS, "default")
    text, cut = variant.prepare_document("word " * (variant.max_doc_words + 5))
    assert cut and len(text.split()) == variant.max_doc_words + 1


def test_missing_template_is_named(tmp_path):
    (tmp_path / "v").mkdir()
    (tmp_path / "v" / "meta.yaml").write_text("kinds: [direct]\n")
    with pytest.raises(PromptError, match="direct.jinja"):
        load_variant(tmp_path, "v")


def test_structured_output_requests():
    chat = load_variant(PROMPTS, "chat-json")
    params = chat.request_params("comparison")
    assert params["response_format"]["type"] == "json_object"
    assert params["response_format"]["schema"]["properties"]["preferred"]["enum"] == ["A", "B"]
    assert list(chat.output_schema("direct")["properties"]) == ["explanation", "label"]
    assert "response_format" not in load_variant(PROMPTS, "default").request_params("direct")


def test_unknown_structured_output_is_named(tmp_path):
    shutil.copytree(PROMPTS / "chat-json", tmp_path / "v")
    meta = tmp_path / "v" / "meta.yaml"
    meta.write_text(meta.read_text().replace("json_object_schema", "xml"))
    with pytest.raises(PromptError, match="structured_output must be one of"):
        load_variant(tmp_path, "v")
