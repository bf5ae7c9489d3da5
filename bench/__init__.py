"""Benchmarks: each module runs on its own (``python -m bench.NAME``); see docs/benchmarks.md."""
