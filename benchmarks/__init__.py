"""Benchmarks, run on demand (not by pytest): see benchmarks/README.md."""
