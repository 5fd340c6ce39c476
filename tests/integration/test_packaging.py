"""A non-editable install finds what rr reads from its own package (issue 28): the SQL models of
dbt_like_sql/ with their data tests, and the warehouse's schema in rr_assets/sql/. The wheel is
built from a copy of the sources without network, installed with `--target`, and used from an empty
folder with only the target on PYTHONPATH, so the checkout cannot be imported."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import PROJECT_ROOT

pytestmark = pytest.mark.integration

MODELS = {"splits", "train_pointwise", "train_pairwise", "train_listwise"}
# Runs in the installed copy; prints what it resolved, as JSON.
CHECK = """
import json, sys
from pathlib import Path
import rr_assets
from rr_assets.core.sql_models import load_data_tests
from rr_assets.core.warehouse import SCHEMA_SQL
from rr_assets.definitions import SQL_MODELS_DIR, defs
keys = {k.to_user_string() for k in defs().resolve_asset_graph().get_all_asset_keys()}
print(json.dumps({"package": rr_assets.__file__, "models_dir": str(SQL_MODELS_DIR), "schema": str(SCHEMA_SQL),
                  "schema_is_file": SCHEMA_SQL.is_file(), "models": sorted(p.stem for p in SQL_MODELS_DIR.glob("*.sql")),
                  "data_tests": len(load_data_tests(SQL_MODELS_DIR)), "assets": sorted(keys)}))
"""


def _run(command: list[str], **kwargs) -> subprocess.CompletedProcess:
    done = subprocess.run(command, capture_output=True, text=True, timeout=240, **kwargs)
    assert done.returncode == 0, f"{' '.join(map(str, command))} exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
    return done


def test_the_top_level_dbt_like_sql_is_the_packaged_folder():
    assert (PROJECT_ROOT / "dbt_like_sql").resolve() == (PROJECT_ROOT / "rr_assets" / "dbt_like_sql").resolve()


def test_a_non_editable_install_finds_its_sql_and_runs_the_cli(tmp_path):
    source, wheels, target, empty = (tmp_path / name for name in ("source", "wheels", "target", "empty"))
    # A copy of what the build reads, so the build's own files (build/, *.egg-info) stay out of the checkout.
    shutil.copytree(PROJECT_ROOT / "rr_assets", source / "rr_assets", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(PROJECT_ROOT / name, source / name)
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input"]
    _run([*pip, "wheel", "--no-deps", "--no-build-isolation", "--no-index", str(source), "-w", str(wheels)])
    (wheel,) = wheels.glob("rr-*.whl")
    _run([*pip, "install", "--no-deps", "--no-index", "--target", str(target), str(wheel)])

    empty.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP")}
    # The demo config is not package data (resources/ stays beside the checkout): point at the checkout's.
    env |= {"PYTHONPATH": str(target), "PYTHONNOUSERSITE": "1", "RR_HOME": str(tmp_path / "home"),
            "RR_CONFIG": str(PROJECT_ROOT / "resources" / "configs" / "demo.yaml")}
    found = json.loads(_run([sys.executable, "-c", CHECK], cwd=empty, env=env).stdout.strip().splitlines()[-1])
    package = target.resolve() / "rr_assets"
    assert Path(found["package"]).resolve().parent == package
    assert Path(found["models_dir"]) == package / "dbt_like_sql"
    assert set(found["models"]) == MODELS
    assert found["data_tests"] > 0
    assert Path(found["schema"]) == package / "sql" / "schema.sql" and found["schema_is_file"]
    assert set(found["assets"]) >= MODELS

    # The console script pip wrote for the `rr` entry point (its shebang is this interpreter).
    done = _run([str(target / "bin" / "rr"), "demo", "--help"], cwd=empty, env=env)
    assert "usage: rr demo" in done.stdout
