"""The robust seasonal strategy: volume series and column metrics are judged by it.

Out of sample (the judged value is never in its own baseline), robust (medians and MAD), with
a noise floor for counts, a minimum effect size, a direction, and level-shift adoption: when
the last `level_shift_confirm_runs` points all sat beyond the band on the same side, the
shifted level is the new normal and stops alerting.
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from statistics import median
from typing import Any, Literal

from driftguard.config import DetectionSettings
from driftguard.detect.baseline import (
    Baseline,
    Seasonality,
    baseline_from_json,
    baseline_to_json,
    candidate_seasonalities,
    choose_baseline,
    fit_baseline,
    learnable_seasonalities,
)
from driftguard.detect.calendar import Calendar, calendar_of
from driftguard.detect.stats import (
    POISSON_EXACT_MAX_MEAN,
    negbin_bounds,
    negbin_cdf,
    normal_sf,
    poisson_bounds,
    poisson_cdf,
    typical_gap,
    z_of_tail,
)
from driftguard.detect.strategy import Judgement
from driftguard.model import FindingStatus, MetricPoint, PointLabel

_RELATIVE_NOISE_POWER = 0.75  # noise growing at least this fast with the level is judged on a log scale
_WIDE_NOISE = 0.5  # so is count noise whose band (sensitivity x scale) spans this share of the level
_MAX_LOG_REACH = 50.0  # a band on the log scale reaches at most e**50 times the expected count
_SUSTAINED_MIN_Z = 1.0  # a run of deviations is judged only while the newest value still deviates
_SEGMENT_SHARE = 0.75  # share of a shifted segment that must sit on the shifted side
_MEDIAN_EFFICIENCY = math.sqrt(math.pi / 2)
_STEP_MIN_GAIN = 0.97  # a step taken for a trend must explain the window 3% better than the trend
_RECENT_LEVEL_RUNS = 2  # the adopted level: median of this many confirmation lengths of newest points
_SEGMENT_GROWTH = 1.5  # segment lengths tried grow geometrically: bounded work per judgement
MAX_TRAINING_POINTS = 3000  # bounds the work per judgement; a window of hourly points for 4 months
_REFIT_SHARE = 1 / 28  # a kept fit is fitted again once this share of the training window passed (2 days)
_MIN_REUSE_PERIODS = 24  # ... for series with at least this many points in that time (hourly, finer)
_REUSE_MAX_Z_SHARE = 0.6  # a kept fit judges only values within this share of `sensitivity`
_REUSE_MAX_BAND = 10.0  # nor a band wider than this many times the expected value
_REUSE_TAIL = 2  # a reused judgement reads this many times `level_shift_confirm_runs` newest points
# enum members looked up once: `PointLabel.X` costs an Enum class lookup per point otherwise
_CLEAN = PointLabel.NONE
_TRAINABLE = (PointLabel.NONE, PointLabel.ANOMALY)  # labels whose points a baseline may learn from


NoiseShape = Literal["normal", "poisson", "negbin", "relative"]


@dataclass(frozen=True)
class Band:
    expected: float
    lower: float
    upper: float
    scale: float
    # "poisson": small counts, exact Poisson tails; "relative": noise proportional to the level,
    # judged on the log scale (a spike to 3x is as unusual as a drop to 1/3); else normal
    shape: NoiseShape
    relative_sigma: float = 0.0

    def z(self, value: float) -> float:
        """How unusual `value` is, as the normal z-score of the same one-sided tail chance."""
        if self.shape == "poisson":
            return poisson_z(value, self.expected)
        if self.shape == "negbin":
            return negbin_z(value, self.expected, self.scale**2)
        if self.shape == "relative":
            return abs(math.log((max(value, 0.0) + 1) / (max(self.expected, 0.0) + 1))) / self.relative_sigma
        return abs(value - self.expected) / self.scale


def poisson_z(value: float, mean: float) -> float:
    if value > mean:
        return z_of_tail(1.0 - poisson_cdf(math.ceil(value) - 1, mean))
    if value < mean:
        return z_of_tail(poisson_cdf(math.floor(value), mean))
    return 0.0


def negbin_z(value: float, mean: float, variance: float) -> float:
    if value > mean:
        return z_of_tail(1.0 - negbin_cdf(math.ceil(value) - 1, mean, variance))
    if value < mean:
        return z_of_tail(negbin_cdf(math.floor(value), mean, variance))
    return 0.0


def band_of(baseline: Baseline, t: float, settings: DetectionSettings, *, floor_zero: bool) -> Band:
    """The range of values that are not anomalous at epoch second `t`."""
    expected, scale, poisson_dominated = baseline.at(t)
    effect = max(settings.min_relative_change * abs(expected), settings.min_absolute_change)
    k = settings.sensitivity
    if poisson_dominated and 0 < expected <= POISSON_EXACT_MAX_MEAN:
        low, high = poisson_bounds(expected, normal_sf(k))
        return Band(expected, min(low, expected - effect), max(high, expected + effect), scale, "poisson")
    # overdispersed counts of a modest size: negative binomial (gamma-Poisson) with the measured
    # variance, whose skew a normal band misses and whose zero a log scale overstates
    if baseline.counts and 0 < expected <= POISSON_EXACT_MAX_MEAN:
        low, high = negbin_bounds(expected, scale * scale, normal_sf(k))
        return Band(expected, min(low, expected - effect), max(high, expected + effect), scale, "negbin")
    # relative noise: judged on the log scale, where it is symmetric. So is noise so wide that the
    # normal band would reach below half the expected count: a count's noise that wide is skewed
    # (it cannot go below zero), so on a linear scale its long upper tail would alert and a drop to
    # nothing would pass
    if (
        baseline.counts
        and expected > 0
        and (baseline.power >= _RELATIVE_NOISE_POWER or k * scale >= _WIDE_NOISE * expected)
    ):
        sigma = max(scale / (expected + 1), baseline.log_sigma * baseline.slot_factors(t)[1])
        reach = min(k * sigma, _MAX_LOG_REACH)  # noise this wide bounds nothing: kept finite
        low, high = (expected + 1) * math.exp(-reach) - 1, (expected + 1) * math.exp(reach) - 1
        return Band(
            expected, min(low, expected - effect), max(high, expected + effect), scale, "relative", sigma
        )
    half = max(k * scale, effect)
    lower = expected - half
    return Band(expected, max(lower, 0.0) if floor_zero else lower, expected + half, scale, "normal")


def describe_noise(band: Band) -> str:
    """The noise model behind `band`, as an explanation states it."""
    if band.shape == "poisson":
        return "Poisson counts (exact tails)"
    if band.shape == "negbin":
        return f"negative binomial counts, variance {band.scale**2 / band.expected:.1f}x a Poisson count's"
    if band.shape == "relative":
        return f"relative noise of {band.relative_sigma:.1%} (judged on the log scale)"
    if band.expected > 0 and band.scale**2 > band.expected:
        return f"overdispersed counts: variance {band.scale**2 / band.expected:.1f}x a Poisson count's"
    return f"normal noise, standard deviation {band.scale:.4g}"


_SUNDAY = 6
_MIN_PAST_HOLIDAY_POINTS = 2  # a holiday's own level needs at least this many past holiday periods


def _holiday_baseline(baseline: Baseline, past: Sequence[MetricPoint], name: str) -> tuple[Baseline, str]:
    """A holiday is judged as a Sunday, scaled to how past holidays in the training window compared
    with their Sundays' expectation when there were any."""
    as_sunday = baseline.as_day(_SUNDAY)
    kind = "judged as a Sunday" if as_sunday is not baseline else "judged as an ordinary day"
    if len(past) < _MIN_PAST_HOLIDAY_POINTS:
        return as_sunday, f"{name}: {kind} (no past holiday in the training window)"
    expected = [(p.value, as_sunday.expected(p.ts.timestamp())) for p in past]
    if as_sunday.season.multiplicative:
        ratios = [v / e for v, e in expected if e > 0]
        factor = float(median(ratios)) if ratios else 1.0
    else:
        factor = float(median(v - e for v, e in expected))
    days = len({p.ts.date() for p in past})
    plural = "s" if days > 1 else ""
    return as_sunday.scaled(factor), f"{name}: judged against {days} past holiday{plural} ({kind}, adjusted)"


