"""What every performance benchmark prints: titled tables, budgets met or not, and notes; the same
figures as JSON. Plus the few measuring helpers they share (medians, a child's peak memory)."""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
Cell = str | int | float | None


class Unavailable(Exception):
    """A benchmark (or one side of it) cannot run here; the message says why, loudly."""


@dataclass
class Table:
    title: str
    columns: list[str]
    rows: list[list[Cell]] = field(default_factory=list)

    def add(self, *cells: Cell) -> None:
        if len(cells) != len(self.columns):
            raise ValueError(f"{self.title}: {len(cells)} cells for {len(self.columns)} columns")
        self.rows.append(list(cells))

    def render(self) -> str:
        text = [list(self.columns)] + [[_cell(c) for c in row] for row in self.rows]
        widths = [max(len(row[i]) for row in text) for i in range(len(self.columns))]
        lines = [f"## {self.title}"]
        for n, row in enumerate(text):
            lines.append("| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " |")
            if n == 0:
                lines.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
        return "\n".join(lines)


@dataclass
class Budget:
    name: str
    limit: str
    observed: str
    met: bool | None  # None: could not be measured here

    @property
    def verdict(self) -> str:
        return {True: "MET", False: "NOT MET", None: "NOT MEASURED"}[self.met]


@dataclass
class Report:
    name: str
    quick: bool
    tables: list[Table] = field(default_factory=list)
    budgets: list[Budget] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # loud: what could not run, and why

    def table(self, title: str, *columns: str) -> Table:
        self.tables.append(Table(title, list(columns)))
        return self.tables[-1]

    def render(self) -> str:
        mode = "quick" if self.quick else "full"
        head = f"# {self.name} ({mode}, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {platform.node()}, "
        head += f"{os.cpu_count()} cores)"
        parts = [head]
        parts += [f"!!! {p}" for p in self.problems]
        parts += [t.render() for t in self.tables]
        if self.budgets:
            budgets = Table("Budgets", ["budget", "limit", "observed", "verdict"])
            for b in self.budgets:
                budgets.add(b.name, b.limit, b.observed, b.verdict)
            parts.append(budgets.render())
        parts += [f"- {n}" for n in self.notes]
        return "\n\n".join(parts)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "quick": self.quick,
            "at": datetime.now(UTC).isoformat(timespec="seconds"),
            "tables": [asdict(t) for t in self.tables],
            "budgets": [{**asdict(b), "verdict": b.verdict} for b in self.budgets],
            "notes": self.notes,
            "problems": self.problems,
        }


def _cell(value: Cell) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.3g}" if abs(value) < 100 else f"{value:,.0f}"
    if isinstance(value, int):
        return f"{value:,}"
    return value


def spread(values: Sequence[float]) -> str:
    """median (min-max, n) of repeated measurements: the honest way to show noisy timings."""
    if not values:
        return "-"
    median = statistics.median(values)
    return f"{median:.3g} ({min(values):.3g}-{max(values):.3g}, n={len(values)})"


def noise(values: Sequence[float]) -> float:
    """(max - min) / median: how far apart repeats of the same measurement landed."""
    median = statistics.median(values)
    return (max(values) - min(values)) / median if median else 0.0


@dataclass
class Measured:
    """One child process: its wall time, its peak resident memory and what it printed."""

    wall_s: float
    peak_rss_mb: float
    returncode: int
    stdout: str
    stderr: str

    def check(self, what: str) -> Measured:
        if self.returncode != 0:
            tail = (self.stderr or self.stdout).strip().splitlines()[-15:]
            raise RuntimeError(f"{what} exited with {self.returncode}:\n" + "\n".join(tail))
        return self


def run_measured(
    command: Sequence[str], *, env: Mapping[str, str] | None = None, cwd: Path | None = None
) -> Measured:
    """Run `command` to completion; its peak RSS comes from wait4 (the child and its waited-for
    children), so figures of different children never mix."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        started = time.perf_counter()
        child = subprocess.Popen(list(command), stdout=out, stderr=err, env=dict(env or os.environ), cwd=cwd)
        _, status, usage = os.wait4(child.pid, 0)
        wall = time.perf_counter() - started
        child.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        return Measured(wall, usage.ru_maxrss / 1024, child.returncode, out.read(), err.read())


def main(run: Callable[..., Report], doc: str | None, argv: Sequence[str] | None = None) -> int:
    """The command line every perf benchmark shares: [--quick] [--json PATH]."""
    lines = (doc or "").strip().splitlines()
    parser = argparse.ArgumentParser(description=lines[0] if lines else None)
    parser.add_argument("--quick", action="store_true", help="small sizes, few repeats (CI smoke test)")
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write the figures as JSON")
    args = parser.parse_args(argv)
    report = run(quick=args.quick)
    print(report.render(), flush=True)
    if args.json is not None:
        args.json.write_text(json.dumps(report.to_json(), indent=2) + "\n")
    return 0
