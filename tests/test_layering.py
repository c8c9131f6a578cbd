"""The layers: ``degradations`` is a leaf package (no module in it may import ``flowprior``), and every import
follows the layer table of docs/ARCHITECTURE.md, whose names must all exist."""

from __future__ import annotations

import ast
import importlib
import re
from pathlib import Path

from tests.import_scan import import_graph

PACKAGE = Path(__file__).resolve().parents[1] / "degradations"


def _imports(path: Path) -> list[str]:
    names = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.append(node.module)
        elif isinstance(node, ast.Call) and getattr(node.func, "id", None) == "__import__" and node.args:
            arg = node.args[0]
            if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                names.append(arg.value)
    return names


def test_degradations_never_imports_flowprior():
    files = sorted(PACKAGE.rglob("*.py"))
    assert len(files) >= 15, f"expected the whole package under {PACKAGE}, found {len(files)} files"
    offenders = [
        f"{path.relative_to(PACKAGE.parent)}: {name}"
        for path in files
        for name in _imports(path)
        if name == "flowprior" or name.startswith("flowprior.")
    ]
    assert not offenders, "degradations must not import flowprior:\n" + "\n".join(offenders)


def test_the_scan_sees_imports():
    # Guard against a scanner that silently finds nothing.
    assert "torch" in _imports(PACKAGE / "base.py")
    assert "degradations.base" in _imports(PACKAGE / "registry.py")


# ------------------------------------------------------------------------------ the layer rule of the architecture

ARCHITECTURE = Path(__file__).resolve().parents[1] / "docs" / "ARCHITECTURE.md"
ROOT_PACKAGE = "flowprior"  # __version__ and the flowprior.restore shortcut: outside the layers (docs/ARCHITECTURE.md)


def _blocks(text: str) -> list[list[str]]:
    parts = text.split("```")
    return [part.strip("\n").splitlines() for part in parts[1::2]]


def layer_table(text: str) -> list[tuple[str, list[str]]]:
    """[(layer, module prefixes)] bottom first, from the block of docs/ARCHITECTURE.md that starts ``layer``
    (listed top first; an indented line continues the layer above it)."""
    block = next(b for b in _blocks(text) if b and b[0].startswith("layer "))
    layers: list[tuple[str, list[str]]] = []
    for line in block[1:]:
        if line.startswith(" "):
            layers[-1][1].extend(line.split())
        else:
            name, *modules = line.split()
            layers.append((name, modules))
    return layers[::-1]


def _layer_of(module: str, prefixes: dict[str, int]) -> int | None:
    name = module
    while name and name not in prefixes:
        name = name.rpartition(".")[0]
    return prefixes.get(name)


def test_imports_never_point_up_a_layer():
    layers = layer_table(ARCHITECTURE.read_text())
    prefixes = {module: rank for rank, (_, modules) in enumerate(layers) for module in modules}
    graph = import_graph(packages=("flowprior", "degradations"))
    assert len(layers) >= 5 and len(graph) >= 100
    assert not [p for p in prefixes if p not in graph], "docs/ARCHITECTURE.md names modules that do not exist"
    placed = {m: _layer_of(m, prefixes) for m in graph if m != ROOT_PACKAGE}
    unplaced = sorted(m for m, rank in placed.items() if rank is None)
    assert not unplaced, f"modules no layer of docs/ARCHITECTURE.md holds: {unplaced}"
    upward = [
        f"{m} ({layers[placed[m]][0]}) imports {t} ({layers[placed[t]][0]})"
        for m in sorted(placed)
        for t in sorted(graph[m])
        if t != ROOT_PACKAGE and placed[t] > placed[m]
    ]
    assert not upward, "imports that point up a layer (docs/ARCHITECTURE.md):\n" + "\n".join(upward)


def test_the_layer_check_sees_an_upward_import():
    # Guard against a table or a scan that finds nothing to check.
    layers = layer_table("```\nlayer  modules\ntop    a.b\n       a.c\nbottom a\n```")
    assert layers == [("bottom", ["a"]), ("top", ["a.b", "a.c"])]
    prefixes = {"a": 0, "a.b": 1}
    assert _layer_of("a.b.deep", prefixes) == 1 and _layer_of("a.other", prefixes) == 0


def _resolves(dotted: str) -> bool:
    """Whether ``flowprior.<dotted>`` (or ``<dotted>`` itself) is a module, or an attribute of one."""
    for name in (f"flowprior.{dotted}", dotted):
        parts = name.split(".")
        for cut in range(len(parts), 0, -1):
            try:
                target = importlib.import_module(".".join(parts[:cut]))
            except ImportError:
                continue
            try:
                for attribute in parts[cut:]:
                    target = getattr(target, attribute)
            except AttributeError:
                break
            return True
    return False


def test_every_name_in_the_architecture_page_exists():
    text = ARCHITECTURE.read_text()
    diagram = next(b for b in _blocks(text) if b and b[0] == "IN file")
    names = {w for line in diagram for w in line.split() if re.fullmatch(r"[a-z_]+(\.[A-Za-z_]+)+,?", w)}
    names = {w.rstrip(",") for w in names} | set(re.findall(r"`([a-z_]+(?:\.[A-Za-z_]+)+)`", text))
    assert len(names) >= 20
    missing = sorted(n for n in names if not _resolves(n))
    assert not missing, f"docs/ARCHITECTURE.md names what the code no longer has: {missing}"


# ------------------------------------------------------------------------- the stages the page names are the code's

STAGE_RUNNERS = {"flowprior/pipeline/run.py": "run_restore", "flowprior/pipeline/rows.py": "restore_rows"}
NOT_STAGES = ("pipeline.recipe",)  # the recipe and its prior are what the stages work with, not a stage


def _stages_called(path: Path, function: str) -> set[str]:
    """``module.name`` of every function from ``flowprior.pipeline`` (but :data:`NOT_STAGES`) that ``function`` in
    ``path`` calls by name."""
    tree = ast.parse(path.read_text(), filename=str(path))
    imported = {alias.asname or alias.name: f"{node.module.removeprefix('flowprior.')}.{alias.name}"
                for node in tree.body if isinstance(node, ast.ImportFrom) and node.module
                and node.module.startswith("flowprior.pipeline.") and node.module.removeprefix("flowprior.") not in NOT_STAGES
                for alias in node.names}
    body = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == function)
    return {imported[n.func.id] for n in ast.walk(body)
            if isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id in imported}


def test_the_diagram_names_every_stage_the_pipeline_runs():
    diagram = "\n".join(next(b for b in _blocks(ARCHITECTURE.read_text()) if b and b[0] == "IN file"))
    root = ARCHITECTURE.parents[1]
    stages = {name for path, function in STAGE_RUNNERS.items() for name in _stages_called(root / path, function)}
    assert len(stages) >= 10, f"expected the stage functions of the pipeline, found {sorted(stages)}"
    missing = sorted(name for name in stages if name not in diagram.split())
    assert not missing, f"stages the pipeline runs that the diagram of docs/ARCHITECTURE.md does not name: {missing}"
