"""A small dbt-like runner: one `.sql` file = one DuckDB table; `{{ ref('x') }}` names a dependency.

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

from rr_assets.core.warehouse import checked_identifier, where_clause

_REF = re.compile(r"\{\{\s*ref\(\s*['\"]([a-z_][a-z0-9_]*)['\"]\s*\)\s*\}\}")
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

    def compiled(self) -> str:
        return _REF.sub(lambda m: checked_identifier(m.group(1)), self.sql).strip().rstrip(";")

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
        leftover = _REF.sub("", sql)
        if "{{" in leftover or "}}" in leftover:
            raise SqlModelError(f"{path}: only {{{{ ref('name') }}}} placeholders are supported")
        models[name] = SqlModel(name, path, sql, tuple(dict.fromkeys(_REF.findall(sql))))
    graph = {name: {r for r in m.refs if r in models} for name, m in models.items()}
    try:
        tuple(graphlib.TopologicalSorter(graph).static_order())
    except graphlib.CycleError as exc:
        raise SqlModelError(f"{folder}: models reference each other in a cycle: {exc.args[1]}") from exc
    return models


def run_model(con: duckdb.DuckDBPyConnection, model: SqlModel, params: dict[str, object]) -> int:
    """Replace the rows of the partition named in `params` (its partition columns); returns the
    new row count.
    A table whose columns no longer match the SQL is rebuilt (derived data: nothing is lost)."""
    missing = model.parameters() - set(params)
    if missing:
        raise SqlModelError(f"{model.path}: no value for parameters {sorted(missing)}")
    used = {k: v for k, v in params.items() if k in model.parameters()}
    table = checked_identifier(model.name)
    con.execute("BEGIN TRANSACTION")
    try:
        con.execute(f"CREATE OR REPLACE TEMP TABLE rr_model_rows AS {model.compiled()}", used)
        new_columns = con.execute("SELECT column_name, column_type FROM (DESCRIBE rr_model_rows)").fetchall()
        exists = con.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_name = ? AND table_schema = 'main'",
            [table],
        ).fetchone()[0]
        old_columns = con.execute(f"SELECT column_name, column_type FROM (DESCRIBE {table})").fetchall() if exists else None
        if old_columns != new_columns:
            con.execute(f"DROP TABLE IF EXISTS {table}")
            con.execute(f"CREATE TABLE {table} AS SELECT * FROM rr_model_rows")
        else:
            columns = model.partition_columns()
            con.execute(f"DELETE FROM {table} WHERE {where_clause(columns)}", [params[c] for c in columns])
            con.execute(f"INSERT INTO {table} BY NAME SELECT * FROM rr_model_rows")
        count = con.execute("SELECT count(*) FROM rr_model_rows").fetchone()[0]
        con.execute("DROP TABLE rr_model_rows")
        con.execute("COMMIT")
    except Exception:
        con.execute("ROLLBACK")
        raise
    return count
