"""The house's floors: `core/` is plain Python (no Dagster, nothing above it), only the graph's
wiring imports the asset modules, benchmarks/ reuse core/ and public entry points, and no import
runs in a cycle."""

import ast
from pathlib import Path

import pytest

from tests.conftest import PROJECT_ROOT

pytestmark = pytest.mark.unit
PACKAGE = PROJECT_ROOT / "rr_assets"


def imports_of(path: Path) -> set[str]:
    """The modules a file imports (absolute names; relative imports do not occur here)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def module_name(path: Path) -> str:
    return ".".join(path.relative_to(PROJECT_ROOT).with_suffix("").parts)


MODULES = {module_name(p): p for p in PACKAGE.rglob("*.py")}


def test_core_imports_neither_dagster_nor_anything_above_it():
    for name, path in MODULES.items():
        if name.startswith("rr_assets.core."):
            above = {i for i in imports_of(path) if i.startswith("rr_assets.") and not i.startswith("rr_assets.core")}
            assert not above and not any(i.split(".")[0] == "dagster" for i in imports_of(path)), (name, above)


def test_only_the_definitions_import_the_asset_modules():
    for path in [*MODULES.values(), *(PROJECT_ROOT / "benchmarks").glob("*.py")]:
        name = module_name(path)
        if name.startswith("rr_assets.assets") or name == "rr_assets.definitions":
            continue
        assert not {i for i in imports_of(path) if i.startswith("rr_assets.assets")}, name


def test_no_import_cycle():
    graph = {name: {i for i in imports_of(path) if i in MODULES and i != name} for name, path in MODULES.items()}

    def visit(name: str, trail: tuple[str, ...]) -> None:
        assert name not in trail, " -> ".join((*trail, name))
        for other in graph[name]:
            visit(other, (*trail, name))

    for name in graph:
        visit(name, ())
