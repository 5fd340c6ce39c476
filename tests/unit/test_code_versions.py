"""A forgotten code-version bump is caught: each asset's declared code version is recorded beside a
fingerprint of the code it runs (its module and the rr_assets modules that module imports, by
syntax tree: comments, docstrings and layout do not count). When that code changes, this test
fails until the version is bumped (the change alters what the asset writes: downstream recomputes)
or not (it does not), and the record is rewritten:

    .venv/bin/python -m tests.unit.test_code_versions
"""

import ast
import functools
import hashlib
import importlib.util
import json
import sys
from pathlib import Path

import pytest

from tests.conftest import PROJECT_ROOT

pytestmark = pytest.mark.unit
RECORD = Path(__file__).with_name("code_versions.json")


def _source(module: str) -> Path:
    return Path(importlib.util.find_spec(module).origin)


def _fingerprint(module: str) -> str:
    """The module's syntax tree without docstrings, hashed."""
    tree = ast.parse(_source(module).read_text())
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if isinstance(body, list) and body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
                and isinstance(body[0].value.value, str):
            node.body = body[1:] or [ast.Pass()]
    return hashlib.sha256(ast.dump(tree).encode()).hexdigest()[:12]


def _imports(module: str) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(_source(module).read_text())):
        names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
            [node.module] if isinstance(node, ast.ImportFrom) and node.module else []
        found |= {name for name in names if name.startswith("rr_assets.")}
    return found


@functools.cache
def _code(module: str) -> dict[str, str]:
    """Fingerprints of the module and every rr_assets module it reaches by imports."""
    seen, todo = set(), [module]
    while todo:
        name = todo.pop()
        if name not in seen and importlib.util.find_spec(name) is not None:
            seen.add(name)
            todo += _imports(name)
    return {name: _fingerprint(name) for name in sorted(seen) if name != "rr_assets.definitions"}


def current() -> dict[str, dict]:
    """Asset → its declared code version and the fingerprints of its code."""
    import dagster as dg

    from rr_assets.assets import candidates, corpus, index, report, student, teacher

    record = {}
    for module in (report, candidates, corpus, index, student, teacher):
        for value in vars(module).values():
            if isinstance(value, dg.AssetsDefinition) and value.is_materializable:
                for spec in value.specs:
                    record[spec.key.to_user_string()] = {"code_version": spec.code_version,
                                                         "code": _code(module.__name__)}
    return dict(sorted(record.items()))


def test_every_asset_declares_a_code_version_and_changed_code_is_recorded():
    now, recorded = current(), json.loads(RECORD.read_text())
    assert all(entry["code_version"] for entry in now.values()), [k for k, v in now.items() if not v["code_version"]]
    problems = []
    for asset, entry in now.items():
        before = recorded.get(asset, {"code_version": None, "code": {}})
        changed = sorted(m for m in entry["code"] if entry["code"][m] != before["code"].get(m))
        if changed and entry["code_version"] == before["code_version"]:
            problems.append(f"{asset} (code version {entry['code_version']}): {', '.join(changed)} changed; bump its "
                            "code_version if that can change what it writes, then re-record")
        elif entry != before:
            problems.append(f"{asset}: code version {before['code_version']} -> {entry['code_version']}; re-record")
    how = f"re-record: cd {PROJECT_ROOT} && .venv/bin/python -m tests.unit.test_code_versions"
    assert not problems, "\n".join([*problems, how])


if __name__ == "__main__":
    RECORD.write_text(json.dumps(current(), indent=1) + "\n")
    print(f"recorded {RECORD}", file=sys.stderr)
