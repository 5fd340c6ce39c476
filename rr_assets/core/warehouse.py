"""The DuckDB warehouse: one file, partition-wise atomic writes, values always passed as parameters."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb
import pandas as pd

SQL_DIR = Path(__file__).resolve().parent.parent / "sql"
SCHEMA_SQL = SQL_DIR / "schema.sql"
_IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]*$")


def checked_identifier(name: str) -> str:
    """Table and column names cannot be parameters; only plain lower-case identifiers pass."""
    if not _IDENTIFIER.match(name):
        raise ValueError(f"not a valid SQL identifier: {name!r}")
    return name


def where_clause(columns) -> str:
    """`a = ? AND b = ?` over validated column names (TRUE for none); values go as parameters."""
    return " AND ".join(f"{checked_identifier(c)} = ?" for c in columns) or "TRUE"


class Warehouse:
    """Opens short-lived connections, waiting while another process holds DuckDB's file lock."""

    def __init__(self, path: str | Path, lock_timeout_s: float = 300.0):
        self.path = Path(path)
        self.lock_timeout_s = lock_timeout_s
        self._schema_ready = False

    @contextmanager
    def connect(self) -> Iterator[duckdb.DuckDBPyConnection]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        deadline = time.monotonic() + self.lock_timeout_s
        while True:
            try:
                con = duckdb.connect(str(self.path))
                break
            except duckdb.IOException as exc:
                if "lock" not in str(exc).lower() or time.monotonic() > deadline:
                    raise
                time.sleep(0.5)
        try:
            if not self._schema_ready:
                con.execute(SCHEMA_SQL.read_text())
                self._schema_ready = True
            yield con
        finally:
            con.close()

    def query(self, name: str, params: dict) -> pd.DataFrame:
        """Run the query rr_assets/sql/<name>.sql with named parameters."""
        with self.connect() as con:
            return con.execute(named_sql(name), params).df()

    def execute(self, name: str, params: dict) -> None:
        """Run the statement rr_assets/sql/<name>.sql with named parameters, in its own transaction."""
        with self.connect() as con:
            con.execute(named_sql(name), params)

    def partition_rows(self, table: str, where: dict[str, str]) -> pd.DataFrame:
        """Every row of `table` matching `where`."""
        with self.connect() as con:
            return con.execute(f"SELECT * FROM {checked_identifier(table)} WHERE {where_clause(where)}",
                               list(where.values())).df()

    def replace_rows(self, table: str, where: dict[str, str], frame: pd.DataFrame) -> int:
        """Replace the rows of `table` matching `where` by `frame`, in one transaction:
        a failure leaves the previous rows in place."""
        table = checked_identifier(table)
        condition = where_clause(where)
        with self.connect() as con:
            con.execute("BEGIN TRANSACTION")
            try:
                con.execute(f"DELETE FROM {table} WHERE {condition}", list(where.values()))
                con.register("incoming_rows", frame)
                con.execute(f"INSERT INTO {table} BY NAME SELECT * FROM incoming_rows")
                con.unregister("incoming_rows")
                con.execute("COMMIT")
            except Exception:
                con.execute("ROLLBACK")
                raise
        return len(frame)

    def table_hash(self, table: str, where: dict[str, str]) -> str:
        """A content hash of the matching rows, independent of row order."""
        table = checked_identifier(table)
        condition = where_clause(where)
        with self.connect() as con:
            row = con.execute(
                f"SELECT count(*), coalesce(sum(hash(t)), 0) FROM {table} t WHERE {condition}",
                list(where.values()),
            ).fetchone()
        return f"{row[0]}-{int(row[1]) & 0xFFFFFFFFFFFFFFFF:016x}"


REF_PATTERN = re.compile(r"\{\{\s*ref\(\s*['\"]([a-z_][a-z0-9_]*)['\"]\s*\)\s*\}\}")


def compile_refs(sql: str) -> str:
    """`{{ ref('table') }}` → table (a checked identifier); the SQL of models and queries alike."""
    return REF_PATTERN.sub(lambda m: checked_identifier(m.group(1)), sql)


def named_sql(name: str) -> str:
    """A query from rr_assets/sql/<name>.sql, refs compiled (values stay parameters)."""
    return compile_refs((SQL_DIR / f"{name}.sql").read_text())
