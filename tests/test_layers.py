"""The house: no import circles, and no import from a lower layer to a higher one (function-local imports count).

The layers, lowest first, follow ``shared/DESIGN.md``: foundations, the concepts, the analytic layer, attacks and
models, verification, Monte Carlo and training, what is built on them, and the command line on top. A module may
import only from its own layer or below. A new module must be placed here: an unplaced one fails the test.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "toyrobust"

LAYERS: list[tuple[str, ...]] = [
    ("registry", "constraints", "blocks", "rng", "_rng_triton", "clibase", "display"),
    ("threats", "classifiers", "definitions", "distributions", "datasets"),
    ("risks", "bounds", "hardpoints", "testing"),
    ("attacks", "models"),
    ("verification",),
    ("montecarlo", "training", "netcache", "clispecs"),
    ("transfer", "dynamics", "crosscheck", "crosspool", "defenses", "sweeps"),
    ("plotting", "reproduce", "epscommand", "cli", "launcher", "__main__", "__init__"),
]
LAYER = {name: i for i, names in enumerate(LAYERS) for name in names}


def _modules() -> dict[str, Path]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__" and len(parts) > 1:
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def _imports(path: Path, name: str, known: set[str]) -> set[str]:
    """The package's modules imported anywhere in ``path`` (a relative import resolved against ``name``)."""
    is_pkg = path.name == "__init__.py"
    base = name if is_pkg else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                anchor = base.split(".")[: len(base.split(".")) - (node.level - 1)]
                mod = ".".join(anchor + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            targets = [mod] + [f"{mod}.{a.name}" for a in node.names]
        else:
            continue
        for t in targets:
            while t and t not in known:
                t = t.rpartition(".")[0]
            if t and t != name and t != "toyrobust":  # the package's lazy __init__ imports nothing
                found.add(t)
    return found


def _top(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


MODULES = _modules()
GRAPH = {m: _imports(p, m, set(MODULES)) for m, p in MODULES.items()}


@pytest.mark.parametrize("module", sorted(MODULES))
def test_module_has_a_layer_and_imports_nothing_above_it(module):
    top = _top(module)
    assert top in LAYER, f"{module} is in no layer: place {top!r} in tests/test_layers.py's LAYERS"
    upward = sorted(d for d in GRAPH[module] if LAYER.get(_top(d), -1) > LAYER[top])
    assert not upward, f"{module} (layer {LAYER[top]}) imports from higher layers: {upward}"


def test_no_import_circles():
    """Tarjan's strongly connected components of the module graph: every one must be a single module."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    circles: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in GRAPH[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                circles.append(sorted(comp))

    for v in sorted(GRAPH):
        if v not in index:
            visit(v)
    assert not circles, f"import circles: {circles}"


def test_the_check_is_not_vacuous():
    assert len(MODULES) > 60 and sum(len(d) for d in GRAPH.values()) > 200
    assert "toyrobust.attacks.base" in GRAPH["toyrobust.montecarlo"] or "toyrobust.attacks" in GRAPH[
        "toyrobust.montecarlo"]
