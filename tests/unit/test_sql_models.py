
import duckdb
import pytest

from rr_assets.core.sql_models import SqlModelError, load_data_tests, load_models, run_data_test, run_model
from tests.conftest import PROJECT_ROOT

pytestmark = pytest.mark.unit
SQL_DIR = PROJECT_ROOT / "rr_assets" / "dbt_like_sql"
DATA_TESTS = load_data_tests(SQL_DIR)


def test_project_models_and_their_refs():
    models = load_models(SQL_DIR)
    assert set(models) == {"splits", "train_pointwise", "train_pairwise", "train_listwise"}
    assert set(models["splits"].refs) == {"qrels", "queries"}
    assert set(models["train_pointwise"].refs) == {"teacher_judgments", "splits", "qrels", "first_stage_candidates",
                                                   "queries", "corpus"}
    assert set(models["train_pairwise"].refs) == {"teacher_comparisons", "splits", "train_pointwise"}
    assert set(models["train_listwise"].refs) == {"teacher_rankings", "splits"}
    assert models["splits"].partition_columns() == ("collection",)
    assert models["train_listwise"].partition_columns() == ("collection", "prompt_variant")
    assert {"grounded", "max_label", "hard_negative_depth"} <= models["train_pointwise"].parameters()


def test_descriptions_come_from_the_header_comments():
    models = load_models(SQL_DIR)
    assert models["splits"].description.startswith("Which queries train the student, which select its checkpoint")
    assert "--" not in models["train_pairwise"].description and "\n" not in models["train_pairwise"].description
    assert all(m.description for m in models.values())


def test_code_version_follows_the_sql(tmp_path):
    (tmp_path / "m.sql").write_text("-- one\nSELECT 1 AS x")
    first = load_models(tmp_path)["m"].code_version
    assert load_models(tmp_path)["m"].code_version == first
    (tmp_path / "m.sql").write_text("-- one\nSELECT 2 AS x")
    assert load_models(tmp_path)["m"].code_version != first


def test_the_data_tests_cover_the_training_tables():
    assert {t.model for t in DATA_TESTS} >= {"splits", "train_pointwise", "train_pairwise"}
    assert len({t.name for t in DATA_TESTS}) == len(DATA_TESTS)


@pytest.mark.parametrize("data_test", DATA_TESTS, ids=[t.name for t in DATA_TESTS])
def test_data_test(data_test):
    expected, actual = run_data_test(load_models(SQL_DIR)[data_test.model], data_test)
    assert expected, "a data test must expect rows"
    assert actual == expected


def test_cycle_is_reported(tmp_path):
    (tmp_path / "a.sql").write_text("SELECT * FROM {{ ref('b') }}")
    (tmp_path / "b.sql").write_text("SELECT * FROM {{ ref('a') }}")
    with pytest.raises(SqlModelError, match="cycle"):
        load_models(tmp_path)


def test_other_placeholders_are_refused(tmp_path):
    (tmp_path / "m.sql").write_text("SELECT * FROM {{ source('x') }}")
    with pytest.raises(SqlModelError, match=r"m.sql: only \{\{ ref\('name'\) \}\} placeholders are supported"):
        load_models(tmp_path)


@pytest.fixture
def numbers(tmp_path):
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    con.execute("CREATE TABLE numbers AS SELECT * FROM (VALUES ('a', 1), ('a', 2), ('b', 5)) v(collection, n)")
    return con


def model_of(tmp_path, sql):
    (tmp_path / "doubled.sql").write_text(sql)
    return load_models(tmp_path)["doubled"]


def rows(con):
    return sorted(con.execute("SELECT * FROM doubled").fetchall(), key=repr)


def test_run_model_replaces_one_collection(tmp_path, numbers):
    model = model_of(tmp_path, "SELECT collection, n * 2 AS n2 FROM {{ ref('numbers') }} WHERE collection = $collection")
    assert run_model(numbers, model, {"collection": "a"}).rows == 2
    assert run_model(numbers, model, {"collection": "b"}).rows == 1
    numbers.execute("UPDATE numbers SET n = 10 WHERE collection = 'a' AND n = 1")
    assert run_model(numbers, model, {"collection": "a"}).migrations == []
    assert rows(numbers) == [("a", 20), ("a", 4), ("b", 10)]


def test_an_added_column_is_migrated_and_other_partitions_are_kept(tmp_path, numbers):
    run_model(numbers, model_of(tmp_path, "SELECT collection, n FROM {{ ref('numbers') }} WHERE collection = $collection"),
              {"collection": "a"})
    run_model(numbers, model_of(tmp_path, "SELECT collection, n FROM {{ ref('numbers') }} WHERE collection = $collection"),
              {"collection": "b"})
    wider = model_of(tmp_path, "SELECT collection, n, n * 3 AS n3 FROM {{ ref('numbers') }} WHERE collection = $collection")
    result = run_model(numbers, wider, {"collection": "b"})
    assert result.migrations == ["added column n3"] and result.rows == 1
    assert rows(numbers) == [("a", 1, None), ("a", 2, None), ("b", 5, 15)]


def test_a_removed_column_is_dropped_and_other_partitions_are_kept(tmp_path, numbers):
    run_model(numbers, model_of(tmp_path, "SELECT collection, n, n * 3 AS n3 FROM {{ ref('numbers') }} "
                                          "WHERE collection = $collection"), {"collection": "a"})
    narrower = model_of(tmp_path, "SELECT collection, n FROM {{ ref('numbers') }} WHERE collection = $collection")
    assert run_model(numbers, narrower, {"collection": "b"}).migrations == ["dropped column n3"]
    assert rows(numbers) == [("a", 1), ("a", 2), ("b", 5)]


def test_a_changed_column_type_fails_naming_file_and_column(tmp_path, numbers):
    run_model(numbers, model_of(tmp_path, "SELECT collection, n FROM {{ ref('numbers') }} WHERE collection = $collection"),
              {"collection": "a"})
    as_text = model_of(tmp_path, "SELECT collection, CAST(n AS VARCHAR) AS n FROM {{ ref('numbers') }} "
                                 "WHERE collection = $collection")
    with pytest.raises(SqlModelError, match=r"doubled.sql: column 'n' changes type from INTEGER to VARCHAR"):
        run_model(numbers, as_text, {"collection": "b"})
    assert rows(numbers) == [("a", 1), ("a", 2)]  # rolled back: nothing changed


def test_missing_parameter_names_the_file(tmp_path):
    (tmp_path / "m.sql").write_text("SELECT $collection AS collection, $threshold AS t")
    con = duckdb.connect()
    with pytest.raises(SqlModelError, match=r"m.sql: no value for parameters \['threshold'\]"):
        run_model(con, load_models(tmp_path)["m"], {"collection": "a"})
