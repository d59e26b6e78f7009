"""Benchmarks for genre-pi: `python -m bench` (see bench/RESULTS.md). Not part of the test suite."""