def _nearer(value: float, new: float, old: float, counts: bool) -> bool:
    """Whether `value` is nearer the level `new` than the level `old` (for counts on the log scale)."""
    if counts:
        value, new, old = (math.log(max(x, 0.0) + 1.0) for x in (value, new, old))
    return abs(value - new) < abs(value - old)


def _outside(band: Band, value: float) -> int:
    """+1 above the band, -1 below it, 0 inside."""
    return 1 if value > band.upper else -1 if value < band.lower else 0


@dataclass(frozen=True)
class LevelShift:
    """A lasting change of level found in the newest points of a history.

    The newest `length` points (from `since` on) sit at a level that differs from the older points'
    by `ratio` (multiplicative seasons: counts) or by `offset` (additive ones), beyond the noise of
    both medians (`score`, a z-score) and beyond the minimum effect size."""

    since: datetime
    length: int
    multiplicative: bool
    ratio: float  # new level / old level (multiplicative)
    offset: float  # new level - old level, in the series' units at the newest point
    score: float
    alerted: bool  # a point of the new level (or just before it) alerted already
    noise_power: float = 1.0  # how the noise grows with the level (multiplicative)

    @property
    def direction(self) -> str:
        up = self.ratio > 1.0 if self.multiplicative else self.offset > 0
        return "spike" if up else "drop"

    def relevel(self, value: float, expected: float) -> float:
        """A value from before the shift (whose expectation was `expected`), moved to the new level:
        counts keep their noise as it would be at the new level (it grows with the level to the
        power `noise_power`), so that the noise is measured right after a move to a quieter level."""
        if not self.multiplicative:
            return value + self.offset
        return expected * self.ratio + (value - expected) * self.ratio**self.noise_power

    def undo(self, baseline: Baseline) -> Baseline:
        """`baseline` (fitted at the new level) moved back to the level before the shift."""
        if self.multiplicative:
            return baseline.scaled(1.0 / self.ratio) if self.ratio > 0 else baseline
        return baseline.scaled(-self.offset)

    def describe(self) -> str:
        change = f"{self.ratio - 1.0:+.0%}" if self.multiplicative else f"{self.offset:+.4g}"
        return (
            f"new level since {self.since:%Y-%m-%d %H:%M}: a level shift of {change} that lasted "
            f"{self.length} periods"
        )


