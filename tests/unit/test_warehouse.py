import duckdb
import pandas as pd
import pytest

from rr_assets.core.warehouse import Warehouse, checked_identifier, compile_refs, where_clause

pytestmark = pytest.mark.unit


def test_identifiers_are_validated():
    assert checked_identifier("train_pointwise") == "train_pointwise"
    for bad in ["corpus; DROP TABLE qrels", "Corpus", "a-b", ""]:
        with pytest.raises(ValueError):
            checked_identifier(bad)


def test_where_clauses_and_refs_use_checked_identifiers():
    assert where_clause(["collection", "prompt_variant"]) == "collection = ? AND prompt_variant = ?"
    assert where_clause([]) == "TRUE"
    assert compile_refs("SELECT * FROM {{ ref('qrels') }} JOIN {{ref(\"splits\")}}") == "SELECT * FROM qrels JOIN splits"
    with pytest.raises(ValueError):
        where_clause(["collection; DROP TABLE qrels"])


def test_replace_rows_touches_only_its_partition(tmp_path):
    warehouse = Warehouse(tmp_path / "w.duckdb")
    warehouse.replace_rows("queries", {"collection": "a"}, pd.DataFrame({"collection": ["a"], "query_id": ["q1"], "text": ["x"]}))
    warehouse.replace_rows("queries", {"collection": "b"}, pd.DataFrame({"collection": ["b"], "query_id": ["q1"], "text": ["y"]}))
    warehouse.replace_rows("queries", {"collection": "a"}, pd.DataFrame({"collection": ["a"], "query_id": ["q2"], "text": ["z"]}))
    assert warehouse.partition_rows("queries", {"collection": "a"})["query_id"].tolist() == ["q2"]
    assert warehouse.partition_rows("queries", {"collection": "b"})["text"].tolist() == ["y"]


def test_replace_rows_is_atomic(tmp_path):
    warehouse = Warehouse(tmp_path / "w.duckdb")
    good = pd.DataFrame({"collection": ["c", "c"], "query_id": ["q1", "q2"], "text": ["one", "two"]})
    warehouse.replace_rows("queries", {"collection": "c"}, good)
    duplicate_keys = pd.DataFrame({"collection": ["c", "c"], "query_id": ["q3", "q3"], "text": ["x", "y"]})
    with pytest.raises(duckdb.ConstraintException):
        warehouse.replace_rows("queries", {"collection": "c"}, duplicate_keys)
    rows = warehouse.partition_rows("queries", {"collection": "c"})
    assert sorted(rows["query_id"]) == ["q1", "q2"]


def test_table_hash_follows_content_not_order(tmp_path):
    warehouse = Warehouse(tmp_path / "w.duckdb")
    frame = pd.DataFrame({"collection": ["c", "c"], "query_id": ["q1", "q2"], "text": ["one", "two"]})
    warehouse.replace_rows("queries", {"collection": "c"}, frame)
    first = warehouse.table_hash("queries", {"collection": "c"})
    warehouse.replace_rows("queries", {"collection": "c"}, frame.iloc[::-1])
    assert warehouse.table_hash("queries", {"collection": "c"}) == first
    warehouse.replace_rows("queries", {"collection": "c"}, frame.assign(text=["one", "changed"]))
    assert warehouse.table_hash("queries", {"collection": "c"}) != first


def test_training_pairs_without_an_explanation_get_an_empty_one(tmp_path):
    """A NULL explanation must not reach the student as the text 'nan' (it then learns to write it)."""
    from rr_assets.core.student_data import training_examples

    warehouse = Warehouse(tmp_path / "w.duckdb")
    with warehouse.connect() as con:
        con.execute("CREATE TABLE train_pointwise AS SELECT * FROM (VALUES "
                    "('c', 'v', 'q1', 'd1', 'query', 'doc one', 2, 'it answers the query'), "
                    "('c', 'v', 'q1', 'd2', 'query', 'doc two', 0, NULL)) "
                    "AS t(collection, prompt_variant, query_id, doc_id, query, document, label, explanation)")
    examples = training_examples(warehouse, {"collection": "c", "prompt_variant": "v"}, -1)
    assert [(e.doc_id, e.label, e.explanation) for e in examples] == [("d1", 2, "it answers the query"), ("d2", 0, "")]
