"""Run every benchmark, each in its own process, printing its tables; a summary at the end.

.venv/bin/python -m bench [--quick] [--only NAME ...]

A benchmark whose module is missing or that fails is reported (loudly, with the end of its output)
and the others still run; the exit status is 1 if any failed.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from bench.perf.report import REPO, Table


@dataclass(frozen=True)
class Benchmark:
    name: str
    module: str
    perf: bool  # one of bench.perf (takes --json PATH and reports budgets) or another engineer's


BENCHMARKS = (
    Benchmark("cold-start", "bench.perf.cold_start", True),
    Benchmark("cost", "bench.perf.cost_per_check", True),
    Benchmark("cost-model", "bench.perf.cost_model", True),
    Benchmark("scale", "bench.perf.scale", True),
    Benchmark("soda", "bench.perf.soda", True),
    Benchmark("demo", "bench.perf.demo", True),
    Benchmark("detection", "bench.detection", False),
    Benchmark("report", "bench.report_html", False),
)


@dataclass
class Outcome:
    name: str
    status: str
    seconds: float
    budgets: str


def _budgets(path: Path) -> str:
    try:
        figures = json.loads(path.read_text())
    except (OSError, ValueError):
        return "-"
    verdicts = [b["verdict"] for b in figures["budgets"]]
    summary = ", ".join(
        f"{verdicts.count(v)} {v}" for v in ("MET", "NOT MET", "NOT MEASURED") if v in verdicts
    )
    problems = len(figures["problems"])
    return summary + (f"; {problems} problem(s)" if problems else "") or "-"


def run_one(benchmark: Benchmark, quick: bool) -> Outcome:
    print(
        f"\n{'=' * 30} {benchmark.name}: python -m {benchmark.module}{' --quick' if quick else ''}",
        flush=True,
    )
    if importlib.util.find_spec(benchmark.module) is None:
        print(f"!!! {benchmark.name}: module {benchmark.module} is missing; skipped", flush=True)
        return Outcome(benchmark.name, "MISSING", 0.0, "-")
    with tempfile.TemporaryDirectory() as tmp:
        figures = Path(tmp) / "figures.json"
        command = [sys.executable, "-m", benchmark.module, *(["--quick"] if quick else [])]
        if benchmark.perf:
            command += ["--json", str(figures)]
        started = time.perf_counter()
        done = subprocess.run(command, cwd=REPO, check=False)
        seconds = time.perf_counter() - started
        budgets = _budgets(figures) if benchmark.perf else "-"
    if done.returncode != 0:
        print(f"!!! {benchmark.name} FAILED (exit status {done.returncode}); its output is above", flush=True)
        return Outcome(benchmark.name, f"FAILED ({done.returncode})", seconds, budgets)
    return Outcome(benchmark.name, "ok", seconds, budgets)


def main(argv: Sequence[str] | None = None) -> int:
    names = [b.name for b in BENCHMARKS]
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="every benchmark in its quick (smoke) mode")
    parser.add_argument("--only", action="append", choices=names, metavar="NAME", help=f"one of {names}")
    args = parser.parse_args(argv)
    chosen = [b for b in BENCHMARKS if not args.only or b.name in args.only]
    outcomes = [run_one(b, args.quick) for b in chosen]
    summary = Table("Benchmarks run", ["benchmark", "status", "seconds", "budgets"])
    for o in outcomes:
        summary.add(o.name, o.status, round(o.seconds, 1), o.budgets)
    print("\n" + summary.render(), flush=True)
    return 0 if all(o.status == "ok" for o in outcomes) else 1


if __name__ == "__main__":
    raise SystemExit(main())
