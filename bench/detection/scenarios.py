"""Seeded series with labeled anomalies: what the detection benchmark replays.

Every series is a pure function of (family, seed). Randomness comes only from `random.Random.random()`,
whose sequence Python guarantees for a given seed across versions; normal and Poisson draws are
derived from it here, so a figure printed today can be reproduced later.

Volume series are row counts per period (hourly or daily), with daily and weekly seasonality, a trend
and multiplicative noise; freshness series are the lag (seconds since the last update) of a table
updated on a cadence, sampled every evaluation period. Each anomaly is an `Event`: the index of its
first anomalous point and of the last point that still belongs to it (see README.md for the rules).
"""

from __future__ import annotations

import math
import random
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

START = datetime(2026, 1, 5, tzinfo=UTC)  # a Monday, so weekday arithmetic is easy to check

SERIES_PER_FAMILY = 20
TRAIN_SEEDS = range(0, 10)
HELDOUT_SEEDS = range(10, 20)

Split = Literal["train", "heldout"]
Kind = Literal["volume", "freshness"]

VOLUME_FAMILIES = (
    "clean",
    "spike",
    "drop",
    "zero",
    "level_shift",
    "drift",
    "holiday",
    "small_count",
    "volatile",
)
FRESHNESS_FAMILIES = ("freshness_clean", "freshness_stall")
# real-like volume series (reallike.py); named here so that selection needs no import of that module
REAL_LIKE_FAMILIES = (
    "rl_clean",
    "rl_slow_trend",
    "rl_incident",
    "rl_holiday_week",
    "rl_weather",
    "rl_step",
    "rl_missing",
    "rl_late",
)
REAL_LIKE_CLEAN = ("rl_clean", "rl_slow_trend")
FAMILIES = VOLUME_FAMILIES + FRESHNESS_FAMILIES + REAL_LIKE_FAMILIES
CLEAN_FAMILIES = ("clean", "freshness_clean", *REAL_LIKE_CLEAN)


@dataclass(frozen=True)
class Event:
    """One labeled anomaly: points `onset`..`end` (inclusive) belong to it."""

    kind: str
    onset: int
    end: int


@dataclass(frozen=True)
class Scenario:
    """One labeled series. `rows` is what a detector judges: counts (volume) or lags in seconds."""

    family: str
    seed: int
    kind: Kind
    granularity: str
    period: timedelta
    rows: tuple[tuple[datetime, float], ...]
    events: tuple[Event, ...]
    warmup: int  # the first `warmup` points are never scored, for any detector
    update_times: tuple[datetime, ...] = ()  # freshness only: when the table really changed
    calendar: str | None = None  # the holiday calendar an operator would configure (real-like series)

    @property
    def name(self) -> str:
        return f"{self.family}#{self.seed} ({self.granularity})"

    @property
    def values(self) -> list[float]:
        return [v for _, v in self.rows]


class Rng:
    """Uniform, normal and Poisson draws built on `random()` alone (stable across Python versions)."""

    def __init__(self, family: str, seed: int) -> None:
        self._r = random.Random(zlib.crc32(family.encode()) * 1_000_003 + seed)

    def uniform(self, low: float, high: float) -> float:
        return low + (high - low) * self._r.random()

    def integer(self, low: int, high: int) -> int:
        """An integer in [low, high], both included."""
        return low + min(int(self._r.random() * (high - low + 1)), high - low)

    def coin(self, p: float = 0.5) -> bool:
        return self._r.random() < p

    def normal(self) -> float:
        u1, u2 = self._r.random(), self._r.random()
        return math.sqrt(-2.0 * math.log(1.0 - u1)) * math.cos(2.0 * math.pi * u2)

    def poisson(self, mean: float) -> int:
        """Knuth's multiplication method: exact, and fast for the small means it is used with."""
        limit, k, p = math.exp(-mean), 0, self._r.random()
        while p > limit:
            k += 1
            p *= self._r.random()
        return k


# --------------------------------------------------------------------------- volume


@dataclass(frozen=True)
class Grid:
    granularity: str
    period: timedelta
    points: int
    warmup: int
    allowance: int  # periods after a lasting change's onset in which alerts belong to it; then it is normal
    spacing: int  # minimum number of normal points between two events

    @property
    def per_day(self) -> int:
        return round(timedelta(days=1) / self.period)


