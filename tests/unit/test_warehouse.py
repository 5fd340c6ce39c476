import pandas as pd
import pytest

from rr_assets.core.warehouse import Warehouse, checked_identifier

pytestmark = pytest.mark.unit


def test_identifiers_are_validated():
    assert checked_identifier("train_pointwise") == "train_pointwise"
    for bad in ["corpus; DROP TABLE qrels", "Corpus", "a-b", ""]:
        with pytest.raises(ValueError):
            checked_identifier(bad)


def test_replace_rows_is_atomic(tmp_path):
    warehouse = Warehouse(tmp_path / "w.duckdb")
    good = pd.DataFrame({"collection": ["c", "c"], "query_id": ["q1", "q2"], "text": ["one", "two"]})
    warehouse.replace_rows("queries", {"collection": "c"}, good)
    duplicate_keys = pd.DataFrame({"collection": ["c", "c"], "query_id": ["q3", "q3"], "text": ["x", "y"]})
    with pytest.raises(Exception):
        warehouse.replace_rows("queries", {"collection": "c"}, duplicate_keys)
    rows = warehouse.fetch_df("SELECT query_id FROM queries ORDER BY query_id")
    assert rows["query_id"].tolist() == ["q1", "q2"]


def test_table_hash_follows_content_not_order(tmp_path):
    warehouse = Warehouse(tmp_path / "w.duckdb")
    frame = pd.DataFrame({"collection": ["c", "c"], "query_id": ["q1", "q2"], "text": ["one", "two"]})
    warehouse.replace_rows("queries", {"collection": "c"}, frame)
    first = warehouse.table_hash("queries", {"collection": "c"})
    warehouse.replace_rows("queries", {"collection": "c"}, frame.iloc[::-1])
    assert warehouse.table_hash("queries", {"collection": "c"}) == first
    warehouse.replace_rows("queries", {"collection": "c"}, frame.assign(text=["one", "changed"]))
    assert warehouse.table_hash("queries", {"collection": "c"}) != first
