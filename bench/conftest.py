"""Benchmarks: `pytest bench --benchmark-only` (pytest-benchmark)."""
