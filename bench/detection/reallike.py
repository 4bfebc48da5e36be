"""Real-like volume series: what public hourly and daily traffic does that the tidy families do not.

Real counts are overdispersed (negative binomial: their variance is 5-50 times a Poisson count's), the
level wanders for days (weather), public holidays reshape whole days, some weeks run low (Christmas),
levels step and stay, trends are slow, periods go missing and rows arrive late. Each family here is
that background plus one impairment, with a few labeled incidents to find in it; the background itself
is never labeled, so every alert on it is false.

Holidays follow the US federal calendar (listed below, so the series never change with a library
update); DriftGuard is told the calendar (`Scenario.calendar`), as an operator would configure it. The
references have no such setting.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime

from bench.detection.scenarios import DAILY, HOURLY, Event, Grid, Rng, Scenario

CALENDAR = "US"

# US federal holidays (observed dates) in the spans the series cover; `holidays.US` agrees (tested)
US_HOLIDAYS = frozenset(
    date.fromisoformat(d)
    for d in (
        "2026-01-01", "2026-01-19", "2026-02-16", "2026-05-25", "2026-06-19", "2026-07-03", "2026-07-04",
        "2026-09-07", "2026-10-12", "2026-11-11", "2026-11-26", "2026-12-25",
        "2027-01-01", "2027-01-18", "2027-02-15",
    )
)  # fmt: skip
# the week around Christmas runs low without being a holiday: part of normal real traffic
_LOW_WEEK = (date(2026, 12, 21), date(2027, 1, 3))

SPRING = datetime(2026, 1, 5, tzinfo=UTC)  # MLK day and Presidents' day in both grids
AUTUMN = {"hourly": datetime(2026, 11, 2, tzinfo=UTC), "daily": datetime(2026, 9, 7, tzinfo=UTC)}


@dataclass
class _Series:
    """The expected count of each period (before noise) and which periods have rows at all."""

    grid: Grid
    start: datetime
    mean: list[float]
    zero: list[bool]
    present: list[bool]

    def day(self, i: int) -> date:
        return (self.start + i * self.grid.period).date()


def _gamma(rng: Rng, shape: float) -> float:
    """Marsaglia and Tsang's method (shape < 1 boosted), from uniform and normal draws only."""
    if shape < 1.0:
        return _gamma(rng, shape + 1.0) * rng.uniform(0.0, 1.0) ** (1.0 / shape)
    d = shape - 1.0 / 3.0
    c = 1.0 / math.sqrt(9.0 * d)
    while True:
        x = rng.normal()
        v = (1.0 + c * x) ** 3
        if v > 0 and math.log(1.0 - rng.uniform(0.0, 1.0)) < 0.5 * x * x + d - d * v + d * math.log(v):
            return d * v


def _count(rng: Rng, mean: float) -> float:
    """A Poisson count (normal approximation above 100, where it is accurate to a row or two)."""
    if mean <= 0:
        return 0.0
    if mean <= 100:
        return float(rng.poisson(mean))
    return float(max(0, round(mean + math.sqrt(mean) * rng.normal())))


def negative_binomial(rng: Rng, mean: float, dispersion: float) -> float:
    """A count with this mean and variance `dispersion` x mean (a gamma-Poisson mixture)."""
    if dispersion <= 1.0 or mean <= 0:
        return _count(rng, mean)
    shape = mean / (dispersion - 1.0)
    return _count(rng, _gamma(rng, shape) * mean / shape)


