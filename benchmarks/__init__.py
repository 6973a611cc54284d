"""Benchmarks: run one with `python -m benchmarks.bench_<name>`."""
