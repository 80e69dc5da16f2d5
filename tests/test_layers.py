"""The package's layers import one way only (the brief's architecture; harness/__init__.py).

Every ``import harness.X`` / ``from harness.X import ...`` in every module, including the lazy
imports inside functions, must point to the module's own package or to a lower layer. Packages
on the same layer (``study`` and ``tune``) do not import each other.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "harness"

# Lowest first. Each entry is a top-level package or module of harness/.
LAYERS: list[set[str]] = [
    {"atomic", "registry", "options", "yaml_files"},  # shared utilities
    {"problems"},  # 1D inverse problems (operators, data)
    {"tasks"},  # data, losses, metrics, retrain recipes
    {"spaces"},  # search spaces and ops
    {"methods"},  # method components and the engine
    {"runner"},  # specs, executors, store
    {"stats"},
    {"report"},
    {"study", "tune"},  # entry points
    {"__init__"},  # the package: its version, and ``run_study`` imported on first use
    {"cli"},
    {"__main__"},
]
# ``import harness`` (for ``__version__``) is allowed anywhere: Python runs harness/__init__.py
# before any module of the package anyway, and it imports nothing at import time.
RANK = {name: rank for rank, names in enumerate(LAYERS) for name in names}


def _unit(path: Path) -> str:
    return path.relative_to(ROOT).parts[0].removesuffix(".py")


def _harness_imports(path: Path) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        else:
            continue
        found += [(node.lineno, name) for name in names if name.split(".")[0] == "harness"]
    return found


def upward_imports(path: Path, unit: str) -> list[str]:
    """The imports of ``path`` (a module of ``unit``) that point to its own or a higher layer."""
    wrong = []
    for line, name in _harness_imports(path):
        parts = name.split(".")
        if len(parts) == 1:
            continue
        target = parts[1]
        if target != unit and RANK[target] >= RANK[unit]:
            wrong.append(f"{path.name}:{line} ({unit}) imports {name} ({target})")
    return wrong


def test_every_package_has_a_layer():
    units = {_unit(path) for path in ROOT.rglob("*.py")}
    assert units - set(RANK) == set(), "add the new package to LAYERS"


def test_imports_point_down_only():
    wrong = [hit for path in sorted(ROOT.rglob("*.py")) for hit in upward_imports(path, _unit(path))]
    assert wrong == []


@pytest.mark.parametrize(
    ("source", "unit", "flagged"),
    [
        ("from harness.study import api\n", "methods", True),
        ("def f():\n    import harness.report.html\n", "methods", True),
        ("from harness.tune import bohb\n", "study", True),  # same layer, other package
        ("from harness.spaces import ops\n", "methods", False),
        ("from harness.methods import search\n", "methods", False),
        ("from harness import __version__\n", "runner", False),
    ],
)
def test_the_check_flags_upward_and_sideways_imports(tmp_path, source, unit, flagged):
    path = tmp_path / "probe.py"
    path.write_text(source)
    assert bool(upward_imports(path, unit)) is flagged


def test_the_package_root_imports_nothing_at_import_time():
    """Why ``import harness`` may appear in any layer: its module-level code imports nothing."""
    tree = ast.parse((ROOT / "__init__.py").read_text(encoding="utf-8"))
    assert [node for node in tree.body if isinstance(node, ast.Import | ast.ImportFrom)] == []
