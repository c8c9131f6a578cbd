"""Reading the import graph of the code base with ``ast`` (nothing is imported): every ``import``, ``from ...
import`` (relative too), ``__import__`` and ``importlib.import_module`` with a literal name, wherever it appears,
module- or function-level. A submodule's implicit import of its parent package (Python runs ``pkg/__init__.py``
first) is not an edge: only what a module names counts. Used by tests/test_import_cycles.py and
tests/test_layering.py."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("flowprior", "degradations", "benchmarks")
#: folders whose files were once run as scripts, where a bare ``import peers`` loaded the sibling file
SCRIPT_FOLDERS = ("benchmarks",)


def module_files(root: Path, packages: tuple[str, ...]) -> dict[str, Path]:
    """{dotted module name: file} of every ``.py`` file under the packages."""
    modules = {}
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            modules[".".join(parts)] = path
    return modules


def _named_modules(node: ast.AST, module: str, is_package: bool, modules: dict[str, Path]) -> list[str]:
    """The dotted names an import statement (or ``__import__``/``import_module`` call) loads."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if isinstance(node, ast.ImportFrom):
        if node.level:
            parts = module.split(".")
            base = parts[: len(parts) + is_package - node.level]
            source = ".".join(base + ([node.module] if node.module else []))
        else:
            source = node.module or ""
        # ``from pkg import sub`` loads the submodule; ``from pkg import name`` loads pkg itself
        members = [f"{source}.{alias.name}" for alias in node.names]
        submodules = [m for m in members if m in modules]
        return submodules + ([source] if len(submodules) < len(members) else [])
    if isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
        func = node.func
        called = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""
        if called in ("__import__", "import_module") and isinstance(node.args[0].value, str):
            return [node.args[0].value]
    return []


def _resolve(name: str, importer: str, modules: dict[str, Path]) -> str | None:
    """The scanned module that ``name`` loads: the longest known prefix. In a script folder a bare name that is a
    sibling file (``import peers``) is that sibling; elsewhere imports are absolute (``import io`` is the stdlib)."""
    sibling = f"{importer.rpartition('.')[0]}.{name}"
    if importer.split(".")[0] in SCRIPT_FOLDERS and sibling in modules:
        name = sibling
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


def import_graph(root: Path = ROOT, packages: tuple[str, ...] = PACKAGES) -> dict[str, set[str]]:
    """{module: the scanned modules it imports anywhere in its body}."""
    modules = module_files(root, packages)
    graph = {}
    for module, path in modules.items():
        targets = set()
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            for name in _named_modules(node, module, path.name == "__init__.py", modules):
                target = _resolve(name, module, modules)
                if target and target != module:
                    targets.add(target)
        graph[module] = targets
    return graph


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return cycles
