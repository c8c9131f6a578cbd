"""The scripts behind every number in docs/benchmarks.md.

Run them from the repository root as modules, ``python -m benchmarks.table1 run ...``, so that they import one
another (and ``flowprior``) as packages.
"""
