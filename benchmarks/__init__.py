"""Benchmarks of the harness: each module prints one JSON object; `python -m benchmarks.run` runs them all
and writes benchmarks/RESULTS.md. Benchmarks are measurements, not tests: they assert nothing."""
