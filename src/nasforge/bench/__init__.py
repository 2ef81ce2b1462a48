"""Tabular benchmarks (NAS-Bench-201) and the multi-seed benchmark runner."""
