import shutil

import pytest

from rr_assets.core.prompts import PromptError, list_variants, load_variant
from tests.conftest import PROJECT_ROOT

pytestmark = pytest.mark.unit
PROMPTS = PROJECT_ROOT / "resources" / "prompts"


def test_the_bundled_variants_load():
    assert {"default", "chat-json", "grounded"} <= set(list_variants(PROMPTS))
    for name in ("default", "chat-json", "grounded"):
        variant = load_variant(PROMPTS, name)
        assert set(variant.templates) == {"direct", "comparison", "listwise"} and variant.labels == (0, 1, 2)


def test_default_variant_renders_query_and_document_inside_delimiters():
    variant = load_variant(PROMPTS, "default")
    text = variant.render("direct", query="Why?", document="Because.")
    assert text.endswith("Query: Why?\nDocument: <document>Because.</document>\nExplanation:")
    assert variant.labels == (0, 1, 2) and variant.api == "completions" and not variant.grounded


def test_grounded_variant_shows_the_label_only_when_given():
    variant = load_variant(PROMPTS, "grounded")
    assert variant.grounded and variant.explain_per_query == 3
    given = variant.render("direct", query="Why?", document="Because.", label=2)
    assert given.endswith("Query: Why?\nDocument: <document>Because.</document>\nRelevance: 2\nExplanation:")
    assert given.startswith("Each example explains why a document has the relevance label it was given")
    judging = variant.render("direct", query="Why?", document="Because.", label=None)
    assert judging.endswith("Query: Why?\nDocument: <document>Because.</document>\nExplanation:")
    assert judging.startswith("Each example judges whether a document helps answer a search query")
    assert "Relevance: None" not in judging


@pytest.mark.parametrize("relevance, max_relevance, label", [
    (0, 1, 0), (1, 1, 2),                          # SciFact: 0/1
    (0, 3, 0), (1, 3, 1), (2, 3, 1), (3, 3, 2),    # TREC DL19: 0-3
    (-1, 3, 0),                                    # a negative grade counts as non-relevant
])
def test_scaled_label_maps_qrels_grades_onto_the_variant_scale(relevance, max_relevance, label):
    assert load_variant(PROMPTS, "grounded").scaled_label(relevance, max_relevance) == label


def test_editing_a_variant_changes_only_its_hash(tmp_path):
    shutil.copytree(PROMPTS / "default", tmp_path / "a")
    shutil.copytree(PROMPTS / "default", tmp_path / "b")
    before = {name: load_variant(tmp_path, name).content_hash for name in list_variants(tmp_path)}
    (tmp_path / "b" / "direct.jinja").write_text((tmp_path / "b" / "direct.jinja").read_text() + "\n")
    after = {name: load_variant(tmp_path, name).content_hash for name in list_variants(tmp_path)}
    assert before["a"] == after["a"] and before["b"] != after["b"]


def test_truncation_is_reported():
    variant = load_variant(PROMPTS, "default")
    assert variant.teacher_doc_words == 160
    text, cut = variant.prepare_document("word " * (variant.teacher_doc_words + 5))
    assert cut and len(text.split()) == variant.teacher_doc_words + 1 and text.endswith(" ...")
    short, cut = variant.prepare_document("two  words")
    assert (short, cut) == ("two words", False)


def test_delimiter_tags_inside_a_document_are_neutralised():
    text, _ = load_variant(PROMPTS, "default").prepare_document("a </document> b < DOCUMENT >")
    assert text == "a [tag removed] b [tag removed]"


def copy_variant(tmp_path, name="default"):
    shutil.copytree(PROMPTS / name, tmp_path / "v")
    return tmp_path / "v"


def test_a_placeholder_typo_fails_on_load_naming_the_file(tmp_path):
    folder = copy_variant(tmp_path)
    direct = folder / "direct.jinja"
    direct.write_text(direct.read_text().replace("{{ query }}", "{{ querry }}"))
    with pytest.raises(PromptError, match=r"v/direct.jinja: unknown placeholder 'querry'") as error:
        load_variant(tmp_path, "v")
    assert str(direct) in str(error.value)


def test_a_template_that_never_uses_a_required_value_fails(tmp_path):
    folder = copy_variant(tmp_path)
    comparison = folder / "comparison.jinja"
    comparison.write_text(comparison.read_text().replace("{{ document_b }}", "B"))
    with pytest.raises(PromptError, match=r"comparison.jinja: the template never uses \{\{ document_b \}\}"):
        load_variant(tmp_path, "v")


def test_label_is_a_placeholder_of_direct_templates_only(tmp_path):
    folder = copy_variant(tmp_path)
    (folder / "listwise.jinja").write_text((folder / "listwise.jinja").read_text() + "{{ label }}")
    with pytest.raises(PromptError, match=r"listwise.jinja: unknown placeholder 'label'"):
        load_variant(tmp_path, "v")


def test_a_template_syntax_error_names_file_and_line(tmp_path):
    folder = copy_variant(tmp_path)
    (folder / "direct.jinja").write_text("Query: {{ query }}\nDocument: {{ document }\n")
    with pytest.raises(PromptError, match=r"direct.jinja line \d+:"):
        load_variant(tmp_path, "v")


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
    assert chat.output_schema("listwise")["properties"]["ranking"]["maxItems"] == chat.listwise["window"]
    assert "response_format" not in load_variant(PROMPTS, "default").request_params("direct")


def test_unknown_structured_output_is_named(tmp_path):
    shutil.copytree(PROMPTS / "chat-json", tmp_path / "v")
    meta = tmp_path / "v" / "meta.yaml"
    meta.write_text(meta.read_text().replace("json_object_schema", "xml"))
    with pytest.raises(PromptError, match="structured_output must be one of"):
        load_variant(tmp_path, "v")


def test_with_no_variants_configured_every_endpoint_variant_runs_and_imported_ones_only_when_named():
    from rr_assets.core.settings import TeacherSettings
    from rr_assets.resources import TeacherService

    names = TeacherService(TeacherSettings(), str(PROMPTS), "").variant_names()
    assert names[0] == "default" and {"chat-json", "grounded"} <= set(names)
    assert load_variant(PROMPTS, "imported").imported and "imported" not in names
    named = TeacherService(TeacherSettings(prompt_variants=("imported",)), str(PROMPTS), "").variant_names()
    assert named == ["imported"]
