#!/usr/bin/env python
"""Mutation check: break the engine on purpose and make sure the tests notice.

Each mutation edits one line of a copy of the working tree (the prior term's sign flipped, the data term
dropped), runs the tests that guard it on the copy, and expects them to fail. A mutation the tests survive is a
hole in the suite; the script then exits 1.

    python scripts/mutation_check.py                       # all mutations, the default guard tests
    python scripts/mutation_check.py --tests tests/test_map_gain.py --only prior-sign
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OBJECTIVE = "flowprior/solver/objective.py"
#: name -> (file, the exact text, its mutant)
MUTATIONS = {
    "prior-sign": (OBJECTIVE, "+ prior_weight * negative_log_prior", "- prior_weight * negative_log_prior"),
    "no-data-term": (OBJECTIVE, "self.weight * self.data_term(x)", "0.0 * self.data_term(x)"),
}
GUARDS = ("tests/test_map_gain.py", "tests/test_solver.py")


def copy_tree(target: Path) -> None:
    """The files git tracks or would track (untracked, not ignored), as they are in the working tree."""
    listed = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT, check=True,
                            capture_output=True).stdout.decode().split("\0")
    for rel in filter(None, listed):
        source = ROOT / rel
        if source.is_file():
            (target / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / rel)


def mutate(tree: Path, name: str) -> None:
    rel, text, mutant = MUTATIONS[name]
    path = tree / rel
    code = path.read_text()
    if code.count(text) != 1:  # the code moved on: the mutation must be updated, not silently skipped
        raise SystemExit(f"{name}: {text!r} occurs {code.count(text)} times in {rel}; update MUTATIONS")
    path.write_text(code.replace(text, mutant))


def run_guards(tree: Path, tests: list[str]) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(tree) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    probe = subprocess.run([sys.executable, "-c", "import flowprior; print(flowprior.__file__)"], cwd=tree, env=env,
                           capture_output=True, text=True, check=True).stdout.strip()
    if not Path(probe).resolve().is_relative_to(tree.resolve()):
        raise SystemExit(f"the mutated copy is not the one imported ({probe}); uninstall other copies of flowprior")
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", *tests], cwd=tree,
                          env=env, capture_output=True, text=True, check=False)  # failing is the point


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=sorted(MUTATIONS), action="append", help="run only these mutations")
    parser.add_argument("--tests", nargs="+", default=list(GUARDS), help="the tests that must fail")
    args = parser.parse_args(argv)
    survivors = []
    for name in args.only or sorted(MUTATIONS):
        with tempfile.TemporaryDirectory(prefix=f"flowprior-mutant-{name}-") as tmp:
            tree = Path(tmp)
            copy_tree(tree)
            mutate(tree, name)
            result = run_guards(tree, args.tests)
        caught = result.returncode != 0
        summary = (result.stdout.strip().splitlines() or ["(no output)"])[-1]
        print(f"{name}: {'caught' if caught else 'SURVIVED'} ({summary})", flush=True)
        if not caught:
            survivors.append(name)
    return 1 if survivors else 0


if __name__ == "__main__":
    sys.exit(main())