def _shift_lengths(first: int, last: int) -> list[int]:
    """Segment lengths tried: geometric from `first`, and `last` itself (bounded work per judgement)."""
    lengths = []
    length = first
    while length < last:
        lengths.append(length)
        length = max(length + 1, int(length * _SEGMENT_GROWTH))
    return [*lengths, last] if last >= first else lengths


def midranks(values: Sequence[float]) -> list[float]:
    """The rank of each value (1 = smallest); tied values share the mean of their ranks."""
    order = sorted(range(len(values)), key=values.__getitem__)
    ranks = [0.0] * len(values)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        for k in range(i, j + 1):
            ranks[order[k]] = (i + j) / 2 + 1
        i = j + 1
    return ranks


def find_level_shift(
    baseline: Baseline,
    usable: Sequence[MetricPoint],
    settings: DetectionSettings,
    secs: Sequence[float] | None = None,
) -> LevelShift | None:
    """The newest segment of at least `level_shift_confirm_runs` points whose level differs clearly
    from the older points', or None.

    Each point's residual from `baseline`, in noise units, is a score. A segment of the newest
    points is a shift when its scores rank apart from the older points' (a Mann-Whitney test, which
    needs no noise model: a baseline learned from a mix of two levels gets the noise wrong) beyond
    `sensitivity`, Bonferroni-corrected for the segment lengths tried; when its older and newer
    halves both rank on the shifted side (a change that crossed back, or only just began, is not a
    level); when the change exceeds the minimum effect size; and when it is not an outage (mostly
    empty periods never become normal). The change point is then placed where the most points lie
    on their own side of the midpoint between the two levels. `secs`: the points' epoch seconds,
    when the caller has them."""
    runs = settings.level_shift_confirm_runs
    n = len(usable)
    min_old = max(runs, settings.min_points)
    lengths = _shift_lengths(runs, n - min_old)
    if not lengths:
        return None
    multiplicative = baseline.season.multiplicative
    newest_first = list(reversed(usable))
    forward = baseline.at_many(secs if secs is not None else [p.ts.timestamp() for p in usable])
    expected, scales = forward[0][::-1], forward[1][::-1]
    scores = [(p.value - mu) / s for p, mu, s in zip(newest_first, expected, scales, strict=True)]
    # rank sums of the newest k points, k = 0..n: every test below reads them
    prefix = [0.0, *itertools.accumulate(midranks(scores))]
    mean_rank = (n + 1) / 2
    threshold = z_of_tail(normal_sf(settings.sensitivity) / len(lengths))
    longest = -1  # index of the longest segment that passed
    strongest = (0.0, 0)  # |z|, length of the segment that ranks apart most
    direction = 0.0
    for index, length in enumerate(lengths):
        rest = n - length
        z = (prefix[length] - length * mean_rank) / math.sqrt(length * rest * (n + 1) / 12)
        if abs(z) <= threshold:
            continue
        side = 1.0 if z > 0 else -1.0
        if direction and side != direction:
            break  # the other way round: an older change, seen through a newer one
        # the midpoint between the segment's mean rank and the older points'
        midpoint = (prefix[length] / length + (prefix[n] - prefix[length]) / rest) / 2
        half = length // 2
        newer, older = prefix[half] / half, (prefix[length] - prefix[half]) / (length - half)
        if (newer - midpoint) * side <= 0 or (older - midpoint) * side <= 0:
            continue  # not one level: the change crossed back, or only its newest part moved
        longest, direction = index, side
        strongest = max(strongest, (abs(z), length))
    if longest < 0:
        return None
    # the change point: where the most points lie on their own side of the midpoint between the two
    # levels of the strongest segment, up to the first length tried beyond the longest that passed
    # (on the log scale for counts: a residual in noise units is smaller in quiet hours than in busy
    # ones for the same change of level, so quiet hours at the new level would look old)
    if multiplicative:
        place = [
            math.log((max(p.value, 0.0) + 1) / (max(mu, 0.0) + 1))
            for p, mu in zip(newest_first, expected, strict=True)
        ]
    else:
        place = [p.value - mu for p, mu in zip(newest_first, expected, strict=True)]
    split = strongest[1]
    midpoint = (float(median(place[:split])) + float(median(place[split:]))) / 2
    high = lengths[longest + 1] if longest + 1 < len(lengths) else n - min_old
    on_new = [(x - midpoint) * direction > 0 for x in place[:high]]
    agree = best = sum(not x for x in on_new)  # all `high` points on the old side: length 0
    length = 0
    for k, x in enumerate(on_new, start=1):
        agree += 1 if x else -1
        if agree > best:
            best, length = agree, k
    if length < runs:
        return None  # the new level has not lasted `level_shift_confirm_runs` periods yet
    if multiplicative:
        levels = [p.value / mu if mu > 0 else 1.0 for p, mu in zip(newest_first, expected, strict=True)]
    else:
        levels = place
    z = abs(prefix[length] - length * mean_rank) / math.sqrt(length * (n - length) * (n + 1) / 12)
    segment = usable[n - length :]
    if sum(p.value == 0 for p in segment) >= _SEGMENT_SHARE * length:
        return None  # an outage is never the new normal
    # the new level is where the segment is now: its newer half (a drift may still be moving), or as
    # many points as confirm it twice over when that half is shorter
    newest = min(length, max(_RECENT_LEVEL_RUNS * runs, length // 2))
    new_level, old_level = float(median(levels[:newest])), float(median(levels[length:]))
    at_newest = baseline.expected(usable[-1].ts.timestamp())
    if multiplicative:
        if old_level <= 0:
            return None
        ratio = new_level / old_level
        offset = (ratio - 1.0) * old_level * at_newest
        before = old_level * at_newest
    else:
        ratio, offset, before = 1.0, new_level - old_level, at_newest + old_level
    if abs(offset) <= max(settings.min_relative_change * abs(before), settings.min_absolute_change):
        return None
    # alerted already: in the segment, or as long again before it (the start of a ramp, or a change
    # point placed a little late by noise)
    alerted = any(p.label == PointLabel.ANOMALY for p in usable[max(0, n - 2 * length) :])
    return LevelShift(segment[0].ts, length, multiplicative, ratio, offset, z, alerted, baseline.power)


@functools.lru_cache(maxsize=256)
def fingerprint(
    counts: bool, non_negative: bool, period: timedelta | None, settings: DetectionSettings
) -> str:
    """What a fit was made under (the strategy and every detection setting): a fit made under other
    settings is never reused. Remembered per settings (a frozen model, hashable by its fields)."""
    text = f"{counts}|{non_negative}|{period}|{settings.model_dump_json()}"
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Fitted:
    """What a full judgement fitted, kept with its series: the next values that are plainly normal
    under it are judged without reading the training window again (`SeasonalStrategy.reuse`).

    It is fitted again after `_REFIT_SHARE` of the training window (two days by default), under other
    settings, on a holiday, and whenever a value is not plainly normal under it (beyond 60% of
    `sensitivity`, an empty period, or part of a run of deviations): every value that could alert is
    judged by a full fit on the whole window, as it always was."""

    baseline: Baseline
    at: float  # epoch seconds of the judgement that fitted it
    fingerprint: str
    training_start: datetime
    training_end: datetime
    training_points: int
    note: str = ""  # the level shift it adopted, said again while it is reused
    calendar: str = ""
    waiting: str = ""  # a seasonality the history was too short for
    shift_since: float | None = None  # epoch seconds: the start of the level shift it adopted
    learns_at: float | None = None  # epoch seconds: when the history becomes long enough for `waiting`
    period: float = 0.0  # seconds between the series' points, as the fit took it

    def to_json(self) -> dict[str, Any]:
        return {
            "baseline": baseline_to_json(self.baseline),
            "at": self.at,
            "fingerprint": self.fingerprint,
            "training": [
                self.training_start.timestamp(),
                self.training_end.timestamp(),
                self.training_points,
            ],
            "note": self.note,
            "calendar": self.calendar,
            "waiting": self.waiting,
            "shift_since": self.shift_since,
            "learns_at": self.learns_at,
            "period": self.period,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Fitted | None:
        """The fit `to_json` wrote; None for anything else (an older or damaged state is fitted again,
        never trusted)."""
        try:
            start, end, points = data["training"]
            shift_since, learns_at = data.get("shift_since"), data.get("learns_at")
            return cls(
                baseline_from_json(data["baseline"]),
                float(data["at"]),
                str(data["fingerprint"]),
                datetime.fromtimestamp(float(start), UTC),
                datetime.fromtimestamp(float(end), UTC),
                int(points),
                str(data.get("note", "")),
                str(data.get("calendar", "")),
                str(data.get("waiting", "")),
                None if shift_since is None else float(shift_since),
                None if learns_at is None else float(learns_at),
                float(data.get("period", 0.0)),
            )
        except (KeyError, TypeError, ValueError, AttributeError):
            return None


def _trainable(
    points: Sequence[MetricPoint], at: datetime, settings: DetectionSettings, calendar: Calendar | None
) -> tuple[list[MetricPoint], list[MetricPoint]]:
    """The points of `at`'s training window a baseline may learn from (the newest
    MAX_TRAINING_POINTS), holidays left out, and the clean holidays left out: holidays reshape whole
    days, so ordinary days learn without them and holidays are judged apart."""
    start = at - settings.training_window
    usable = [p for p in points if start <= p.ts < at and p.label in _TRAINABLE][-MAX_TRAINING_POINTS:]
    if calendar is None:
        return usable, []
    names = calendar.holidays_of([p.ts.timestamp() for p in usable])
    holidays = [p for p, n in zip(usable, names, strict=True) if n is not None and p.label == _CLEAN]
    return [p for p, n in zip(usable, names, strict=True) if n is None], holidays


def _p_value(z: float, settings: DetectionSettings) -> float:
    """The chance of a deviation this large in the learned noise (two-sided when both directions are
    watched)."""
    return min(1.0, normal_sf(z) * (2 if settings.direction == "both" else 1))


def _learns_at(
    period: timedelta, settings: DetectionSettings, learnable: Sequence[Seasonality], first: float
) -> float | None:
    """When a history starting at epoch second `first` spans two cycles of the next seasonality it
    cannot learn yet (one the training window can hold), or None when there is none."""
    window = settings.training_window.total_seconds()
    pending = [
        s.cycle
        for s in candidate_seasonalities(period, settings.seasonality)
        if s not in learnable and 0 < 2 * s.cycle <= window
    ]
    return first + 2 * min(pending) if pending else None


@dataclass(frozen=True)
class SeasonalStrategy:
    """`counts`: values are counts (Poisson noise floor); `non_negative`: values cannot go below 0."""

    counts: bool = True
    non_negative: bool = True
    period: timedelta | None = None  # None: the median gap of the history

    def judge(
        self, history: Sequence[MetricPoint], at: datetime, value: float, settings: DetectionSettings
    ) -> Judgement:
        calendar = calendar_of(settings)
        holiday = calendar.holiday(at.timestamp()) if calendar is not None else None
        usable, past_holidays = _trainable(history, at, settings, calendar)
        clean = [p for p in usable if p.label == _CLEAN]
        if len(clean) < settings.min_points:
            return Judgement(
                FindingStatus.LEARNING,
                value,
                self._method(),
                training_points=len(clean),
                needed_points=settings.min_points - len(clean),
            )
        period = self.period or typical_gap([p.ts for p in clean]) or timedelta(hours=1)
        secs = [p.ts.timestamp() for p in usable]  # once per judgement: every step below reads them
        values = [p.value for p in usable]
        options, waiting = learnable_seasonalities(
            period, settings.seasonality, secs[-1] - secs[0], settings.training_window.total_seconds()
        )
        baseline = choose_baseline(secs, values, options, counts=self.counts)
        # points that alerted stay out of training unless the baseline learned from all points (robust:
        # medians) finds them normal: they alerted before the history could tell, e.g. the first weekend
        # before a weekly rhythm was known
        kept = [
            i
            for i, p in enumerate(usable)
            if p.label == _CLEAN
            or not _outside(band_of(baseline, secs[i], settings, floor_zero=self.non_negative), p.value)
        ]
        train = [usable[i] for i in kept]
        if len(train) < len(usable):
            baseline = fit_baseline(
                [secs[i] for i in kept], [values[i] for i in kept], baseline.seasonality, counts=self.counts
            )
        unshifted = baseline
        note = ""
        shift: LevelShift | None = None
        adopted = self._adopt_level_shift(
            baseline, usable, secs, [secs[i] for i in kept], train, options, settings
        )
        adopted_note = ""
        if adopted is not None:
            shift, baseline, unshifted = adopted
            note = adopted_note = f"{shift.describe()}, adopted as the new normal"
        calendar_rule = ""
        if calendar is not None:
            calendar_rule = f"{calendar.rule} kept out of training"
            if holiday is not None:
                baseline, calendar_rule = _holiday_baseline(baseline, past_holidays, holiday)
                unshifted = baseline  # judged on its own terms: no ordinary-day shift applies
                note = f"{note}; {calendar_rule}" if note else calendar_rule
        band = band_of(baseline, at.timestamp(), settings, floor_zero=self.non_negative)
        deviation = value - band.expected
        direction = "drop" if deviation < 0 else "spike" if deviation > 0 else None
        watched = settings.direction == "both" or settings.direction == direction
        z = band.z(value) if watched else 0.0
        anomaly = watched and _outside(band, value) != 0
        if watched and not anomaly and direction and holiday is None:
            # empty periods first: when both apply, "no rows for 2 periods" says more
            sustained = self._zero_run(train, usable, value, settings) or self._sustained(
                baseline, band, usable, value, settings
            )
            if sustained is not None:
                z_runs, why = sustained
                anomaly, z = True, max(z, z_runs)
                note = f"{note}; {why}" if note else why
        before = band
        if baseline is not unshifted:
            before = band_of(unshifted, at.timestamp(), settings, floor_zero=self.non_negative)
            if anomaly and not _outside(before, value):
                # a value back within what was normal before an adopted shift is the shift ending (the
                # day after a holiday, the first rows after an outage), not a new anomaly
                anomaly, z = False, min(z, before.z(value))
                note = f"{note}; the value is back within the range before that shift"
        if (
            shift is not None
            and not shift.alerted
            and not anomaly
            and holiday is None
            and not waiting
            and settings.direction in ("both", shift.direction)
            and _nearer(value, band.expected, before.expected, self.counts)
        ):
            # a shift confirmed without any alert so far: said once, against the level before it (not
            # while a seasonality is still too long for the history: the shift may be its first cycle,
            # e.g. the first weekend before a weekly rhythm can be learned)
            band, anomaly = before, True
            deviation = value - band.expected
            direction = shift.direction
            z = max(band.z(value), shift.score)
            note = f"{note}; the first period judged at the new level alerts once"
        season = baseline.seasonality
        fitted = None
        if holiday is None:  # a holiday's baseline is its own: the next ordinary period fits again
            fitted = Fitted(
                baseline,
                at.timestamp(),
                fingerprint(self.counts, self.non_negative, self.period, settings),
                train[0].ts,
                train[-1].ts,
                len(train),
                adopted_note,
                calendar_rule,
                waiting,
                shift.since.timestamp() if shift is not None else None,
                _learns_at(period, settings, options, secs[0]) if waiting else None,
                period.total_seconds(),
            )
        return Judgement(
            FindingStatus.ANOMALY if anomaly else FindingStatus.OK,
            value,
            self._method(season),
            expected=band.expected,
            lower=band.lower,
            upper=band.upper,
            score=z,
            p_value=_p_value(z, settings),
            training_start=train[0].ts,
            training_end=train[-1].ts,
            training_points=len(train),
            slot=season.label(at),
            effect=deviation / abs(band.expected) if band.expected else None,
            direction=direction,
            note=note,
            noise=describe_noise(band),
            calendar=calendar_rule,
            seasonality=waiting,
            fitted=fitted,
        )

    def _method(self, season: Seasonality | None = None) -> str:
        method = "seasonal median + MAD" + (" with count noise floor" if self.counts else "")
        return method if season is None or season.name == "none" else f"{method} ({season.name} seasonality)"

    @staticmethod
    def reuse_tail(settings: DetectionSettings) -> int:
        """How many of the newest points `reuse` reads (what a run of deviations is judged on)."""
        return _REUSE_TAIL * settings.level_shift_confirm_runs

    def reuse(
        self,
        fitted: Fitted | None,
        recent: Sequence[MetricPoint],
        at: datetime,
        value: float,
        settings: DetectionSettings,
    ) -> Judgement | None:
        """The judgement of `value` by the kept fit `fitted`, when the value is plainly normal under
        it; else None, and `judge` fits in full. `recent`: the newest points before `at` (`reuse_tail`
        of them).

        The fit must be fresh (made less than `_REFIT_SHARE` of the training window ago, a time that
        holds `_MIN_REUSE_PERIODS` of the series' periods: a daily series is always fitted in full,
        which costs it little), made under these settings, not past the time its history grows long
        enough for a seasonality it waited for, with no alert among the newest
        `level_shift_confirm_runs` periods and no adopted level shift younger than a refit interval.
        The value must be inside a band no wider than `_REUSE_MAX_BAND` times the expected value,
        within 60% of `sensitivity`, not an empty period of a count, not on a holiday, not the newest
        of a run of periods that deviate together (the test `judge` makes), and not on the side of
        expectation where every one of the newest `level_shift_confirm_runs - 1` periods lies (a
        level shift that alerted nowhere is confirmed by a full fit, which says it once).
        Everything else, which is everything that could alert, is judged by a full fit."""
        if fitted is None:
            return None
        t = at.timestamp()
        if fitted.waiting and (fitted.learns_at is None or t >= fitted.learns_at):
            return None  # the history is now long enough for a seasonality the fit could not learn
        refit_after = settings.training_window.total_seconds() * _REFIT_SHARE
        if not 0 <= t - fitted.at < refit_after or refit_after < _MIN_REUSE_PERIODS * fitted.period:
            return None  # stale, or a coarse series (daily), whose full fits are cheap
        if fitted.shift_since is not None and fitted.at - fitted.shift_since < refit_after:
            return None  # a young shift's level is still being measured: every full fit moves it
        if any(p.label == PointLabel.ANOMALY for p in recent[-settings.level_shift_confirm_runs :]):
            return None  # a deviation that alerted may be a new level on its way to adoption
        if (self.counts and value == 0) or fitted.fingerprint != fingerprint(
            self.counts, self.non_negative, self.period, settings
        ):
            return None
        calendar = calendar_of(settings)
        if calendar is not None and calendar.holiday(t) is not None:
            return None
        baseline = fitted.baseline
        band = band_of(baseline, t, settings, floor_zero=self.non_negative)
        z = band.z(value)
        if _outside(band, value) or z >= _REUSE_MAX_Z_SHARE * settings.sensitivity:
            return None
        if band.upper - band.lower > _REUSE_MAX_BAND * (abs(band.expected) + 1):
            return None  # a band this wide bounds little: the next full fit may see a different series
        deviation = value - band.expected
        direction = "drop" if deviation < 0 else "spike" if deviation > 0 else None
        watched = settings.direction == "both" or settings.direction == direction
        usable, _ = _trainable(recent, at, settings, calendar)
        newest = (
            usable[-(settings.level_shift_confirm_runs - 1) :]
            if settings.level_shift_confirm_runs > 1
            else []
        )
        if direction and not any(
            (p.value - baseline.expected(p.ts.timestamp())) * deviation < 0 for p in newest
        ):
            return None  # the newest periods all lean one way: a level shift may be confirming
        if watched and direction and self._sustained(baseline, band, usable, value, settings) is not None:
            return None
        score = z if watched else 0.0
        season = baseline.seasonality
        return Judgement(
            FindingStatus.OK,
            value,
            self._method(season),
            expected=band.expected,
            lower=band.lower,
            upper=band.upper,
            score=score,
            p_value=_p_value(score, settings),
            training_start=fitted.training_start,
            training_end=fitted.training_end,
            training_points=fitted.training_points,
            slot=season.label(at),
            effect=deviation / abs(band.expected) if band.expected else None,
            direction=direction,
            note=fitted.note,
            noise=describe_noise(band),
            calendar=fitted.calendar,
            seasonality=fitted.waiting,
            fitted=fitted,
        )

    def _adopt_level_shift(
        self,
        baseline: Baseline,
        usable: Sequence[MetricPoint],
        usable_secs: Sequence[float],
        secs: Sequence[float],
        train: Sequence[MetricPoint],
        options: Sequence[Seasonality],
        settings: DetectionSettings,
    ) -> tuple[LevelShift, Baseline, Baseline] | None:
        """A level shift in the newest points, and the baselines at its new level and before it.

        The new level is the normal from here: the points before it are moved to it, so that the
        season and the noise are learned from the whole window, not from a mix of two levels (richer
        seasonalities are tried again: a mix of two levels may hide one, never invent one). A trend
        may have taken a step for a slope: then the shift is looked for around a flat level too, and
        kept only when it explains the window clearly better than the trend did."""
        values = [p.value for p in train]
        shift = find_level_shift(baseline, usable, settings, usable_secs)
        judged_by = baseline
        if shift is None and baseline.slope:
            judged_by = baseline.without_trend(secs, values)
            shift = find_level_shift(judged_by, usable, settings, usable_secs)
        if shift is None:
            return None
        keys = baseline.seasonality.keys_of(secs)
        before = judged_by.expected_many(secs, keys)
        cut = shift.since.timestamp()
        old = [i for i, t in enumerate(secs) if t < cut]
        if len(old) >= settings.min_points and len(options) > 1:
            # the points before the change are moved around what they alone say of the season: a
            # window of two levels may hide a season (a weekly rhythm looks like noise beside a step)
            # and a season's misfit would then be moved as if it were noise
            old_secs, old_values = [secs[i] for i in old], [values[i] for i in old]
            alone = choose_baseline(old_secs, old_values, options, counts=self.counts)
            for i, mu in zip(
                old, alone.expected_many(old_secs, alone.seasonality.keys_of(old_secs)), strict=True
            ):
                before[i] = mu
        moved = [
            v if t >= cut else shift.relevel(v, mu) for t, v, mu in zip(secs, values, before, strict=True)
        ]
        candidates = options[options.index(baseline.seasonality) :]
        at_new_level = choose_baseline(secs, moved, candidates, counts=self.counts)
        at_old_level = shift.undo(at_new_level)
        if judged_by is not baseline:
            cut = shift.since.timestamp()
            old = [i for i, t in enumerate(secs) if t < cut]
            new = [i for i, t in enumerate(secs) if t >= cut]
            stepped = (
                at_old_level.mean_error([secs[i] for i in old], [values[i] for i in old]) * len(old)
                + at_new_level.mean_error([secs[i] for i in new], [values[i] for i in new]) * len(new)
            ) / len(secs)
            if stepped >= _STEP_MIN_GAIN * baseline.mean_error(secs, values):
                return None  # the trend explains the window as well: a slow change, not a step
        return shift, at_new_level, at_old_level

    def _sustained(
        self,
        baseline: Baseline,
        band: Band,
        usable: Sequence[MetricPoint],
        value: float,
        settings: DetectionSettings,
    ) -> tuple[float, str] | None:
        """A deviation too small to alert in one period may be certain over several: the newest
        periods (up to `level_shift_confirm_runs`) together, as a Poisson sum for small counts, else
        by combining each period's own z-score (Stouffer), which respects each period's noise shape.
        `band` is the judged period's."""
        observed, expected = value, band.expected
        z_sum = band.z(value)
        if z_sum < _SUSTAINED_MIN_Z:
            return None  # the value is about as expected: whatever ran before has ended
        poisson = band.shape == "poisson"
        side = 1 if value > expected else -1
        recent = list(reversed(usable[-(settings.level_shift_confirm_runs - 1) :]))
        # one test per run length tried: Bonferroni keeps the chance that any of them fires by
        # chance at that of a single test at `sensitivity`
        tests = max(len(recent), 1)
        for runs, p in enumerate(recent, start=2):
            band = band_of(baseline, p.ts.timestamp(), settings, floor_zero=self.non_negative)
            if (p.value - band.expected) * side <= 0 or p.excluded:
                return None  # not sustained, or part of a deviation that alerted already
            observed += p.value
            expected += band.expected
            z_sum += band.z(p.value)
            poisson = poisson and band.shape == "poisson"
            effect = max(settings.min_relative_change * abs(expected), settings.min_absolute_change)
            if abs(observed - expected) <= effect:
                continue
            if poisson and expected <= POISSON_EXACT_MAX_MEAN:
                z = poisson_z(observed, expected)
            else:
                z = z_sum / math.sqrt(runs)
            z = z_of_tail(normal_sf(z) * tests)  # adjusted for the run lengths tried
            if z > settings.sensitivity:
                where = "above" if side > 0 else "below"
                return z, f"the last {runs} periods together are {where} expectation"
        return None

    def _zero_run(
        self,
        train: Sequence[MetricPoint],
        usable: Sequence[MetricPoint],
        value: float,
        settings: DetectionSettings,
    ) -> tuple[float, str] | None:
        """Periods without a single row, in a row, in a series that rarely has one: judged by how
        often the training data itself was zero (no noise model needed)."""
        if not self.counts or value != 0:
            return None
        run = 1
        for p in reversed(usable):
            if p.value != 0:
                break
            run += 1
        run_start = usable[-(run - 1)].ts if run > 1 else None
        before = [
            p for p in train if run_start is None or p.ts < run_start
        ]  # the run is not its own evidence
        share = (sum(p.value == 0 for p in before) + 0.5) / (len(before) + 1)
        z = z_of_tail(share**run)
        if z <= settings.sensitivity:
            return None
        return z, f"{run} periods in a row without rows, when only {share:.1%} of periods were empty"


@dataclass(frozen=True)
class GrowthStrategy:
    """For table totals: judges the change since the previous run (rows added or removed) with the
    seasonal strategy, and reports the result as totals."""

    inner: SeasonalStrategy = SeasonalStrategy(non_negative=False)

    def judge(
        self, history: Sequence[MetricPoint], at: datetime, value: float, settings: DetectionSettings
    ) -> Judgement:
        if not history:
            return self.inner.judge([], at, value, settings)
        previous = history[-1].value
        judged = self.inner.judge(_increments(history), at, value - previous, settings)
        return _as_totals(judged, value, previous)

    def reuse_tail(self, settings: DetectionSettings) -> int:
        return self.inner.reuse_tail(settings) + 1  # one more total: increments are differences

    def reuse(
        self,
        fitted: Fitted | None,
        recent: Sequence[MetricPoint],
        at: datetime,
        value: float,
        settings: DetectionSettings,
    ) -> Judgement | None:
        """`SeasonalStrategy.reuse` on the growth since the previous total."""
        if not recent:
            return None
        previous = recent[-1].value
        judged = self.inner.reuse(fitted, _increments(recent), at, value - previous, settings)
        return None if judged is None else _as_totals(judged, value, previous)


def _increments(history: Sequence[MetricPoint]) -> list[MetricPoint]:
    return [b.model_copy(update={"value": b.value - a.value}) for a, b in itertools.pairwise(history)]


def _as_totals(judged: Judgement, value: float, previous: float) -> Judgement:
    """A judgement of the growth since `previous`, reported as totals."""

    def total(x: float | None) -> float | None:
        return None if x is None else x + previous

    return replace(
        judged,
        observed=value,
        expected=total(judged.expected),
        lower=total(judged.lower),
        upper=total(judged.upper),
        method=judged.method.replace("seasonal median", "seasonal median of growth"),
    )