def _background(rng: Rng, grid: Grid, start: datetime, trend: float) -> _Series:
    """Weekly and daily rhythm, holidays at a Sunday's level, the Christmas weeks lower, a trend of
    `trend` (a factor reached by the last period, linear)."""
    base = rng.uniform(40, 800) if grid is HOURLY else rng.uniform(2_000, 30_000)
    weekend = rng.uniform(0.45, 0.8)
    weekday = [rng.uniform(0.9, 1.1) for _ in range(5)] + [weekend, weekend * rng.uniform(0.85, 1.0)]
    amplitude = rng.uniform(0.5, 0.8)
    peak = rng.integer(12, 18)
    holiday_level = rng.uniform(0.8, 1.1)  # of a Sunday
    low_week = rng.uniform(0.75, 0.9)
    mean = []
    for i in range(grid.points):
        ts = start + i * grid.period
        day = ts.date()
        level = weekday[6] * holiday_level if day in US_HOLIDAYS else weekday[ts.weekday()]
        if _LOW_WEEK[0] <= day <= _LOW_WEEK[1] and day not in US_HOLIDAYS:
            level *= low_week
        if grid is HOURLY:
            level *= max(0.05, 1.0 + amplitude * math.cos(2.0 * math.pi * (ts.hour - peak) / 24.0))
        mean.append(base * level * (1.0 + (trend - 1.0) * i / (grid.points - 1)))
    return _Series(grid, start, mean, [False] * grid.points, [True] * grid.points)


def _weather(rng: Rng, series: _Series, dips: int, depth: tuple[float, float]) -> None:
    """Multi-day dips (bad weather): 2-4 days at `depth` of normal, easing in and out; not labeled."""
    grid = series.grid
    length = 4 * grid.per_day  # the longest dip
    for _ in range(dips):
        onset = rng.integer(grid.per_day, grid.points - length - 1)
        days = rng.integer(2, 4)
        factor = rng.uniform(*depth)
        span = days * grid.per_day
        for k in range(span):
            ramp = min(1.0, (k + 1) / (grid.per_day / 2), (span - k) / (grid.per_day / 2))
            series.mean[onset + k] *= 1.0 - (1.0 - factor) * ramp


def _scored_onsets(rng: Rng, series: _Series, count: int, length: int) -> list[int]:
    """Onsets after the warm-up, one per equal slot, on ordinary days (a holiday or the low weeks
    would make the incident's size ambiguous)."""
    grid = series.grid
    low, high = grid.warmup + 2, grid.points - 2
    slot = (high - low) // count
    room = slot - length - grid.spacing
    onsets = []
    for k in range(count):
        for _ in range(100):
            onset = low + k * slot + rng.integer(0, room)
            days = {series.day(i) for i in range(onset - grid.per_day, onset + length + grid.per_day)}
            if not any(d in US_HOLIDAYS or _LOW_WEEK[0] <= d <= _LOW_WEEK[1] for d in days):
                break
        onsets.append(onset)
    return onsets


def _incidents(rng: Rng, series: _Series, count: int = 2) -> list[Event]:
    """What an operator wants to hear about: a drop to 10-40% for 1-3 periods, an outage (no rows),
    or a burst of 3-6x."""
    hourly = series.grid is HOURLY
    events = []
    for onset in _scored_onsets(rng, series, count, 6 if hourly else 3):
        kind = rng.integer(0, 2)
        if kind == 0:
            length, factor = rng.integer(1, 3), rng.uniform(0.1, 0.4)
            for i in range(onset, onset + length):
                series.mean[i] *= factor
            events.append(Event("drop", onset, onset + length - 1))
        elif kind == 1:
            length = rng.integer(2, 6) if hourly else rng.integer(1, 2)
            for i in range(onset, onset + length):
                series.zero[i] = True
            events.append(Event("outage", onset, onset + length - 1))
        else:
            series.mean[onset] *= rng.uniform(3.0, 6.0)
            events.append(Event("burst", onset, onset))
    return events


def _step(rng: Rng, series: _Series) -> list[Event]:
    grid = series.grid
    post = 7 * 24 if grid is HOURLY else 21
    (onset,) = _scored_onsets(rng, _truncated(series, grid.allowance + post), 1, 1)
    factor = rng.uniform(1.6, 2.5) if rng.coin() else rng.uniform(0.4, 0.6)
    for i in range(onset, grid.points):
        series.mean[i] *= factor
    return [Event("step", onset, min(onset + grid.allowance, grid.points - 1))]


