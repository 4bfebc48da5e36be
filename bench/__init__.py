"""Benchmarks that print figures (never timing asserts in tests). Run them as `python -m bench.<name>`."""
