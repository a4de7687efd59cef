"""The graphnursery benchmark harness: ``python -m benchmarks --help``."""
