"""Benchmarks against baselines, in the same run (``python -m bench --help``)."""
