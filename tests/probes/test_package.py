"""The probes package on its own: the API a plugin builds on depends on nothing of the adapter."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import probes

PROBES = Path(probes.__file__).parent
MODULES = sorted(PROBES.rglob("*.py"))


def imported_modules(tree: ast.AST) -> list[str]:
    """Every module `tree` imports, wherever the import is (in a function, under
    TYPE_CHECKING): `import a.b` and `from a.b import c` give `a.b`."""
    names: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.append(node.module)
    return names


def test_every_module_of_probes_is_looked_at() -> None:
    assert {path.stem for path in MODULES} >= {"__init__", "base", "http", "file", "exec"}


@pytest.mark.parametrize("path", MODULES, ids=[path.stem for path in MODULES])
def test_a_probes_module_never_imports_the_adapter(path: Path) -> None:
    tree = ast.parse(path.read_text(), filename=str(path))
    assert [
        name for name in imported_modules(tree) if name == "adapter" or name.startswith("adapter.")
    ] == []


@pytest.mark.parametrize(
    ("source", "found"),
    [
        ("import adapter", ["adapter"]),
        ("from adapter.config import ConfigError", ["adapter.config"]),
        ("def f():\n    import adapter.runner as r", ["adapter.runner"]),
        ("from . import base", []),
        ("import adapters_elsewhere", ["adapters_elsewhere"]),
    ],
    ids=["import", "from-import", "inside-a-function", "relative", "other-name"],
)
def test_imports_are_found_wherever_they_are(source: str, found: list[str]) -> None:
    assert imported_modules(ast.parse(source)) == found
