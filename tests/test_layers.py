"""The layer rule, checked on the source: a module imports from its own floor or below, and no
modules import each other in a circle (docs/architecture.md draws the floors).

Imports are read with `ast`, not by importing, so a lazy import inside a function counts as much
as one at the top. For the floors every import counts, also those only for type checking (a type
from a floor above is still a dependency on it); a circle counts only imports that run (a
component may name the type of the object that owns it)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"

#: Bottom floor first. A module's floor is that of the longest name here that it starts with.
#: The offline metrics (split, metrics, evaluate) sit with the models, which tune on validation
#: splits with them; the rest of evaluation replays the service and is above the engine.
LAYERS: list[tuple[str, ...]] = [
    ("pulserec", "pulserec.events", "pulserec.records", "pulserec.ids", "pulserec.urls", "pulserec.config",
     "pulserec.decay", "pulserec.validation", "pulserec.event_weights"),
    ("pulserec.store",),
    ("pulserec.profiles",),
    ("pulserec.online",),
    ("pulserec.models", "pulserec.evaluation.split", "pulserec.evaluation.metrics", "pulserec.evaluation.evaluate"),
    ("pulserec.recommend", "pulserec.experiments"),
    ("pulserec.engine",),
    ("pulserec.replica", "pulserec.ingest"),
    ("pulserec.evaluation", "pulserec.distributed"),
    ("pulserec.runtime",),
    ("pulserec.serving", "pulserec.client", "pulserec.client_results"),
    ("pulserec.cli",),
]


def module_name(path: Path, src: Path) -> str:
    parts = path.relative_to(src).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


#: The fields of a statement that hold statements (an import is a statement, so it can sit only
#: in these; expressions never hold one, and walking them was ~2/3 of the check's time).
_BODIES = ("body", "orelse", "finalbody", "handlers", "cases")


def _statement_lists(node: ast.stmt) -> list[list[ast.stmt]]:
    """The statement lists directly inside `node` (a def's body, an if's branches, a try's
    handlers' bodies, a match's cases' bodies...)."""
    lists = []
    for name in _BODIES:
        value = getattr(node, name, None)
        if not value:
            continue
        if isinstance(value[0], (ast.ExceptHandler, ast.match_case)):
            lists.extend(part.body for part in value)
        else:
            lists.append(value)
    return lists


def imports_of(path: Path, module: str, known: set[str]) -> list[tuple[str, bool]]:
    """(imported module, runs at import or call time) for every import in the file; `from a import
    b` names `a.b` where that is a module."""
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    found: list[tuple[str, bool]] = []

    def visit(body: list[ast.stmt], runs: bool) -> None:
        for node in body:
            if isinstance(node, ast.If) and _is_type_checking(node):
                visit(node.body, False)
                visit(node.orelse, runs)
            elif isinstance(node, ast.Import):
                found.extend((alias.name, runs) for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    base = ".".join(package[: len(package) - node.level + 1] + ([node.module] if node.module else []))
                found.append((base, runs))
                found.extend((f"{base}.{alias.name}", runs) for alias in node.names if f"{base}.{alias.name}" in known)
            else:
                for inner in _statement_lists(node):
                    visit(inner, runs)

    visit(ast.parse(path.read_text(), str(path)).body, True)
    return [(name, runs) for name, runs in found if name in known and name != module]


def import_graph(src: Path, package: str) -> dict[str, list[tuple[str, bool]]]:
    files = {module_name(p, src): p for p in sorted((src / package).rglob("*.py"))}
    known = set(files)
    return {module: imports_of(path, module, known) for module, path in files.items()}


def floor_of(module: str, layers: list[tuple[str, ...]]) -> int | None:
    best: tuple[int, int] | None = None  # (length of the matching name, floor)
    for floor, names in enumerate(layers):
        for name in names:
            if (module == name or module.startswith(name + ".")) and (best is None or len(name) > best[0]):
                best = (len(name), floor)
    return best[1] if best else None


def upward_imports(graph: dict[str, list[tuple[str, bool]]], layers: list[tuple[str, ...]]) -> list[str]:
    problems = [f"{m} has no floor in LAYERS" for m in graph if floor_of(m, layers) is None]
    for module, imports in graph.items():
        floor = floor_of(module, layers)
        for target, _ in imports:
            above = floor_of(target, layers)
            if floor is not None and above is not None and above > floor:
                problems.append(f"{module} (floor {floor}) imports {target} (floor {above})")
    return problems


def circles(graph: dict[str, list[tuple[str, bool]]]) -> list[list[str]]:
    """Strongly connected groups of more than one module over the imports that run (Tarjan)."""
    edges = {m: sorted({t for t, runs in imports if runs}) for m, imports in graph.items()}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def connect(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in edges[v]:
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for v in edges:
        if v not in index:
            connect(v)
    return found


@pytest.fixture(scope="module")
def graph() -> dict[str, list[tuple[str, bool]]]:
    """pulserec's import graph, read once for the three checks below (parsing every file is the
    cost; the checks only read it)."""
    return import_graph(SRC, "pulserec")


def test_every_import_points_down(graph):
    assert upward_imports(graph, LAYERS) == []


def test_no_import_circles(graph):
    assert circles(graph) == []


def test_nothing_but_the_cli_and_serving_imports_serving(graph):
    outside = [(m, t) for m, imports in graph.items() for t, _ in imports
               if t.startswith("pulserec.serving") and not m.startswith(("pulserec.serving", "pulserec.cli"))]
    assert outside == []


# -- the checks themselves catch what they are for: a tiny package written to tmp_path --------
def _package(tmp_path: Path, files: dict[str, str]) -> dict[str, list[tuple[str, bool]]]:
    for name, text in files.items():
        path = tmp_path / "pkg" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return import_graph(tmp_path, "pkg")


TOY_LAYERS = [("pkg", "pkg.low"), ("pkg.high",)]


@pytest.mark.parametrize("files, upward, circle", [
    ({"__init__.py": "", "low.py": "", "high.py": "from pkg import low\n"}, [], []),
    ({"__init__.py": "", "low.py": "def f():\n    from pkg.high import g\n", "high.py": ""},
     ["pkg.low (floor 0) imports pkg.high (floor 1)"], []),
    ({"__init__.py": "", "low.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg import high\n",
      "high.py": "from pkg import low\n"}, ["pkg.low (floor 0) imports pkg.high (floor 1)"], []),
    ({"__init__.py": "", "low.py": "from . import other\n", "other.py": "from pkg.low import x\n", "high.py": ""},
     [], [["pkg.low", "pkg.other"]]),
    # imports nested in statements of every kind are found (the walk visits statement lists only)
    ({"__init__.py": "", "high.py": "",
      "low.py": "class C:\n    def f(self):\n        try:\n            pass\n        except ImportError:\n"
                "            with open('x'):\n                for _ in ():\n                    pass\n"
                "                else:\n                    match 1:\n                        case 1:\n"
                "                            import pkg.high\n"},
     ["pkg.low (floor 0) imports pkg.high (floor 1)"], []),
])
def test_the_checks_find_upward_imports_and_circles(tmp_path, files, upward, circle):
    graph = _package(tmp_path, files)
    assert upward_imports(graph, TOY_LAYERS) == upward
    assert circles(graph) == circle


def test_the_architecture_names_every_module():
    """docs/architecture.md's "Where things are" names each module (a new one is added there,
    on its floor, in the same change)."""
    import re

    doc = (SRC.parent / "docs" / "architecture.md").read_text()
    section = doc.split("## Where things are", 1)[1].split("\n## ", 1)[0]
    named = set(re.findall(r"`([a-z_0-9]+)(?:\.py)?`", section))
    missing = sorted(str(p.relative_to(SRC)) for p in (SRC / "pulserec").rglob("*.py")
                     if p.stem != "__init__" and p.stem not in named)
    assert missing == [], f"add these to docs/architecture.md, 'Where things are': {missing}"