HOURLY = Grid("hourly", timedelta(hours=1), points=42 * 24, warmup=21 * 24, allowance=24, spacing=48)
DAILY = Grid("daily", timedelta(days=1), points=140, warmup=35, allowance=7, spacing=10)


@dataclass
class _Shape:
    """The anomaly applied to each point of one series: a factor on its normal level, or no rows at all."""

    grid: Grid
    factor: list[float]
    zero: list[bool]


def _expected(rng: Rng, grid: Grid, base: float, day_amplitude: float, weekend: float) -> list[float]:
    growth = rng.uniform(-0.1, 0.3)  # over the whole series
    weekday_offsets = [rng.uniform(-0.1, 0.1) for _ in range(5)] + [0.0, 0.0]
    out = []
    for i in range(grid.points):
        ts = START + i * grid.period
        season = weekend if ts.weekday() >= 5 else 1.0 + weekday_offsets[ts.weekday()]
        if grid is HOURLY:
            season *= 1.0 + day_amplitude * math.sin(2.0 * math.pi * (ts.hour - 9) / 24.0)
        out.append(base * (1.0 + growth * i / grid.points) * season)
    return out


def _onsets(rng: Rng, grid: Grid, count: int, length: int, tail: int = 2) -> list[int]:
    """`count` onsets in the scored region, one per equal slot, so events never overlap."""
    low, high = grid.warmup + 2, grid.points - tail
    slot = (high - low) // count
    room = slot - length - grid.spacing
    if room < 0:
        raise ValueError(f"{count} events of {length} points do not fit in {grid.granularity} series")
    return [low + k * slot + rng.integer(0, room) for k in range(count)]


def _mark(shape: _Shape, onset: int, length: int, factor: float | None, kind: str) -> Event:
    """Apply `factor` (None: exactly zero rows) to `length` points from `onset`; label them."""
    for i in range(onset, onset + length):
        if factor is None:
            shape.zero[i] = True
        else:
            shape.factor[i] = factor
    return Event(kind, onset, onset + length - 1)


def _lasting(shape: _Shape, onset: int, ramp: int, final: float, kind: str) -> Event:
    """A change that ramps over `ramp` points to `final` and stays: it belongs to the event for the
    ramp plus `allowance` points, after which the new level is normal and alerts are false."""
    for i in range(onset, shape.grid.points):
        step = min(i - onset + 1, ramp)
        shape.factor[i] = 1.0 + (final - 1.0) * step / ramp
    return Event(kind, onset, min(onset + ramp - 1 + shape.grid.allowance, shape.grid.points - 1))


def _lasting_factor(rng: Rng, up: tuple[float, float], down: tuple[float, float]) -> float:
    return rng.uniform(*up) if rng.coin() else rng.uniform(*down)


def _spikes(rng: Rng, shape: _Shape) -> list[Event]:
    return [_mark(shape, o, 1, rng.uniform(2.5, 5.0), "spike") for o in _onsets(rng, shape.grid, 2, 1)]


def _drops(rng: Rng, shape: _Shape) -> list[Event]:
    return [
        _mark(shape, o, rng.integer(1, 3), rng.uniform(0.15, 0.45), "drop")
        for o in _onsets(rng, shape.grid, 2, 3)
    ]


def _zeros(rng: Rng, shape: _Shape) -> list[Event]:
    longest = 6 if shape.grid is HOURLY else 2
    return [
        _mark(shape, o, rng.integer(1, longest), None, "zero") for o in _onsets(rng, shape.grid, 2, longest)
    ]


def _post(grid: Grid) -> int:
    """Points kept after a lasting change's allowance, so a detector that never adopts it shows."""
    return 7 * 24 if grid is HOURLY else 21


def _level_shift(rng: Rng, shape: _Shape) -> list[Event]:
    grid = shape.grid
    (onset,) = _onsets(rng, grid, 1, 1, tail=grid.allowance + _post(grid))
    return [_lasting(shape, onset, 1, _lasting_factor(rng, (1.7, 2.5), (0.4, 0.6)), "level_shift")]


def _drift(rng: Rng, shape: _Shape) -> list[Event]:
    grid = shape.grid
    ramp = rng.integer(96, 168) if grid is HOURLY else rng.integer(14, 28)
    longest = 168 if grid is HOURLY else 28
    (onset,) = _onsets(rng, grid, 1, 1, tail=longest + grid.allowance + _post(grid))
    return [_lasting(shape, onset, ramp, _lasting_factor(rng, (1.8, 2.2), (0.35, 0.5)), "drift")]


