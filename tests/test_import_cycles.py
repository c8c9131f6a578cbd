"""No import cycles in ``flowprior``, ``degradations`` or ``benchmarks``, function-level imports included.

A cycle hidden behind an import inside a function still ties two modules together: neither can be read, tested
or moved without the other, and the import order decides whether it works. The graph comes from
:mod:`tests.import_scan` (``ast``, every kind of import, wherever it appears).
"""

from __future__ import annotations

from tests.import_scan import find_cycles, import_graph


def describe(cycle: list[str], graph: dict[str, set[str]]) -> str:
    members = set(cycle)
    return "\n".join(f"  {m} -> {', '.join(sorted(graph[m] & members))}" for m in cycle)


def test_no_import_cycles():
    graph = import_graph()
    assert len(graph) >= 100, f"expected the whole code base, scanned {len(graph)} modules"
    cycles = find_cycles(graph)
    assert not cycles, "import cycles (module -> the cycle members it imports):\n" + "\n\n".join(
        describe(c, graph) for c in cycles)


def test_the_scan_finds_function_level_relative_and_script_style_cycles(tmp_path):
    # Guard against a scanner that silently finds nothing: each kind of import closes one cycle here.
    pkg = tmp_path / "flowprior"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("def f():\n    from flowprior.b import g\n")
    (pkg / "b.py").write_text("from . import a\n")
    (pkg / "sub" / "__init__.py").write_text("from flowprior.sub.c import x\n")
    (pkg / "sub" / "c.py").write_text("import importlib\nimportlib.import_module('flowprior.sub')\n")
    (pkg / "io.py").write_text("")
    (pkg / "leaf.py").write_text("import io\nfrom flowprior import a\n")
    scripts = tmp_path / "benchmarks"
    scripts.mkdir()
    (scripts / "d.py").write_text("import e\n")
    (scripts / "e.py").write_text("def h():\n    import d\n")
    graph = import_graph(tmp_path, ("flowprior", "benchmarks"))
    assert find_cycles(graph) == [["benchmarks.d", "benchmarks.e"], ["flowprior.a", "flowprior.b"],
                                  ["flowprior.sub", "flowprior.sub.c"]]
    # ``from pkg import module`` is no edge to pkg, and ``import io`` is the standard library's
    assert graph["flowprior.leaf"] == {"flowprior.a"}
