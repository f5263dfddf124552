"""genconv benchmarks: the standalone matrix (``python -m bench``) and pytest-benchmark tests.

Modules, one job each: ``energy`` (the plain nn.Module energy the PyTorch baselines sample),
``workloads`` (what is timed), ``providers`` (who runs it; a registry), ``timing`` (the harness),
``roofline`` (FLOPs, bytes, measured ceilings), ``check`` (numerical agreement), ``report``
(table, JSON, plot) and ``run`` (the command line).
"""