def _holidays(rng: Rng, shape: _Shape) -> list[Event]:
    """Whole weekdays at 15-40% of normal: labeled anomalies (no detector is given a calendar)."""
    grid, events = shape.grid, []
    for onset in _onsets(rng, grid, 2, 3 * grid.per_day):
        day = onset - onset % grid.per_day  # midnight of that day
        while (START + day * grid.period).weekday() >= 5:
            day += grid.per_day
        events.append(_mark(shape, day, grid.per_day, rng.uniform(0.15, 0.4), "holiday"))
    return events


def _small_count_events(rng: Rng, shape: _Shape) -> list[Event]:
    hourly = shape.grid is HOURLY
    events = []
    for onset in _onsets(rng, shape.grid, 2, 12 if hourly else 3):
        if rng.coin():
            events.append(_mark(shape, onset, rng.integer(8, 12) if hourly else 3, None, "outage"))
        else:
            events.append(_mark(shape, onset, rng.integer(1, 2) if hourly else 1, rng.uniform(5, 8), "burst"))
    return events


def _volatile_events(rng: Rng, shape: _Shape) -> list[Event]:
    events = []
    for onset in _onsets(rng, shape.grid, 2, 4):
        if rng.coin():
            events.append(_mark(shape, onset, 1, rng.uniform(6, 10), "spike"))
        else:
            events.append(_mark(shape, onset, rng.integer(2, 4), None, "zero"))
    return events


def _no_events(rng: Rng, shape: _Shape) -> list[Event]:
    return []


_VOLUME_EVENTS: dict[str, Callable[[Rng, _Shape], list[Event]]] = {
    "clean": _no_events,
    "spike": _spikes,
    "drop": _drops,
    "zero": _zeros,
    "level_shift": _level_shift,
    "drift": _drift,
    "holiday": _holidays,
    "small_count": _small_count_events,
    "volatile": _volatile_events,
}


def volume_scenario(family: str, seed: int) -> Scenario:
    rng = Rng(family, seed)
    grid = HOURLY if seed % 2 == 0 else DAILY
    small = family == "small_count"
    if small:
        base, sigma = rng.uniform(3.0, 10.0), 0.0
        day_amplitude, weekend = 0.3, 0.8
    else:
        base = rng.uniform(200, 2000) if grid is HOURLY else rng.uniform(5_000, 50_000)
        sigma = rng.uniform(0.25, 0.45) if family == "volatile" else rng.uniform(0.03, 0.08)
        day_amplitude, weekend = rng.uniform(0.4, 0.7), rng.uniform(0.5, 0.8)
    expected = _expected(rng, grid, base, day_amplitude, weekend)
    shape = _Shape(grid, [1.0] * grid.points, [False] * grid.points)
    events = _VOLUME_EVENTS[family](rng, shape)
    rows = []
    for i, mean in enumerate(expected):
        if small:
            value = float(rng.poisson(mean * shape.factor[i]))
        else:
            noise = math.exp(sigma * rng.normal() - sigma * sigma / 2.0)
            value = float(round(mean * shape.factor[i] * noise))
        rows.append((START + i * grid.period, 0.0 if shape.zero[i] else value))
    return Scenario(
        family, seed, "volume", grid.granularity, grid.period, tuple(rows), tuple(events), grid.warmup
    )


# --------------------------------------------------------------------------- freshness


@dataclass(frozen=True)
class Cadence:
    name: str
    interval: timedelta
    weekdays_only: bool
    offset: timedelta  # scheduled update times are START + offset + k * interval
    max_lateness: timedelta  # an update arrives up to this late; later than that it is missed
    eval_period: timedelta  # how often the lag is sampled (one point of the series)
    days: int
    warmup_days: int
    stall_hours: tuple[float, float]


CADENCES = (
    Cadence("every 15 min", timedelta(minutes=15), False, timedelta(minutes=2), timedelta(minutes=10),
            timedelta(minutes=15), days=14, warmup_days=7, stall_hours=(1.0, 8.0)),
    Cadence("hourly on weekdays", timedelta(hours=1), True, timedelta(minutes=5), timedelta(minutes=20),
            timedelta(hours=1), days=35, warmup_days=21, stall_hours=(3.0, 24.0)),
    Cadence("daily", timedelta(days=1), False, timedelta(hours=2), timedelta(hours=2),
            timedelta(hours=1), days=70, warmup_days=28, stall_hours=(24.0, 72.0)),
)  # fmt: skip


