"""Performance benchmarks: one module per benchmark, each `python -m bench.perf.<name> [--quick]`."""
