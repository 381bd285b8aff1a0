"""Benchmarks: each ``bench_*.py`` prints figures; none passes or fails."""
