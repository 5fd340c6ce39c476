"""A small dbt-like runner: one `.sql` file = one DuckDB table; `{{ ref('x') }}` names a dependency;
the header comment is the model's description; `dbt_like_sql/tests/*.yml` hold data tests with
given rows (as dbt unit tests do).

A model is partitioned by the key columns its SQL filters on as parameters (`$collection`, and
`$prompt_variant` where used): each run replaces the rows of one partition, in one transaction.
Values reach SQL only as named parameters."""

from __future__ import annotations

import graphlib
import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pandas as pd
import yaml

from rr_assets.core.warehouse import REF_PATTERN, checked_identifier, compile_refs, where_clause

_PARAM = re.compile(r"\$([a-z_][a-z0-9_]*)")
PARTITION_COLUMNS = ("collection", "prompt_variant")


class SqlModelError(ValueError):
    """A model file that cannot be run; the message names the file."""


@dataclass(frozen=True)
class SqlModel:
    name: str
    path: Path
    sql: str
    refs: tuple[str, ...]

    @property
    def code_version(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()[:16]

    @property
    def description(self) -> str:
        """The model's leading `--` comment lines, joined into prose."""
        lines = []
        for line in self.sql.splitlines():
            if not line.startswith("--"):
                break
            lines.append(line[2:].strip())
        return " ".join(lines)

    def compiled(self) -> str:
        return compile_refs(self.sql).strip().rstrip(";")

    def parameters(self) -> set[str]:
        return set(_PARAM.findall(self.sql))

    def partition_columns(self) -> tuple[str, ...]:
        return tuple(c for c in PARTITION_COLUMNS if c in self.parameters())


def load_models(folder: str | Path) -> dict[str, SqlModel]:
    """Every `*.sql` file in `folder`, checked for unknown placeholders and cycles."""
    models = {}
    for path in sorted(Path(folder).glob("*.sql")):
        sql = path.read_text()
        name = checked_identifier(path.stem)
        leftover = REF_PATTERN.sub("", sql)
        if "{{" in leftover or "}}" in leftover:
            raise SqlModelError(f"{path}: only {{{{ ref('name') }}}} placeholders are supported")
        models[name] = SqlModel(name, path, sql, tuple(dict.fromkeys(REF_PATTERN.findall(sql))))
    graph = {name: {r for r in m.refs if r in models} for name, m in models.items()}
    try:
        tuple(graphlib.TopologicalSorter(graph).static_order())
    except graphlib.CycleError as exc:
        raise SqlModelError(f"{folder}: models reference each other in a cycle: {exc.args[1]}") from exc
    return models


def _columns(con: duckdb.DuckDBPyConnection, table: str) -> dict[str, str]:
    return dict(con.execute(f"SELECT column_name, column_type FROM (DESCRIBE {table})").fetchall())


def _migrate(con: duckdb.DuckDBPyConnection, model: SqlModel, table: str) -> list[str]:
    """Bring an existing table to the columns of the model's new rows: added columns are added
    (NULL in other partitions until they are rebuilt, which the model's new code version asks
    for), removed ones are dropped. A changed column type cannot be migrated and fails."""
    old, new = _columns(con, table), _columns(con, "rr_model_rows")
    changed = [c for c in old if c in new and old[c] != new[c]]
    if changed:
        raise SqlModelError(
            f"{model.path}: column {changed[0]!r} changes type from {old[changed[0]]} to {new[changed[0]]}; "
            f"rows of other partitions cannot be migrated. Rename the column, or drop table {table} "
            "to rebuild every partition.")
    steps = []
    for column in [c for c in new if c not in old]:
        con.execute(f"ALTER TABLE {table} ADD COLUMN {checked_identifier(column)} {new[column]}")
        steps.append(f"added column {column}")
    for column in [c for c in old if c not in new]:
        con.execute(f"ALTER TABLE {table} DROP COLUMN {checked_identifier(column)}")
        steps.append(f"dropped column {column}")
    return steps


@dataclass(frozen=True)
class ModelRun:
    rows: int
    migrations: list[str]


def run_model(con: duckdb.DuckDBPyConnection, model: SqlModel, params: dict[str, object]) -> ModelRun:
    """Replace the rows of the partition named in `params` (its partition columns), in one
    transaction; a table whose columns changed is migrated first (see `_migrate`)."""
    missing = model.parameters() - set(params)
    if missing:
        raise SqlModelError(f"{model.path}: no value for parameters {sorted(missing)}")
    used = {k: v for k, v in params.items() if k in model.parameters()}
    table = checked_identifier(model.name)
    con.execute("BEGIN TRANSACTION")
    try:
        con.execute(f"CREATE OR REPLACE TEMP TABLE rr_model_rows AS {model.compiled()}", used)
        exists = con.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_name = ? AND table_schema = 'main'", [table],
        ).fetchone()[0]
        migrations = []
        if not exists:
            con.execute(f"CREATE TABLE {table} AS SELECT * FROM rr_model_rows LIMIT 0")
        elif list(_columns(con, table).items()) != list(_columns(con, "rr_model_rows").items()):
            migrations = _migrate(con, model, table)
        columns = model.partition_columns()
        con.execute(f"DELETE FROM {table} WHERE {where_clause(columns)}", [params[c] for c in columns])
        con.execute(f"INSERT INTO {table} BY NAME SELECT * FROM rr_model_rows")
        count = con.execute("SELECT count(*) FROM rr_model_rows").fetchone()[0]
        con.execute("DROP TABLE rr_model_rows")
        con.execute("COMMIT")
    except Exception:
        con.execute("ROLLBACK")
        raise
    return ModelRun(count, migrations)


@dataclass(frozen=True)
class DataTest:
    """A data test with given rows: the input tables (`given`), the parameters and the rows the
    model must return (`expect`, compared on the expected columns, in any order)."""

    name: str
    model: str
    given: dict[str, list[dict]]
    params: dict[str, object]
    expect: list[dict]


def load_data_tests(folder: str | Path) -> list[DataTest]:
    tests = []
    for path in sorted((Path(folder) / "tests").glob("*.yml")):
        for raw in yaml.safe_load(path.read_text())["data_tests"]:
            tests.append(DataTest(raw["name"], raw["model"], raw["given"], raw.get("params", {}), raw["expect"]))
    return tests


def run_data_test(model: SqlModel, test: DataTest) -> tuple[list[dict], list[dict]]:
    """(expected rows, actual rows) of the test, each as sorted dicts of the expected columns."""
    con = duckdb.connect()
    for table, rows in test.given.items():
        con.register("given_rows", pd.DataFrame(rows))
        con.execute(f"CREATE TABLE {checked_identifier(table)} AS SELECT * FROM given_rows")
        con.unregister("given_rows")
    actual = con.execute(model.compiled(), {k: v for k, v in test.params.items() if k in model.parameters()}).df()
    columns = sorted({c for row in test.expect for c in row})

    def canonical(rows: list[dict]) -> list[dict]:
        """Rows as dicts of the expected columns, SQL NULL (NaN through pandas) as None, sorted."""
        cleaned = [{c: None if pd.isna(row.get(c)) else row.get(c) for c in columns} for row in rows]
        return sorted(cleaned, key=repr)

    return canonical(test.expect), canonical(actual[columns].to_dict("records") if len(actual) else [])
