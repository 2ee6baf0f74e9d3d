"""Benchmarks of the feature engine (``python -m benchmarks.run``); not part of the package."""
