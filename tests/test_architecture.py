"""The package's shape: layers that import only downwards, and modules one can read in a sitting.

The layers, bottom to top (docs/architecture.md). A module may import its own layer and the ones
below; inference code never imports `emotrace.train`.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "emotrace"

LAYERS: list[set[str]] = [
    # the core: types, the face table, the model registry, a process pool
    {"errors", "labels", "results", "face_table", "models", "pool"},
    {"faces", "media"},  # per-face stages, reading video and sound
    {"pipeline", "smooth"},  # the per-frame engine and time smoothing
    {"outputs"},  # files, tables, plots, annotated video, submission
    {"fragments", "batch", "highlights", "evaluation"},  # features built on the engine
    {"apps"},  # REST API, webcam, demo
    {"train"},  # training (the train extra); may use everything below the apps
    {"cli"},  # the command line: the top
]
RANK = {name: i for i, layer in enumerate(LAYERS) for name in layer}
# train sits beside apps, not above them: apps never import train, and train never imports apps.
SIDEWAYS = {("train", "apps"), ("apps", "train")}


def _unit(path: Path) -> str:
    rel = path.relative_to(PACKAGE)
    return rel.parts[0].removesuffix(".py")


def _imports(path: Path) -> list[tuple[int, str]]:
    """(line, first component under emotrace) of every `emotrace.X` import in a module."""
    out = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            parts = node.module.split(".")
            if parts[0] == "emotrace":
                if len(parts) > 1:
                    out.append((node.lineno, parts[1]))
                else:
                    out.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                if parts[0] == "emotrace" and len(parts) > 1:
                    out.append((node.lineno, parts[1]))
    return out


MODULES = sorted(p for p in PACKAGE.rglob("*.py") if p.name != "__init__.py" or p.parent != PACKAGE)


def test_every_top_level_unit_has_a_layer():
    units = {p.name.removesuffix(".py") for p in PACKAGE.iterdir()
             if (p.suffix == ".py" and p.name != "__init__.py") or (p / "__init__.py").is_file()}
    assert units <= set(RANK), f"give these a layer in LAYERS: {sorted(units - set(RANK))}"


def test_imports_only_go_down():
    upward = []
    for path in MODULES:
        unit = _unit(path)
        for line, target in _imports(path):
            if target not in RANK or target == unit:
                continue
            if RANK[target] > RANK[unit] or (unit, target) in SIDEWAYS:
                upward.append(f"{path.relative_to(PACKAGE)}:{line} imports emotrace.{target}")
    assert not upward, "imports that run upward:\n" + "\n".join(upward)


def test_at_most_15_modules_at_the_top():
    top = [p.name for p in PACKAGE.glob("*.py")]
    assert len(top) <= 15, top


@pytest.mark.parametrize("path", MODULES + [PACKAGE / "__init__.py"],
                         ids=lambda p: str(p.relative_to(PACKAGE)))
def test_modules_and_functions_are_small(path):
    source = path.read_text()
    assert source.count("\n") <= 400, f"{path.name}: {source.count(chr(10))} lines (max 400)"
    long = [f"{node.name} ({node.end_lineno - node.lineno + 1} lines)"
            for node in ast.walk(ast.parse(source))
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
            and node.end_lineno - node.lineno + 1 > 80]
    assert not long, f"functions over 80 lines: {long}"
