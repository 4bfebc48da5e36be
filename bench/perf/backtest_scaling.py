"""`driftguard backtest` against the length of the series: 1,000 / 2,000 / 4,000 / 8,000 hourly points
(quick: 250 / 500), replayed by the windowed replay `driftguard backtest` runs and by the reference
replay it is checked against (which re-filters the last 2 x MAX_TRAINING_POINTS rows at every step),
plus a year (8,760 points) by the windowed replay alone, for the budget.

.venv/bin/python -m bench.perf.backtest_scaling [--quick] [--json PATH]

The series: hourly counts around 800 with a daily and a weekly rhythm, overdispersed noise, a level
shift that persists, a few spikes and a six-hour outage; the period is detected ('auto', the
command's default) and the detection settings are the defaults (a 56-day training window, 1,344
hourly points). Times are CPU seconds of this process (the machine is shared; wall time is in the
notes), and every judgement of the two replays is compared.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta

from bench.perf.report import Budget, Report, main
from driftguard.config import DetectionSettings
from driftguard.detect.backtest import Replayed, _replay_volume_reference, replay_volume

START = datetime(2025, 1, 6, tzinfo=UTC)  # a Monday
SIZES = (1_000, 2_000, 4_000, 8_000)
QUICK_SIZES = (250, 500)
YEAR = 8_760
YEAR_BUDGET_S = 10.0


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


def timed(replay: Replay, rows: list[tuple[datetime, float]]) -> tuple[float, float, list[Replayed]]:
    """(CPU seconds, wall seconds, judgements) of one replay of `rows`."""
    settings = DetectionSettings()
    cpu, wall = time.process_time(), time.perf_counter()
    judged = replay(rows, None, settings)
    return time.process_time() - cpu, time.perf_counter() - wall, judged


def run(quick: bool = False) -> Report:
    sizes = QUICK_SIZES if quick else SIZES
    report = Report("driftguard backtest against the length of an hourly series", quick)
    table = report.table(
        "replay of one hourly series (CPU seconds; default settings: 56-day window = 1,344 points)",
        "points",
        "windowed s",
        "reference s",
        "reference / windowed",
        "windowed ms/point",
        "judgements identical",
    )
    walls = []
    for points in sizes:
        rows = hourly_series(points)
        fast_cpu, fast_wall, fast = timed(replay_volume, rows)
        ref_cpu, ref_wall, reference = timed(_replay_volume_reference, rows)
        identical = fast == reference
        if not identical:
            differ = sum(a != b for a, b in zip(fast, reference, strict=True))
            report.problems.append(f"{points} points: {differ} judgements differ from the reference replay")
        table.add(
            points,
            round(fast_cpu, 2),
            round(ref_cpu, 2),
            round(ref_cpu / fast_cpu, 2) if fast_cpu else None,
            round(1000 * fast_cpu / points, 2),
            "yes" if identical else "NO",
        )
        walls.append(f"{points:,}: {fast_wall:.1f} / {ref_wall:.1f} s")
    if quick:
        year = Budget(f"a year of hourly points ({YEAR:,}) replayed", f"< {YEAR_BUDGET_S:g} s", "-", None)
    else:
        cpu, wall, _ = timed(replay_volume, hourly_series(YEAR))
        table.add(YEAR, round(cpu, 2), None, None, round(1000 * cpu / YEAR, 2), "-")
        walls.append(f"{YEAR:,}: {wall:.1f} s (windowed only)")
        year = Budget(
            f"a year of hourly points ({YEAR:,}) replayed",
            f"< {YEAR_BUDGET_S:g} s",
            f"{cpu:.1f} s CPU",
            cpu < YEAR_BUDGET_S,
        )
    report.budgets.append(year)
    report.notes.append("wall seconds, windowed / reference: " + "; ".join(walls))
    report.notes.append(
        "every point is still refitted from its whole training window (the results must equal a full "
        "refit): past 1,344 points the cost per point stops growing, so the replay is linear from there"
    )
    return report


def entry(argv: list[str] | None = None) -> int:
    return main(run, __doc__, argv)


if __name__ == "__main__":
    raise SystemExit(entry())