def _truncated(series: _Series, tail: int) -> _Series:
    """The series without its last `tail` points (where an onset must not fall)."""
    grid = series.grid
    shorter = Grid(
        grid.granularity, grid.period, grid.points - tail, grid.warmup, grid.allowance, grid.spacing
    )
    return _Series(shorter, series.start, series.mean, series.zero, series.present)


def _missing(rng: Rng, series: _Series) -> None:
    """5-15% of periods never reported (collector down), and one block of several in a row."""
    grid = series.grid
    share = rng.uniform(0.05, 0.15)
    for i in range(grid.warmup // 2, grid.points - 1):
        if rng.coin(share):
            series.present[i] = False
    block = rng.integer(grid.warmup, grid.points - 10)
    for i in range(block, block + rng.integer(3, 8)):
        series.present[i] = False


def late_arrivals(values: list[float], rng: Rng) -> list[float]:
    """Rows arriving late are counted in the next period: 5-30% of each period's rows move on."""
    share = rng.uniform(0.05, 0.3)
    out, carried = [], 0.0
    for v in values:
        late = round(v * share * rng.uniform(0.5, 1.5))
        late = min(late, v)
        out.append(v - late + carried)
        carried = late
    return out


_Build = Callable[[Rng, _Series], list[Event]]


def _none(rng: Rng, series: _Series) -> list[Event]:
    return []


def _with_weather(rng: Rng, series: _Series) -> list[Event]:
    _weather(rng, series, 2, (0.7, 0.85))
    return _incidents(rng, series)


def _with_missing(rng: Rng, series: _Series) -> list[Event]:
    events = _incidents(rng, series)
    _missing(rng, series)
    for e in events:  # an incident is only scoreable where the periods were reported
        for i in range(e.onset, e.end + 1):
            series.present[i] = True
    return events


_FAMILIES: dict[str, tuple[_Build, bool]] = {  # family -> (events, autumn span)
    "rl_clean": (_none, False),
    "rl_slow_trend": (_none, False),
    "rl_incident": (_incidents, False),
    "rl_holiday_week": (_incidents, True),
    "rl_weather": (_with_weather, False),
    "rl_step": (_step, False),
    "rl_missing": (_with_missing, False),
    "rl_late": (_incidents, False),
}


def real_like_scenario(family: str, seed: int) -> Scenario:
    rng = Rng(family, seed)
    grid = HOURLY if seed % 2 == 0 else DAILY
    build, autumn = _FAMILIES[family]
    start = AUTUMN[grid.granularity] if autumn else SPRING
    if grid is DAILY and autumn:  # long enough to reach the holidays after New Year
        grid = Grid("daily", DAILY.period, 150, DAILY.warmup, DAILY.allowance, DAILY.spacing)
    if family == "rl_slow_trend":
        trend = rng.uniform(1.6, 2.2) if rng.coin() else rng.uniform(0.45, 0.6)
    else:
        trend = rng.uniform(0.9, 1.25)
    dispersion = math.exp(rng.uniform(math.log(5.0), math.log(50.0)))
    series = _background(rng, grid, start, trend)
    if family != "rl_weather":  # one mild dip in any real series
        _weather(rng, series, 1, (0.85, 0.95))
    events = build(rng, series)
    values = [
        0.0 if z else negative_binomial(rng, m, dispersion)
        for m, z in zip(series.mean, series.zero, strict=True)
    ]
    if family == "rl_late":
        values = late_arrivals(values, rng)
        for e in events:  # an outage stays empty: nothing arrived to be late
            if all(series.zero[i] for i in range(e.onset, e.end + 1)):
                for i in range(e.onset, e.end + 1):
                    values[i] = 0.0
    # periods never reported leave the series; events keep pointing at the same moments
    kept = [i for i in range(grid.points) if series.present[i]]
    position = {i: k for k, i in enumerate(kept)}
    rows = tuple((start + i * grid.period, values[i]) for i in kept)
    moved = tuple(Event(e.kind, position[e.onset], position[e.end]) for e in events)
    warmup = sum(1 for i in kept if i < grid.warmup)
    return Scenario(
        family, seed, "volume", grid.granularity, grid.period, rows, moved, warmup, calendar=CALENDAR
    )
