"""Benchmarks against the reference tools (run by ``make bench``; see docs/benchmarks.md)."""
