"""How big `driftguard report` files are and how long they take to build.

.venv/bin/python -m bench.report_html [--quick]

- demo: the demo's state (`driftguard demo`), then `driftguard report` on it, as `make demo` does;
- 100 checks x 8 weeks hourly, and 500 tables (one hourly volume check each, 8 weeks shown): SQLite
  states made here, each series with 12 weeks of points (4 weeks of training history before the
  8 weeks shown), a daily and weekly rhythm, a few incidents; every tenth check FIRING.
Build time is the report's own (read the state, learn the bands, write the HTML), in this process,
median of the repeats; the size is the HTML file's. --quick: one repeat, 20 and 100 tables.
"""

from __future__ import annotations

import argparse
import math
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

from driftguard.config import load_config
from driftguard.model import (
    AlertState,
    AlertStateName,
    CheckKey,
    CheckKind,
    Explanation,
    Finding,
    FindingStatus,
    MetricPoint,
    PointLabel,
    RunCommit,
    RunRecord,
    RunStatus,
)
from driftguard.report import build_report, write_report
from driftguard.store import open_store

NOW = datetime(2026, 12, 1, 11, tzinfo=UTC)
SHOWN = timedelta(weeks=8)
HISTORY = timedelta(weeks=12)


def make_state(path: Path, tables: int, seed: int = 5) -> None:
    """`tables` hourly volume series in sources of 10 tables, with states and a few incidents."""
    rng = random.Random(seed)
    store = open_store(str(path))
    try:
        hours = int(HISTORY / timedelta(hours=1))
        start = NOW - HISTORY
        for first in range(0, tables, 10):
            source = f"src{first // 10:03d}"
            points: list[MetricPoint] = []
            states: list[AlertState] = []
            for i in range(first, min(first + 10, tables)):
                key = CheckKey(
                    source=source, table=f"t{i:04d}", check=CheckKind.VOLUME, metric="rows_per_period"
                )
                level = rng.uniform(50, 5000)
                broken = i % 10 == 3
                for h in range(hours):
                    t = start + timedelta(hours=h)
                    daily = 1 + 0.5 * math.sin(2 * math.pi * (t.hour - 9) / 24)
                    value = max(
                        0.0, rng.gauss(level * daily * (0.7 if t.weekday() >= 5 else 1), level * 0.05)
                    )
                    label = PointLabel.NONE
                    if broken and h >= hours - 3:
                        value, label = level * 0.05, PointLabel.ANOMALY
                    points.append(MetricPoint(key=key, ts=t, value=round(value), label=label))
                state = AlertStateName.FIRING if broken else AlertStateName.OK
                finding = Finding(
                    key=key,
                    ts=NOW,
                    status=FindingStatus.ANOMALY if broken else FindingStatus.OK,
                    explanation=Explanation(
                        reason=f"{key.table} received {points[-1].value:.0f} rows in the last hour",
                        method="seasonal median + MAD",
                        training_start=NOW - timedelta(days=56),
                        training_end=NOW - timedelta(hours=1),
                        training_points=1343,
                    ),
                )
                states.append(
                    AlertState(key=key, state=state, since=NOW - timedelta(hours=2), last_finding=finding)
                )
            run = RunRecord(
                source=source, scheduled_time=NOW, started_at=NOW, finished_at=NOW, status=RunStatus.OK
            )
            store.commit_run(
                RunCommit(
                    run=run,
                    snapshot=None,
                    points=points,
                    states=states,
                    expected_versions={s.fingerprint: 0 for s in states},
                )
            )
    finally:
        store.close()


def build(state: Path, out: Path, config_path: Path | None = None) -> tuple[float, int, int]:
    """Seconds to build and write the report, its size in bytes, and its number of charts."""
    config = load_config(config_path) if config_path else None
    started = time.perf_counter()
    store = open_store(str(state))
    try:
        report = build_report(store, now=NOW + timedelta(minutes=5), since=NOW - SHOWN, config=config)
        size = write_report(report, out)
    finally:
        store.close()
    return time.perf_counter() - started, size, sum(c.chart is not None for c in report.checks)


def _demo(tmp: Path) -> tuple[Path, Path]:
    directory = tmp / "demo"
    driftguard = Path(sys.executable).with_name("driftguard")
    subprocess.run(
        [str(driftguard), "demo", "--dir", str(directory), "--json"], check=True, capture_output=True
    )
    return directory / "state.db", directory / "driftguard-demo.yaml"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.report_html", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one repeat; 20 and 100 tables")
    args = parser.parse_args(argv)
    repeats = 1 if args.quick else 3
    rows: list[tuple[str, int, str, str, float, int]] = []
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        state, config = _demo(tmp)
        cases: list[tuple[str, Path, Path | None]] = [("demo (driftguard demo)", state, config)]
        for tables in (20, 100) if args.quick else (100, 500):
            path = tmp / f"state-{tables}.db"
            if not path.exists():
                started = time.perf_counter()
                make_state(path, tables)
                print(f"made a state of {tables} tables in {time.perf_counter() - started:.1f}s", flush=True)
            cases.append((f"{tables} checks x 8 weeks hourly", path, None))
        for name, state_path, config_path in cases:
            runs = [build(state_path, tmp / "report.html", config_path) for _ in range(repeats)]
            seconds = [r[0] for r in runs]
            rows.append(
                (
                    name,
                    runs[0][2],
                    f"{statistics.median(seconds):.2f}",
                    f"{min(seconds):.2f}-{max(seconds):.2f}",
                    runs[0][1] / 1e6,
                    repeats,
                )
            )
    print("\nReport build time and size (in process; median, min-max of n repeats)")
    print(f"{'case':32} {'charts':>6} {'build s':>8} {'min-max':>11} {'size MB':>8} {'n':>2}")
    for name, charts, median, spread, mb, n in rows:
        print(f"{name:32} {charts:>6} {median:>8} {spread:>11} {mb:>8.2f} {n:>2}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
