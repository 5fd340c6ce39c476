import duckdb
import pytest

from rr_assets.core.sql_models import SqlModelError, load_models, run_model
from tests.conftest import PROJECT_ROOT

pytestmark = pytest.mark.unit


def test_project_models_and_their_refs():
    models = load_models(PROJECT_ROOT / "dbt_like_sql")
    assert {"splits", "train_pointwise", "train_pairwise", "train_listwise"} <= set(models)
    assert set(models["train_pairwise"].refs) == {"teacher_comparisons", "splits", "train_pointwise"}
    assert "teacher_judgments" in models["train_pointwise"].refs
    assert models["splits"].partition_columns() == ("collection",)
    assert models["train_listwise"].partition_columns() == ("collection", "prompt_variant")


def test_cycle_is_reported(tmp_path):
    (tmp_path / "a.sql").write_text("SELECT * FROM {{ ref('b') }}")
    (tmp_path / "b.sql").write_text("SELECT * FROM {{ ref('a') }}")
    with pytest.raises(SqlModelError, match="cycle"):
        load_models(tmp_path)


def test_run_model_replaces_one_collection_and_follows_schema_changes(tmp_path):
    (tmp_path / "doubled.sql").write_text(
        "SELECT collection, n * 2 AS n2 FROM {{ ref('numbers') }} WHERE collection = $collection"
    )
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    con.execute("CREATE TABLE numbers AS SELECT * FROM (VALUES ('a', 1), ('a', 2), ('b', 5)) v(collection, n)")
    model = load_models(tmp_path)["doubled"]
    assert run_model(con, model, {"collection": "a"}) == 2
    assert run_model(con, model, {"collection": "b"}) == 1
    con.execute("UPDATE numbers SET n = 10 WHERE collection = 'a' AND n = 1")
    run_model(con, model, {"collection": "a"})
    assert sorted(con.execute("SELECT collection, n2 FROM doubled").fetchall()) == [("a", 4), ("a", 20), ("b", 10)]
    (tmp_path / "doubled.sql").write_text(
        "SELECT collection, n * 3 AS n3 FROM {{ ref('numbers') }} WHERE collection = $collection"
    )
    run_model(con, load_models(tmp_path)["doubled"], {"collection": "b"})
    assert con.execute("SELECT n3 FROM doubled").fetchall() == [(15,)]


def test_missing_parameter_names_the_file(tmp_path):
    (tmp_path / "m.sql").write_text("SELECT $collection AS collection, $threshold AS t")
    con = duckdb.connect()
    with pytest.raises(SqlModelError, match=r"m.sql: no value for parameters \['threshold'\]"):
        run_model(con, load_models(tmp_path)["m"], {"collection": "a"})