def _schedule(cadence: Cadence) -> Iterator[datetime]:
    end = START + timedelta(days=cadence.days)
    t = START + cadence.offset
    while t < end:
        if not (cadence.weekdays_only and t.weekday() >= 5):
            yield t
        t += cadence.interval


def _stall(rng: Rng, cadence: Cadence, scheduled: list[datetime]) -> tuple[datetime, datetime | None]:
    """The first missed scheduled update and the scheduled update that resumes (None: never)."""
    earliest = START + timedelta(days=cadence.warmup_days + 1)
    longest = timedelta(hours=cadence.stall_hours[1])
    latest = START + timedelta(days=cadence.days) - longest - timedelta(days=2)
    candidates = [
        s for s in scheduled if earliest <= s <= latest and not (cadence.weekdays_only and s.weekday() >= 4)
    ]
    missed = candidates[rng.integer(0, len(candidates) - 1)]
    if rng.coin(0.25):
        return missed, None
    stop = missed + timedelta(hours=rng.uniform(*cadence.stall_hours))
    return missed, next(s for s in scheduled if s >= stop)


def freshness_scenario(family: str, seed: int) -> Scenario:
    rng = Rng(family, seed)
    cadence = CADENCES[seed % len(CADENCES)]
    scheduled = list(_schedule(cadence))
    stall = _stall(rng, cadence, scheduled) if family == "freshness_stall" else None
    updates = []
    for s in scheduled:
        if stall is not None and s >= stall[0] and (stall[1] is None or s < stall[1]):
            continue
        updates.append(s + rng.uniform(0.0, 1.0) ** 2 * cadence.max_lateness)  # most updates are early
    rows: list[tuple[datetime, float]] = []
    t, end, last = START + timedelta(days=1), START + timedelta(days=cadence.days), -1
    while t < end:
        while last + 1 < len(updates) and updates[last + 1] <= t:
            last += 1
        rows.append((t, (t - updates[last]).total_seconds()))
        t += cadence.eval_period
    warmup = sum(1 for ts, _ in rows if ts < START + timedelta(days=cadence.warmup_days))
    events: tuple[Event, ...] = ()
    if stall is not None:
        missed, resumed = stall
        onset = next(i for i, (ts, _) in enumerate(rows) if ts > missed + cadence.max_lateness)
        resumed_at = None if resumed is None else next(u for u in updates if u >= resumed)
        end_index = max(i for i, (ts, _) in enumerate(rows) if resumed_at is None or ts < resumed_at)
        events = (Event("stall", onset, end_index),)
    return Scenario(
        family,
        seed,
        "freshness",
        cadence.name,
        cadence.eval_period,
        tuple(rows),
        events,
        warmup,
        tuple(u for u in updates if u <= rows[-1][0]),
    )


# --------------------------------------------------------------------------- selection


def scenario(family: str, seed: int) -> Scenario:
    if family in VOLUME_FAMILIES:
        return volume_scenario(family, seed)
    if family in FRESHNESS_FAMILIES:
        return freshness_scenario(family, seed)
    if family in REAL_LIKE_FAMILIES:
        # imported here: reallike.py builds on this module's primitives
        from bench.detection.reallike import real_like_scenario

        return real_like_scenario(family, seed)
    raise ValueError(f"unknown family {family!r}; known families: {', '.join(FAMILIES)}")


def seeds(split: Split, family: str, quick: bool = False) -> range:
    """The split's seeds; in quick mode one per family, alternating between the first two of the split
    from family to family so that hourly and daily series (and two freshness cadences) are all covered."""
    chosen = TRAIN_SEEDS if split == "train" else HELDOUT_SEEDS
    if not quick:
        return chosen
    first = FAMILIES.index(family) % 2
    return chosen[first : first + 1]


def scenarios(
    split: Split, families: tuple[str, ...] = FAMILIES, quick: bool = False, series: int | None = None
) -> list[Scenario]:
    """The split's series of `families`; `series`: only the first that many seeds of each family."""
    return [scenario(f, s) for f in families for s in seeds(split, f, quick)[:series]]
