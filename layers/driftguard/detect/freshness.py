"""Freshness: learn when a table's data arrives, alert when it is later than its cadence allows.

The series is the table's last update (epoch seconds of max(freshness column)) per run; an
arrival is a change of it. The allowed lag at a time `t` comes from the same moment of past
cycles (a week ago, two weeks ago ... or yesterday while history is short): the largest lag the
table had around that moment, its median over cycles (one late day in the past cannot widen it),
plus a margin. A table loaded hourly on weekdays therefore has a long allowed lag on Sundays.
"""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from statistics import median

from driftguard.config import DetectionSettings
from driftguard.detect.stats import robust_sigma
from driftguard.detect.strategy import Judgement
from driftguard.formatting import format_duration
from driftguard.model import FindingStatus, MetricPoint

_DAY = 86400.0
_CYCLES = {"weekly": 7 * _DAY, "daily": _DAY}
_MIN_CYCLES = 2  # analogous moments needed before a seasonality is trusted


class UpdateTimes:
    """Sorted distinct arrival times (epoch seconds) with the lag questions freshness asks."""

    def __init__(self, times: Sequence[float]) -> None:
        self.times = sorted(set(times))

    def last_before(self, t: float) -> float | None:
        i = bisect.bisect_right(self.times, t)
        return self.times[i - 1] if i else None

    def lag(self, t: float) -> float | None:
        last = self.last_before(t)
        return None if last is None else t - last

    def max_lag(self, start: float, end: float) -> float | None:
        """The largest lag at any moment in [start, end]: at `end`, or just before an arrival."""
        end_lag = self.lag(end)
        if end_lag is None or self.last_before(start) is None:
            return None
        lo = bisect.bisect_right(self.times, start)
        hi = bisect.bisect_right(self.times, end)
        gaps = [self.times[i] - self.times[i - 1] for i in range(max(lo, 1), hi)]
        return max([end_lag, *gaps])

    def gaps(self, start: float, end: float) -> list[float]:
        inside = [t for t in self.times if start <= t < end]
        return [b - a for a, b in itertools.pairwise(inside)]


@dataclass(frozen=True)
class Allowance:
    expected_lag: float  # the typical lag at this moment
    max_lag: float  # beyond this, the table is late
    method: str
    cycles: int


def allowed_lag(
    updates: UpdateTimes, at: float, settings: DetectionSettings, window_start: float
) -> Allowance | None:
    """How late the table may be at `at`, learned from arrivals in [window_start, at)."""
    gaps = updates.gaps(window_start, at)
    if len(gaps) < settings.min_points:
        return None
    typical = float(median(gaps))
    margin = max(settings.min_relative_change * typical, settings.min_absolute_change)
    span = at - max(window_start, updates.times[0])
    for name in ("weekly", "daily"):
        if settings.seasonality not in ("auto", name):
            continue
        cycle = _CYCLES[name]
        if span < _MIN_CYCLES * cycle:
            continue
        jitter = min(typical / 2, cycle / 8)
        peaks, lags = [], []
        k = 1
        while at - k * cycle - jitter >= window_start:
            analog = at - k * cycle
            peak = updates.max_lag(analog - jitter, analog + jitter)
            lag = updates.lag(analog)
            if peak is not None and lag is not None:
                peaks.append(peak)
                lags.append(lag)
            k += 1
        if len(peaks) >= _MIN_CYCLES or (settings.seasonality == name and peaks):
            return Allowance(
                float(median(lags)), float(median(peaks)) + margin, f"{name} arrival cadence", len(peaks)
            )
    spread = robust_sigma(gaps)
    limit = typical + settings.sensitivity * spread
    return Allowance(typical, limit + margin, "arrival cadence", len(gaps))


def describe_seconds(seconds: float) -> str:
    """As the CLI and notifications write durations ('6h 21m'), so one alert reads one way."""
    return format_duration(abs(seconds))


@dataclass(frozen=True)
class CadenceStrategy:
    """Judges the lag of a table whose last update is `value` (epoch seconds) at time `at`."""

    def judge(
        self, history: Sequence[MetricPoint], at: datetime, value: float, settings: DetectionSettings
    ) -> Judgement:
        return self.judge_values([p.value for p in history], at, value, settings)

    def judge_values(
        self, arrivals: Sequence[float], at: datetime, value: float, settings: DetectionSettings
    ) -> Judgement:
        """`judge` given the series' values alone (past last-update times, epoch seconds)."""
        now = at.timestamp()
        updates = UpdateTimes([t for t in arrivals if t <= now] + [min(value, now)])
        return judge_lag(updates, now, settings)


def judge_lag(updates: UpdateTimes, now: float, settings: DetectionSettings) -> Judgement:
    """The freshness judgement at `now` given all arrivals known then (at least one)."""
    lag = max(updates.lag(now) or 0.0, 0.0)
    window_start = now - settings.training_window.total_seconds()
    allowance = allowed_lag(updates, now, settings, window_start)
    if allowance is None:
        seen = len(updates.gaps(window_start, now))
        return Judgement(
            FindingStatus.LEARNING,
            lag,
            "arrival cadence",
            training_points=seen,
            needed_points=settings.min_points - seen,
        )
    late = lag > allowance.max_lag and settings.direction != "spike"
    first = max(window_start, updates.times[0])
    return Judgement(
        FindingStatus.ANOMALY if late else FindingStatus.OK,
        lag,
        allowance.method,
        expected=allowance.expected_lag,
        upper=allowance.max_lag,
        score=lag / allowance.max_lag,
        training_start=datetime.fromtimestamp(first, UTC),
        training_end=datetime.fromtimestamp(updates.last_before(now) or first, UTC),
        training_points=allowance.cycles,
        slot=_slot(datetime.fromtimestamp(now, UTC), allowance.method),
        effect=(lag - allowance.expected_lag) / allowance.expected_lag
        if allowance.expected_lag > 0
        else None,
        direction="stale" if late else None,
    )


def _slot(at: datetime, method: str) -> str | None:
    if method.startswith("weekly"):
        return at.strftime("%a %H:%M")
    if method.startswith("daily"):
        return at.strftime("%H:%M")
    return None
