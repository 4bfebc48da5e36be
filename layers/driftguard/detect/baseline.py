"""A robust seasonal baseline: time-of-day and day-of-week medians, a guarded trend, a MAD noise scale.

`fit_baseline` learns from (time, value) pairs; `choose_baseline` tries the seasonalities the
data can support ('auto') and keeps the simplest one that explains the series clearly better.
Everything is medians so that a minority of bad points cannot move the baseline.
"""

from __future__ import annotations

import calendar
import functools
import math
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from statistics import median
from typing import Any

from driftguard.detect.stats import robust_sigma

_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_DAY = 86400.0
_WEEK = 7 * _DAY
_MIN_SLOT_WIDTH = 3600.0  # finer slots than an hour hold too few points to be medians
_MIN_POINTS_PER_SLOT = 3
_MIN_GAIN = 0.97  # a richer seasonality must cut the (already widened) noise scale by 3% to be chosen
_TREND_LINEARITY = 0.25  # the middle third may stray this share of the end-to-end change
_TREND_MIN_CYCLES = 3  # a trend needs a history of this many seasonal cycles (or days)
_EPOCH_WEEKDAY = 3  # 1970-01-01 was a Thursday (Monday = 0)
_MEAN_ABS_TO_SIGMA = math.sqrt(math.pi / 2)  # mean absolute deviation of a normal sample -> sigma
_NOISE_LEVEL_RATIO = 1.5  # levels must differ this much before the noise's growth with them is measured


_MONTH = 365.2425 / 12 * _DAY  # the mean length of a month
_MONTH_END_DAYS = 3  # the last days of a month are slots of their own, counted from its end
_MONTH_SLOTS = 28 + _MONTH_END_DAYS  # days 1-28 from the start, then the last three from the end


def month_position(t: float) -> int:
    """The day-of-month slot of epoch second `t` (UTC): 0-27 for days 1-28, 28-30 for the third-last,
    second-last and last day, so that a month end falls in the same slot in every month (February's
    26th-28th are its month end; its days 25 and earlier keep their number)."""
    day = datetime.fromtimestamp(t, UTC).date()
    to_end = calendar.monthrange(day.year, day.month)[1] - day.day
    if to_end < _MONTH_END_DAYS:
        return _MONTH_SLOTS - 1 - to_end
    return day.day - 1


def _month_label(position: int) -> str:
    if position >= _MONTH_SLOTS - _MONTH_END_DAYS:
        return ("third-last", "second-last", "last")[
            position - (_MONTH_SLOTS - _MONTH_END_DAYS)
        ] + " day of the month"
    return f"day {position + 1} of the month"


