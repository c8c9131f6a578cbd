"""``degradations`` is a leaf package: no module in it may import ``flowprior``."""

from __future__ import annotations

import ast
from pathlib import Path

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
