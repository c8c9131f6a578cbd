"""Small rooms: no function in ``flowprior`` or ``degradations`` longer than 80 lines, no file longer than 400.

A function that long holds several steps that want names of their own, and a file that long several concepts
(issue 18). Counted with ``ast`` from a definition's first line (its decorators included) to its last, nested
functions and methods each on their own as well as inside the function that holds them.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("flowprior", "degradations")
MAX_FUNCTION_LINES = 80
MAX_FILE_LINES = 400


def _files() -> list[Path]:
    return sorted(path for package in PACKAGES for path in (ROOT / package).rglob("*.py"))


def long_functions(path: Path, limit: int = MAX_FUNCTION_LINES) -> list[tuple[str, int]]:
    """(qualified name, lines) of every function or method in ``path`` longer than ``limit`` lines."""
    found = []

    def visit(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                name = f"{prefix}{child.name}"
                if not isinstance(child, ast.ClassDef):
                    first = min([child.lineno] + [d.lineno for d in child.decorator_list])
                    if child.end_lineno - first + 1 > limit:
                        found.append((name, child.end_lineno - first + 1))
                visit(child, f"{name}.")
            else:
                visit(child, prefix)

    visit(ast.parse(path.read_text(), filename=str(path)), "")
    return found


def test_no_function_is_longer_than_80_lines():
    files = _files()
    assert len(files) >= 100, f"expected the whole code base, found {len(files)} files"
    offenders = [f"{path.relative_to(ROOT)}: {name} ({lines} lines)"
                 for path in files for name, lines in long_functions(path)]
    assert not offenders, f"functions over {MAX_FUNCTION_LINES} lines:\n" + "\n".join(offenders)


def test_no_file_is_longer_than_400_lines():
    offenders = [f"{path.relative_to(ROOT)}: {count} lines" for path in _files()
                 if (count := len(path.read_text().splitlines())) > MAX_FILE_LINES]
    assert not offenders, f"files over {MAX_FILE_LINES} lines:\n" + "\n".join(offenders)


def test_the_counter_sees_long_methods_and_nested_functions(tmp_path):
    # Guard against a counter that silently finds nothing.
    five = "        x = 1\n" * 5
    source = ("class A:\n    @staticmethod\n    def f():\n" + five + "        def g():\n"
              + five.replace("    x", "        x") * 2 + five)
    (tmp_path / "m.py").write_text(source)
    assert long_functions(tmp_path / "m.py", limit=4) == [("A.f", 23), ("A.f.g", 11)]
    assert long_functions(tmp_path / "m.py", limit=23) == []