@dataclass(frozen=True)
class Seasonality:
    """How time maps to a seasonal slot: 'none', 'daily' (time of day), 'weekly' (day of week +
    time) or 'monthly' (day of month, month end counted from the end, + time)."""

    name: str
    slot_width: float  # seconds

    @property
    def cycle(self) -> float:
        return {"none": 0.0, "daily": _DAY, "weekly": _WEEK, "monthly": _MONTH}[self.name]

    def keys(self, t: float) -> tuple[int, int]:
        """(time-of-day slot, day of week or of month) of an epoch second (UTC); plain arithmetic for
        all but the monthly slots, as it runs for every point. Parts the seasonality does not use are 0."""
        if self.name == "none":
            return 0, 0
        time_slot = int(t % _DAY // self.slot_width) if self.slot_width < _DAY else 0
        if self.name == "monthly":
            return time_slot, month_position(t)
        day = int((t // _DAY + _EPOCH_WEEKDAY) % 7) if self.name == "weekly" else 0
        return time_slot, day

    def keys_of(self, secs: Sequence[float]) -> Sequence[tuple[int, int]]:
        """`keys` of every time in `secs`, in one pass (the same arithmetic, without a call per point).
        One judgement asks this of the same times for several fits: the last few answers are kept
        (looking them up hashes the times, a tenth of the cost of computing them)."""
        if self.name == "none":
            return [(0, 0)] * len(secs)
        return _keys_of(self, tuple(secs))

    def _compute_keys(self, secs: Sequence[float]) -> tuple[tuple[int, int], ...]:
        if self.name == "monthly":
            return tuple([self.keys(t) for t in secs])
        width = self.slot_width
        with_time = width < _DAY
        weekly = self.name == "weekly"
        return tuple(
            [  # a list first: a comprehension is faster than the generator tuple() would drive
                (
                    int(t % _DAY // width) if with_time else 0,
                    int((t // _DAY + _EPOCH_WEEKDAY) % 7) if weekly else 0,
                )
                for t in secs
            ]
        )

    def label(self, t: datetime) -> str | None:
        """The slot as an operator reads it: 'Mon 08:00', 'Mon' (daily data), '08:00' or
        'last day of the month 08:00'."""
        if self.name == "none":
            return None
        time_slot, day = self.keys(t.timestamp())
        start = time_slot * self.slot_width
        clock = f"{int(start // 3600):02d}:{int(start % 3600 // 60):02d}"
        if self.name == "daily":
            return clock
        name = _month_label(day) if self.name == "monthly" else _DAYS[day]
        return name if self.slot_width >= _DAY else f"{name} {clock}"


@functools.lru_cache(maxsize=16)
def _keys_of(seasonality: Seasonality, secs: tuple[float, ...]) -> tuple[tuple[int, int], ...]:
    return seasonality._compute_keys(secs)


def candidate_seasonalities(period: timedelta, wanted: str) -> list[Seasonality]:
    """The seasonalities that make sense for a series sampled every `period`, simplest first."""
    p = max(period.total_seconds(), 1.0)
    daily = Seasonality("daily", max(p, _MIN_SLOT_WIDTH))
    weekly = Seasonality("weekly", max(p, _MIN_SLOT_WIDTH))
    options = [Seasonality("none", p)]
    if p < _DAY:
        options.append(daily)
    if p < _WEEK:
        options.append(weekly)
    if p <= _DAY:
        options.append(Seasonality("monthly", max(p, _MIN_SLOT_WIDTH)))
    if wanted == "auto":
        return options
    return [s for s in options if s.name == wanted] or [options[0]]


def learnable_seasonalities(
    period: timedelta, wanted: str, span: float, window: float | None = None
) -> tuple[list[Seasonality], str]:
    """The candidate seasonalities a history spanning `span` seconds can teach (two cycles each),
    and, when a wanted one is not among them yet, what it still needs: said, not guessed. With
    `window` (the training window, seconds), 'auto' leaves out the seasonalities it can never hold
    (monthly needs two months) instead of waiting for them forever; one asked for by name says so."""
    options = candidate_seasonalities(period, wanted)
    if window is not None:
        too_long = [s for s in options if 2 * s.cycle > window]
        if wanted != "auto" and too_long:
            needed = 2 * too_long[0].cycle / _DAY
            return [Seasonality("none", max(period.total_seconds(), 1.0))], (
                f"{wanted} seasonality needs a training window of {needed:.0f} days, has {window / _DAY:.0f}"
            )
        options = [s for s in options if s not in too_long]
    learnable = [s for s in options if span >= 2 * s.cycle]
    waiting = next((s for s in options if s not in learnable), None)
    if waiting is None:
        return learnable, ""
    if not learnable:  # the one seasonality asked for cannot be learned yet: none meanwhile
        learnable = [Seasonality("none", max(period.total_seconds(), 1.0))]
    needed, have = 2 * waiting.cycle / _DAY, span / _DAY
    return (
        learnable,
        f"{waiting.name} seasonality not learned yet: needs {needed:.0f} days of history, has {have:.1f}",
    )


@dataclass(frozen=True)
class Season:
    """Seasonal effects: a time-of-day profile and a day-of-week profile, combined with the level
    multiplicatively for counts (a quiet Sunday scales the whole day) or additively otherwise."""

    seasonality: Seasonality
    multiplicative: bool
    by_time: dict[int, float]
    by_day: dict[int, float]

    @property
    def neutral(self) -> float:
        return 1.0 if self.multiplicative else 0.0

    def effect(self, keys: tuple[int, int]) -> float:
        a, b = self.by_time.get(keys[0], self.neutral), self.by_day.get(keys[1], self.neutral)
        return a * b if self.multiplicative else a + b

    def effects(self, keys: Sequence[tuple[int, int]]) -> list[float]:
        """`effect` of every key, computed once per distinct slot."""
        per_slot = {k: self.effect(k) for k in set(keys)}
        return [per_slot[k] for k in keys]

    def combine(self, level: float, effect: float) -> float:
        return level * effect if self.multiplicative else level + effect

    def apply(self, level: float, t: float) -> float:
        return self.combine(level, self.effect(self.seasonality.keys(t)))

    def remove(self, value: float, t: float) -> float | None:
        """The value with the season taken out (None where the season is zero)."""
        return _deseason(value, self.effect(self.seasonality.keys(t)), self.multiplicative)

    @property
    def slots(self) -> int:
        return max(len(self.by_time), 1) * max(len(self.by_day), 1)


def _deseason(value: float, effect: float, multiplicative: bool) -> float | None:
    if not multiplicative:
        return value - effect
    return value / effect if effect > 0 else None


def _normalised_medians(by_key: dict[int, list[float]], multiplicative: bool) -> dict[int, float]:
    """The median per key, normalised so that the typical key is neutral."""
    medians = {k: float(median(vs)) for k, vs in by_key.items()}
    if not medians:
        return {}
    center = float(median(medians.values()))
    if multiplicative:
        return {k: m / center for k, m in medians.items()} if center > 0 else {k: 1.0 for k in medians}
    return {k: m - center for k, m in medians.items()}


def _fit_season(
    keys: Sequence[tuple[int, int]], values: Sequence[float], seasonality: Seasonality, multiplicative: bool
) -> Season:
    """Time-of-day medians, then day-of-week medians of what the first leaves (twice when both
    are in play, so each settles against the other)."""
    empty = Season(seasonality, multiplicative, {}, {})
    level = float(median(values))
    if seasonality.name == "none" or (multiplicative and level <= 0):
        return empty
    by_day: dict[int, float] = {}
    by_time: dict[int, float] = {}
    neutral = empty.neutral
    times = [k[0] for k in keys]
    days = [k[1] for k in keys]
    with_time = seasonality.slot_width < _DAY
    with_day = seasonality.name in ("weekly", "monthly")

    def members(own: list[int]) -> dict[int, list[int]]:
        """The indices of the points in each slot of `own`."""
        grouped: dict[int, list[int]] = defaultdict(list)
        for i, k in enumerate(own):
            grouped[k].append(i)
        return grouped

    by_time_slot = members(times) if with_time else {}
    by_day_slot = members(days) if with_day else {}

    def given(
        own: dict[int, list[int]], other: list[int], other_profile: dict[int, float]
    ) -> dict[int, float]:
        """The profile over the `own` slots of what the level and the other profile leave (the level
        scaled by the other profile is computed once per slot of it, not once per point)."""
        scaled = {k: empty.combine(level, other_profile.get(k, neutral)) for k in set(other)}
        if multiplicative:  # _deseason, written out: it runs for every point
            ratios = {
                k: [values[i] / e for i in idx if (e := scaled[other[i]]) > 0] for k, idx in own.items()
            }
        else:
            ratios = {k: [values[i] - scaled[other[i]] for i in idx] for k, idx in own.items()}
        return _normalised_medians({k: r for k, r in ratios.items() if r}, multiplicative)

    for _ in range(2 if with_time and with_day else 1):
        if with_time:
            by_time = given(by_time_slot, days, by_day)
        if with_day:
            by_day = given(by_day_slot, times, by_time)
    return Season(seasonality, multiplicative, by_time, by_day)


@dataclass(frozen=True)
class Baseline:
    """expected(t) = season(level + slope * (t - t_ref), t); noise sigma * |expected| ** power.

    Times are epoch seconds."""

    season: Season
    level: float
    slope: float  # per second
    t_ref: float
    sigma: float  # robust scale of residuals / |expected| ** power (before any noise floor)
    power: float  # how noise grows with the level: 0 constant, 0.5 Poisson-like, 1 proportional
    counts: bool
    points: int
    # how well the baseline explains the data: the mean absolute residual (in noise units, widened),
    # not a median: a seasonal effect on a minority of points (weekends are 2 days in 7) leaves the
    # median residual alone but not the mean
    typical_scale: float
    # counts: robust scale of log((value + 1) / (expected + 1)), the noise on the log scale, for
    # relative (multiplicative) noise; 0 when not measured
    log_sigma: float = 0.0
    # the noise of each time-of-day slot relative to the series' (busy hours may be noisier than
    # their level alone says), shrunk towards 1 where a slot has few points; empty: the same everywhere
    slot_noise: dict[int, float] = field(default_factory=dict)
    slot_log_noise: dict[int, float] = field(default_factory=dict)

    @property
    def seasonality(self) -> Seasonality:
        return self.season.seasonality

    def trend(self, t: float) -> float:
        """The deseasoned level at `t`."""
        return self.level + self.slope * (t - self.t_ref)

    def expected(self, t: float) -> float:
        return self.season.apply(self.trend(t), t)

    def slot_factors(self, t: float) -> tuple[float, float]:
        """(noise, log-scale noise) of `t`'s time-of-day slot relative to the series' own."""
        if not self.slot_noise:
            return 1.0, 1.0
        slot = self.season.seasonality.keys(t)[0]
        return self.slot_noise.get(slot, 1.0), self.slot_log_noise.get(slot, 1.0)

    def at(self, t: float) -> tuple[float, float, bool]:
        """(expected, scale, poisson_dominated) at `t`, with the season looked up once."""
        mu = self.expected(t)
        model = self.sigma * max(abs(mu), 1.0) ** self.power
        if self.slot_noise:
            model *= self.slot_factors(t)[0]
        poisson = math.sqrt(max(abs(mu), 1.0))
        if self.counts:
            # never less noisy than Poisson: 3 rows instead of 7 in a small table is not news
            return mu, max(model, poisson), model <= poisson
        return mu, max(model, 1e-9 * max(abs(mu), 1.0)), False

    def expected_many(self, secs: Sequence[float], keys: Sequence[tuple[int, int]]) -> list[float]:
        """`expected` of every time in `secs` (whose seasonal keys are `keys`), the same arithmetic
        with the season looked up once per distinct slot."""
        effects = self.season.effects(keys)
        combine, trend = self.season.combine, self.trend
        return [combine(trend(t), e) for t, e in zip(secs, effects, strict=True)]

    def at_many(self, secs: Sequence[float]) -> tuple[list[float], list[float]]:
        """(expected, scale) of every time in `secs`: `at`'s arithmetic, with the season looked up
        once per distinct slot."""
        keys = self.season.seasonality.keys_of(secs)
        expected = self.expected_many(secs, keys)
        scales = []
        for (slot, _), mu in zip(keys, expected, strict=True):
            size = max(abs(mu), 1.0)
            model = (
                self.sigma * size**self.power * (self.slot_noise.get(slot, 1.0) if self.slot_noise else 1.0)
            )
            if self.counts:
                scales.append(max(model, math.sqrt(size)))
            else:
                scales.append(max(model, 1e-9 * size))
        return expected, scales

    def without_trend(self, secs: Sequence[float], values: Sequence[float]) -> Baseline:
        """The same season around the median deseasoned level of (`secs`, `values`), flat: what the
        series looks like to a baseline that does not take a step for a trend."""
        effects = self.season.effects(self.seasonality.keys_of(secs))
        multiplicative = self.season.multiplicative
        deseasoned = [
            d
            for v, e in zip(values, effects, strict=True)
            if (d := _deseason(v, e, multiplicative)) is not None
        ]
        if not deseasoned:
            return replace(self, slope=0.0)
        return replace(self, level=float(median(deseasoned)), slope=0.0)

    def mean_error(self, secs: Sequence[float], values: Sequence[float]) -> float:
        """How far `values` lie from this baseline on average: on the log scale for counts (so that
        baselines at different levels compare), else in the series' units."""
        fitted = self.expected_many(secs, self.seasonality.keys_of(secs))
        if self.counts:
            errors = [
                abs(math.log((max(v, 0.0) + 1) / (max(f, 0.0) + 1)))
                for v, f in zip(values, fitted, strict=True)
            ]
        else:
            errors = [abs(v - f) for v, f in zip(values, fitted, strict=True)]
        return math.fsum(errors) / max(len(errors), 1)

    def scale(self, t: float) -> float:
        """The standard deviation to expect at `t` (never zero)."""
        return self.at(t)[1]

    def poisson_dominated(self, t: float) -> bool:
        """Counts whose noise is no more than Poisson's at `t` (small counts, mostly)."""
        return self.at(t)[2]

    def shifted(self, offset: float, sigma: float) -> Baseline:
        """The same shape around a level moved by `offset` (in the units of the deseasoned level)."""
        return replace(self, level=self.level + offset, sigma=max(self.sigma, sigma))

    def as_day(self, day: int) -> Baseline:
        """The same baseline with every day of the week shaped like `day` (0 = Monday): a holiday
        judged as a Sunday. Unchanged when the season has no day-of-week part."""
        season = self.season
        if not season.by_day or season.seasonality.name != "weekly":
            return self
        effect = season.by_day.get(day, season.neutral)
        return replace(self, season=replace(season, by_day=dict.fromkeys(range(7), effect)))

    def scaled(self, factor: float) -> Baseline:
        """Counts (multiplicative): every expected value times `factor`; otherwise moved by `factor`."""
        if self.season.multiplicative:
            return replace(self, level=self.level * factor, slope=self.slope * factor)
        return replace(self, level=self.level + factor)

    def residual_unit(self, t: float) -> float:
        """What one unit of `sigma` is worth at `t`."""
        return max(abs(self.expected(t)), 1.0) ** self.power


def _trend(secs: Sequence[float], values: Sequence[float], sigma: float, cycle: float) -> float:
    """A slope from the medians of the first and last thirds, kept only when the history spans
    several seasonal cycles (else part of a cycle looks like a trend), the middle third lies on
    the line (a step change is not a trend) and the change stands out of the noise."""
    n = len(values)
    if n < 9 or secs[-1] - secs[0] < _TREND_MIN_CYCLES * max(cycle, _DAY):
        return 0.0
    third = n // 3
    m1, m2, m3 = median(values[:third]), median(values[third : n - third]), median(values[n - third :])
    t1, t3 = median(secs[:third]), median(secs[n - third :])
    change = m3 - m1
    if t3 <= t1 or abs(change) < 3 * sigma * math.sqrt(math.pi / third):
        return 0.0
    if abs(m2 - (m1 + m3) / 2) > _TREND_LINEARITY * abs(change):
        return 0.0
    return float(change / (t3 - t1))


def _noise_power(fitted: Sequence[float], residuals: Sequence[float], counts: bool) -> float:
    """How the noise grows with the level, from the spread of residuals at low and high levels:
    sigma_high / sigma_low = (level_high / level_low) ** power. Counts default to Poisson (0.5)."""
    default = 0.5 if counts else 0.0
    if len(fitted) < 20:
        return default
    magnitudes = [1.0 if m < 1.0 else m for m in map(abs, fitted)]  # max(|f|, 1.0), without a call
    if max(magnitudes) < _NOISE_LEVEL_RATIO * min(magnitudes):
        return default  # no two halves can differ enough in level (the check below, decided early)
    order = sorted(range(len(fitted)), key=fitted.__getitem__)
    half = len(order) // 2
    low, high = order[:half], order[half:]
    level_low = median([magnitudes[i] for i in low])
    level_high = median([magnitudes[i] for i in high])
    if level_high < _NOISE_LEVEL_RATIO * level_low:
        return default
    spread_low = robust_sigma([residuals[i] for i in low])
    spread_high = robust_sigma([residuals[i] for i in high])
    if spread_low <= 0 or spread_high <= 0:
        return default
    return min(1.0, max(0.0, math.log(spread_high / spread_low) / math.log(level_high / level_low)))


def _widening(points: int, season: Season) -> float:
    """Residuals from in-sample medians understate the error of a prediction (the medians themselves
    are uncertain with few points per slot): the factor that widens their scale accordingly."""
    per_slot = points / season.slots
    return math.sqrt((1 + math.pi / (2 * per_slot)) / max(1 - 1 / per_slot, 0.5)) if per_slot > 1 else 2.0


def _fit_error(raw: Sequence[float], units: Sequence[float], season: Season) -> float:
    """How well a season explains the data, comparable across seasonalities: the mean absolute
    residual in noise units, as a standard deviation, widened for the uncertainty of the profiles'
    medians. A median residual would not do: a seasonal effect on a minority of points (weekends,
    2 days in 7) leaves it alone. The profiles are estimated separately (24 time-of-day medians and
    7 day-of-week medians, not 168 slots), so each contributes its own uncertainty."""
    n = len(raw)
    share = sum(len(profile) / n for profile in (season.by_time, season.by_day) if profile)
    mean_abs = math.fsum(abs(r) / u for r, u in zip(raw, units, strict=True)) / n
    return _MEAN_ABS_TO_SIGMA * mean_abs * math.sqrt(1 + math.pi / 2 * share)


def fit_baseline(
    secs: Sequence[float],
    values: Sequence[float],
    seasonality: Seasonality,
    *,
    counts: bool,
    keys: Sequence[tuple[int, int]] | None = None,
    judging: bool = True,
) -> Baseline:
    """Fit on (epoch seconds, values), oldest first; at least one point. `keys`: the points'
    seasonal keys, when the caller has them already. `judging`: also measure the noise per time-of-day
    slot and, for counts, on the log scale (only a baseline that judges needs them, not the candidates
    compared)."""
    if keys is None:
        keys = seasonality.keys_of(secs)
    season = _fit_season(keys, values, seasonality, multiplicative=counts)
    effects = season.effects(keys)
    # the same arithmetic as _deseason and Season.combine, written out: these run for every point
    multiplicative = season.multiplicative
    trend_secs: Sequence[float] = secs
    if not multiplicative:
        deseasoned = [v - e for v, e in zip(values, effects, strict=True)]
    elif all(e > 0 for e in effects):  # the usual case: every point deseasons
        deseasoned = [v / e for v, e in zip(values, effects, strict=True)]
    else:
        kept = [i for i, e in enumerate(effects) if e > 0]
        trend_secs, deseasoned = [secs[i] for i in kept], [values[i] / effects[i] for i in kept]
        if not kept:
            trend_secs, deseasoned = secs, list(values)
    slope = _trend(trend_secs, deseasoned, robust_sigma(deseasoned), seasonality.cycle)
    t_ref = secs[-1]
    level = float(median([d - slope * (t - t_ref) for t, d in zip(trend_secs, deseasoned, strict=True)]))
    if multiplicative:
        fitted = [(level + slope * (t - t_ref)) * e for t, e in zip(secs, effects, strict=True)]
    else:
        fitted = [(level + slope * (t - t_ref)) + e for t, e in zip(secs, effects, strict=True)]
    raw = [v - f for v, f in zip(values, fitted, strict=True)]
    power = _noise_power(fitted, raw, counts)
    unit_of = {f: max(abs(f), 1.0) ** power for f in set(fitted)}  # few distinct levels without a trend
    units = [unit_of[f] for f in fitted]
    widen = _widening(len(values), season)
    scaled = [r / u for r, u in zip(raw, units, strict=True)]
    sigma = robust_sigma(scaled) * widen
    baseline = Baseline(
        season,
        level,
        slope,
        t_ref,
        sigma,
        power,
        counts,
        len(values),
        _fit_error(raw, units, season) * float(median(units)),
    )
    if not judging:
        return baseline
    return _with_judging_noise(baseline, keys, values, fitted, scaled)


def _supported(seasonality: Seasonality, secs: Sequence[float], keys: Sequence[tuple[int, int]]) -> bool:
    """Two cycles of history, and enough points per time-of-day (or day-of-week) slot for medians."""
    if seasonality.name == "none":
        return True
    per_slot = len(secs) / max(len({k[0] for k in keys}), len({k[1] for k in keys}))
    return secs[-1] - secs[0] >= 2 * seasonality.cycle and per_slot >= _MIN_POINTS_PER_SLOT


def choose_baseline(
    secs: Sequence[float], values: Sequence[float], options: Sequence[Seasonality], *, counts: bool
) -> Baseline:
    """Fit every seasonality in `options` (simplest first) the data supports and keep the simplest
    one that the next richer one does not beat by a clear margin. Baselines compare by their
    unfloored noise scale (a count noise floor would hide the difference on small counts)."""
    best: Baseline | None = None
    for seasonality in options:
        if best is not None and secs[-1] - secs[0] < 2 * seasonality.cycle:
            continue  # what _supported would say, known before computing any keys
        keys = seasonality.keys_of(secs)
        if best is not None and not _supported(seasonality, secs, keys):
            continue
        candidate = fit_baseline(secs, values, seasonality, counts=counts, keys=keys, judging=False)
        if best is None or candidate.typical_scale < _MIN_GAIN * best.typical_scale:
            best = candidate
    assert best is not None
    # the winner's noise per slot and on the log scale, measured once (candidates compare without it)
    keys = best.seasonality.keys_of(secs)
    fitted = best.expected_many(secs, keys)
    unit_of = {f: max(abs(f), 1.0) ** best.power for f in set(fitted)}
    scaled = [(v - f) / unit_of[f] for v, f in zip(values, fitted, strict=True)]
    return _with_judging_noise(best, keys, values, fitted, scaled)


_SLOT_NOISE_MIN_POINTS = 14  # a time-of-day slot's own noise is measured from this many points on
_SLOT_NOISE_PRIOR = 14  # ... and shrunk towards the series' noise as if it had this many more


def _slot_factors(keys: Sequence[tuple[int, int]], errors: Sequence[float]) -> dict[int, float]:
    """Each time-of-day slot's robust noise scale relative to all slots', shrunk towards 1."""
    overall = robust_sigma(errors)
    if overall <= 0:
        return {}
    by_slot: dict[int, list[float]] = defaultdict(list)
    for k, e in zip(keys, errors, strict=True):
        by_slot[k[0]].append(e)
    if len(by_slot) < 2 or min(map(len, by_slot.values())) < _SLOT_NOISE_MIN_POINTS:
        return {}
    factors = {}
    for slot, own in by_slot.items():
        n = len(own)
        variance = (n * robust_sigma(own) ** 2 + _SLOT_NOISE_PRIOR * overall**2) / (n + _SLOT_NOISE_PRIOR)
        factors[slot] = math.sqrt(variance) / overall
    return factors


def _with_judging_noise(
    baseline: Baseline,
    keys: Sequence[tuple[int, int]],
    values: Sequence[float],
    fitted: Sequence[float],
    scaled: Sequence[float],
) -> Baseline:
    """What only the baseline that judges needs: the noise of each time-of-day slot (where the
    history holds enough points per slot) and, for counts, the noise on the log scale."""
    slot_noise: dict[int, float] = {}
    slot_log_noise: dict[int, float] = {}
    log_sigma = 0.0
    if baseline.season.by_time:
        slot_noise = _slot_factors(keys, scaled)
    if baseline.counts:
        kept = [(k, v, f) for k, v, f in zip(keys, values, fitted, strict=True) if v >= 0 and f >= 0]
        ratios = [math.log((v + 1) / (f + 1)) for _, v, f in kept]
        log_sigma = (robust_sigma(ratios) if ratios else 0.0) * _widening(len(values), baseline.season)
        if slot_noise:
            slot_log_noise = _slot_factors([k for k, _, _ in kept], ratios)
    return replace(baseline, log_sigma=log_sigma, slot_noise=slot_noise, slot_log_noise=slot_log_noise)


def _profile(d: dict[int, float]) -> list[list[float]]:
    return [[k, v] for k, v in sorted(d.items())]


def _unprofile(rows: Sequence[Sequence[float]]) -> dict[int, float]:
    return {int(k): float(v) for k, v in rows}


def baseline_to_json(b: Baseline) -> dict[str, Any]:
    """`b` as plain JSON (a fitted state kept with its series); `baseline_from_json` reads it back
    equal, field for field."""
    season = b.season
    return {
        "seasonality": [season.seasonality.name, season.seasonality.slot_width],
        "multiplicative": season.multiplicative,
        "by_time": _profile(season.by_time),
        "by_day": _profile(season.by_day),
        "level": b.level,
        "slope": b.slope,
        "t_ref": b.t_ref,
        "sigma": b.sigma,
        "power": b.power,
        "counts": b.counts,
        "points": b.points,
        "typical_scale": b.typical_scale,
        "log_sigma": b.log_sigma,
        "slot_noise": _profile(b.slot_noise),
        "slot_log_noise": _profile(b.slot_log_noise),
    }


def baseline_from_json(data: Mapping[str, Any]) -> Baseline:
    """The baseline `baseline_to_json` wrote (KeyError, TypeError or ValueError on anything else)."""
    name, width = data["seasonality"]
    season = Season(
        Seasonality(str(name), float(width)),
        bool(data["multiplicative"]),
        _unprofile(data["by_time"]),
        _unprofile(data["by_day"]),
    )
    return Baseline(
        season,
        float(data["level"]),
        float(data["slope"]),
        float(data["t_ref"]),
        float(data["sigma"]),
        float(data["power"]),
        bool(data["counts"]),
        int(data["points"]),
        float(data["typical_scale"]),
        float(data["log_sigma"]),
        _unprofile(data["slot_noise"]),
        _unprofile(data["slot_log_noise"]),
    )
