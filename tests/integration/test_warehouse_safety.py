"""The warehouse under a crash in the middle of a write and under two writers at once."""

import subprocess
import sys
import textwrap

import pandas as pd
import pytest

from rr_assets.core.warehouse import Warehouse

pytestmark = pytest.mark.integration


def queries_frame(collection: str, n: int, tag: str) -> pd.DataFrame:
    return pd.DataFrame({"collection": collection, "query_id": [f"q{i}" for i in range(n)],
                         "text": [f"{tag} {i}" for i in range(n)]})


def test_a_crash_mid_write_leaves_the_previous_version(tmp_path):
    warehouse = Warehouse(tmp_path / "w.duckdb")
    warehouse.replace_rows("queries", {"collection": "c"}, queries_frame("c", 500, "old"))
    before = warehouse.table_hash("queries", {"collection": "c"})
    # The child deletes the old rows inside its transaction, then is killed (SIGKILL) before COMMIT.
    child = textwrap.dedent(f"""
        import sys, time
        import pandas as pd
        from contextlib import contextmanager
        from rr_assets.core.warehouse import Warehouse

        class StallingConnection:
            def __init__(self, con): self.con = con
            def execute(self, *a, **k): return self.con.execute(*a, **k)
            def unregister(self, *a): return self.con.unregister(*a)
            def register(self, *a):
                print("mid-transaction", flush=True)
                time.sleep(60)

        warehouse = Warehouse({str(tmp_path / "w.duckdb")!r})
        plain = warehouse.connect
        @contextmanager
        def stalling():
            with plain() as con:
                yield StallingConnection(con)
        warehouse.connect = stalling
        frame = pd.DataFrame({{"collection": "c", "query_id": ["new"], "text": ["new"]}})
        warehouse.replace_rows("queries", {{"collection": "c"}}, frame)
    """)
    process = subprocess.Popen([sys.executable, "-c", child], stdout=subprocess.PIPE, text=True)
    assert process.stdout.readline().strip() == "mid-transaction"
    process.kill()
    process.wait()
    assert warehouse.table_hash("queries", {"collection": "c"}) == before
    assert len(warehouse.partition_rows("queries", {"collection": "c"})) == 500


def test_two_writers_at_once_do_not_corrupt_the_warehouse(tmp_path):
    path = tmp_path / "w.duckdb"
    writer = textwrap.dedent(f"""
        import sys
        import pandas as pd
        from rr_assets.core.warehouse import Warehouse
        collection = sys.argv[1]
        warehouse = Warehouse({str(path)!r})
        for round_ in range(15):
            frame = pd.DataFrame({{"collection": collection, "query_id": [f"q{{i}}" for i in range(200)],
                                  "text": [f"{{collection}} round {{round_}} {{i}}" for i in range(200)]}})
            warehouse.replace_rows("queries", {{"collection": collection}}, frame)
            warehouse.table_hash("queries", {{"collection": collection}})
    """)
    processes = [subprocess.Popen([sys.executable, "-c", writer, name], stderr=subprocess.PIPE, text=True)
                 for name in ("a", "b")]
    for process in processes:
        _, err = process.communicate(timeout=300)
        assert process.returncode == 0, err
    warehouse = Warehouse(path)
    for name in ("a", "b"):
        rows = warehouse.partition_rows("queries", {"collection": name})
        assert len(rows) == 200 and rows["text"].min() == f"{name} round 14 0"
