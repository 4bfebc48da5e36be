"""`driftguard backtest` against the length of the series: 1,000 / 2,000 / 4,000 / 8,000 hourly points
(quick: 250 / 500), replayed as `driftguard backtest` (and a production check) judges them, with the
fit kept between judgements (`SeasonalStrategy.reuse`), and with a full fit at every point (`exact`,
what every judgement did before fits were kept), plus a year (8,760 points) by the first alone, for
the budget. The two are compared judgement by judgement: which points alert, and how far the expected
values of the others moved.

.venv/bin/python -m bench.perf.backtest_scaling [--quick] [--json PATH]

The series: hourly counts around 800 with a daily and a weekly rhythm, overdispersed noise, a level
shift that persists, a few spikes and a six-hour outage; the period is detected ('auto', the
command's default) and the detection settings are the defaults (a 56-day training window, 1,344
hourly points). Times are CPU seconds of this process (the machine is shared; wall time is in the
notes).
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta

from bench.perf.report import Budget, Report, main
from driftguard.config import DetectionSettings
from driftguard.detect.backtest import Replayed, replay_volume

START = datetime(2025, 1, 6, tzinfo=UTC)  # a Monday
SIZES = (1_000, 2_000, 4_000, 8_000)
QUICK_SIZES = (250, 500)
YEAR = 8_760
YEAR_BUDGET_S = 10.0
MAX_ALERT_DIFFERENCES = 0.01  # a share of the judgements: beyond it, keeping fits is a problem to look at


def hourly_series(points: int, seed: int = 16) -> list[tuple[datetime, float]]:
    rng = random.Random(seed)
    rows = []
    for i in range(points):
        ts = START + timedelta(hours=i)
        mean = 800.0 * (1 + 0.6 * math.sin(2 * math.pi * (ts.hour - 8) / 24))
        mean *= 0.45 if ts.weekday() >= 5 else 1.0
        mean *= 1.6 if i >= points * 3 // 4 else 1.0  # a level shift that stays
        value = round(mean * math.exp(0.12 * rng.gauss(0, 1)))
        rows.append((ts, float(value)))
    for i in rng.sample(range(points // 5, points), 4):
        rows[i] = (rows[i][0], rows[i][1] * rng.choice([0.1, 4.0]))
    outage = points * 3 // 5
    for i in range(outage, min(outage + 6, points)):
        rows[i] = (rows[i][0], 0.0)
    return rows


Replay = Callable[[Sequence[tuple[datetime, float]], timedelta | None, DetectionSettings], list[Replayed]]


def kept(
    rows: Sequence[tuple[datetime, float]], period: timedelta | None, settings: DetectionSettings
) -> list[Replayed]:
    return replay_volume(rows, period, settings)


def exact(
    rows: Sequence[tuple[datetime, float]], period: timedelta | None, settings: DetectionSettings
) -> list[Replayed]:
    return replay_volume(rows, period, settings, exact=True)


def timed(replay: Replay, rows: list[tuple[datetime, float]]) -> tuple[float, float, list[Replayed]]:
    """(CPU seconds, wall seconds, judgements) of one replay of `rows`."""
    settings = DetectionSettings()
    cpu, wall = time.process_time(), time.perf_counter()
    judged = replay(rows, None, settings)
    return time.process_time() - cpu, time.perf_counter() - wall, judged


def compare(fast: Sequence[Replayed], full: Sequence[Replayed]) -> tuple[int, int, float]:
    """(judgements whose alert differs, judgements the kept fit made, the largest move of an expected
    value between the two where both judged the point OK, as a share of the full fit's)."""
    alerts = sum(a[2].anomaly != b[2].anomaly for a, b in zip(fast, full, strict=True))
    reused = sum(a[2].fitted is not None and a[2].fitted.at < a[0].timestamp() for a in fast)
    moved = max(
        (
            abs(a[2].expected - b[2].expected) / abs(b[2].expected)
            for a, b in zip(fast, full, strict=True)
            if not a[2].anomaly and not b[2].anomaly and a[2].expected and b[2].expected
        ),
        default=0.0,
    )
    return alerts, reused, moved


def run(quick: bool = False) -> Report:
    sizes = QUICK_SIZES if quick else SIZES
    report = Report("driftguard backtest against the length of an hourly series", quick)
    table = report.table(
        "replay of one hourly series (CPU seconds; default settings: 56-day window = 1,344 points)",
        "points",
        "kept fit s",
        "full refit s",
        "full / kept",
        "kept ms/point",
        "judged by a kept fit",
        "alerts that differ",
        "largest move of an OK expected value",
    )
    walls = []
    for points in sizes:
        rows = hourly_series(points)
        fast_cpu, fast_wall, fast = timed(kept, rows)
        ref_cpu, ref_wall, reference = timed(exact, rows)
        alerts, reused, moved = compare(fast, reference)
        if alerts > MAX_ALERT_DIFFERENCES * points:
            report.problems.append(
                f"{points} points: {alerts} alerts differ from a full refit at every point"
            )
        table.add(
            points,
            round(fast_cpu, 2),
            round(ref_cpu, 2),
            round(ref_cpu / fast_cpu, 2) if fast_cpu else None,
            round(1000 * fast_cpu / points, 2),
            f"{reused / points:.0%}",
            alerts,
            f"{moved:.2%}",
        )
        walls.append(f"{points:,}: {fast_wall:.1f} / {ref_wall:.1f} s")
    if quick:
        year = Budget(f"a year of hourly points ({YEAR:,}) replayed", f"< {YEAR_BUDGET_S:g} s", "-", None)
    else:
        cpu, wall, judged = timed(kept, hourly_series(YEAR))
        reused = sum(j.fitted is not None and j.fitted.at < at.timestamp() for at, _, j in judged)
        table.add(
            YEAR, round(cpu, 2), None, None, round(1000 * cpu / YEAR, 2), f"{reused / YEAR:.0%}", "-", "-"
        )
        walls.append(f"{YEAR:,}: {wall:.1f} s (kept fit only)")
        year = Budget(
            f"a year of hourly points ({YEAR:,}) replayed",
            f"< {YEAR_BUDGET_S:g} s",
            f"{cpu:.1f} s CPU",
            cpu < YEAR_BUDGET_S,
        )
    report.budgets.append(year)
    report.notes.append("wall seconds, kept fit / full refit: " + "; ".join(walls))
    report.notes.append(
        "a kept fit judges a value only when it is plainly normal under a fit made less than two days "
        "ago (within 60% of `sensitivity`, not empty, not a holiday, not part of a run of deviations "
        "or of a lean that may be a level shift); every other value is judged by a full fit, so the "
        "replay costs one full fit every two days plus one per unusual value"
    )
    return report


def entry(argv: list[str] | None = None) -> int:
    return main(run, __doc__, argv)


if __name__ == "__main__":
    raise SystemExit(entry())
