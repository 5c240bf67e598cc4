"""Benchmarks: `make bench` runs them; each prints a table with ratios against a baseline."""
