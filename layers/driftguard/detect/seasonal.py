"""The robust seasonal strategy: volume series and column metrics are judged by it.

Out of sample (the judged value is never in its own baseline), robust (medians and MAD), with
a noise floor for counts, a minimum effect size, a direction, and level-shift adoption: when
the last `level_shift_confirm_runs` points all sat beyond the band on the same side, the
shifted level is the new normal and stops alerting.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from statistics import median
from typing import Literal

from driftguard.config import DetectionSettings
from driftguard.detect.baseline import Baseline, choose_baseline, fit_baseline, learnable_seasonalities
from driftguard.detect.calendar import calendar_of
from driftguard.detect.stats import (
    POISSON_EXACT_MAX_MEAN,
    negbin_bounds,
    negbin_cdf,
    normal_sf,
    poisson_bounds,
    poisson_cdf,
    robust_sigma,
    typical_gap,
    z_of_tail,
)
from driftguard.detect.strategy import Judgement
from driftguard.model import FindingStatus, MetricPoint, PointLabel

_RELATIVE_NOISE_POWER = 0.75  # noise growing at least this fast with the level is judged on a log scale
_WIDE_NOISE = 0.5  # so is count noise whose band (sensitivity x scale) spans this share of the level
_SUSTAINED_MIN_Z = 1.0  # a run of deviations is judged only while the newest value still deviates
_SEGMENT_SHARE = 0.75  # share of a shifted segment that must sit on the shifted side
_RECENT_LEVEL_RUNS = 2  # the adopted level: median of this many confirmation lengths of newest points
_MEDIAN_EFFICIENCY = math.sqrt(math.pi / 2)
_SEGMENT_GROWTH = 1.5  # segment lengths tried grow geometrically: bounded work per judgement
MAX_TRAINING_POINTS = 3000  # bounds the work per judgement; a window of hourly points for 4 months
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
        low, high = (expected + 1) * math.exp(-k * sigma) - 1, (expected + 1) * math.exp(k * sigma) - 1
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


def _outside(band: Band, value: float) -> int:
    """+1 above the band, -1 below it, 0 inside."""
    return 1 if value > band.upper else -1 if value < band.lower else 0


@dataclass(frozen=True)
class SeasonalStrategy:
    """`counts`: values are counts (Poisson noise floor); `non_negative`: values cannot go below 0."""

    counts: bool = True
    non_negative: bool = True
    period: timedelta | None = None  # None: the median gap of the history

    def judge(
        self, history: Sequence[MetricPoint], at: datetime, value: float, settings: DetectionSettings
    ) -> Judgement:
        start = at - settings.training_window
        usable = [p for p in history if start <= p.ts < at and p.label in _TRAINABLE]
        usable = usable[-MAX_TRAINING_POINTS:]
        calendar = calendar_of(settings)
        holiday: str | None = None
        past_holidays: list[MetricPoint] = []
        if calendar is not None:
            # holidays reshape whole days: ordinary days learn without them, holidays are judged apart
            holiday = calendar.holiday(at.timestamp())
            names = calendar.holidays_of([p.ts.timestamp() for p in usable])
            past_holidays = [
                p for p, n in zip(usable, names, strict=True) if n is not None and p.label == _CLEAN
            ]
            usable = [p for p, n in zip(usable, names, strict=True) if n is None]
        clean = [p for p in usable if p.label == _CLEAN]
        method = "seasonal median + MAD" + (" with count noise floor" if self.counts else "")
        if len(clean) < settings.min_points:
            return Judgement(
                FindingStatus.LEARNING,
                value,
                method,
                training_points=len(clean),
                needed_points=settings.min_points - len(clean),
            )
        period = self.period or typical_gap([p.ts for p in clean]) or timedelta(hours=1)
        secs = [p.ts.timestamp() for p in usable]  # once per judgement: every step below reads them
        values = [p.value for p in usable]
        options, waiting = learnable_seasonalities(period, settings.seasonality, secs[-1] - secs[0])
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
        baseline, note = self._adopt_level_shift(baseline, usable, settings)
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
        if anomaly and baseline is not unshifted:
            # a value back within what was normal before an adopted shift is the shift ending (the
            # day after a holiday, the first rows after an outage), not a new anomaly
            before = band_of(unshifted, at.timestamp(), settings, floor_zero=self.non_negative)
            if not _outside(before, value):
                anomaly, z = False, min(z, before.z(value))
                note = f"{note}; the value is back within the range before that shift"
        p_value = min(1.0, normal_sf(z) * (2 if settings.direction == "both" else 1))
        season = baseline.seasonality
        slot = season.label(at)
        return Judgement(
            FindingStatus.ANOMALY if anomaly else FindingStatus.OK,
            value,
            method if season.name == "none" else f"{method} ({season.name} seasonality)",
            expected=band.expected,
            lower=band.lower,
            upper=band.upper,
            score=z,
            p_value=p_value,
            training_start=train[0].ts,
            training_end=train[-1].ts,
            training_points=len(train),
            slot=slot,
            effect=deviation / abs(band.expected) if band.expected else None,
            direction=direction,
            note=note,
            noise=describe_noise(band),
            calendar=calendar_rule,
            seasonality=waiting,
        )

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

    def _adopt_level_shift(
        self, baseline: Baseline, usable: Sequence[MetricPoint], settings: DetectionSettings
    ) -> tuple[Baseline, str]:
        """A level shift that persisted is the new normal. The newest points form a shifted segment
        when their median level differs clearly (beyond the noise of a median and the minimum effect
        size) from the baseline's, at least `_SEGMENT_SHARE` of them sit on the
        segment's side of the midpoint between old and new level (noise may put a few back), and
        it is at least `level_shift_confirm_runs` points long. The longest such segment gives the
        new level."""
        newest_first = reversed(usable)
        offsets: list[tuple[MetricPoint, float]] = []  # point, offset from the level

        def extend_to(n: int) -> None:
            """Offsets of the newest points, computed only as far as the segment search reaches."""
            while len(offsets) < n:
                p = next(newest_first, None)
                if p is None:
                    return
                t = p.ts.timestamp()
                deseasoned = baseline.season.remove(p.value, t)
                level = baseline.trend(t)
                if deseasoned is not None and level:
                    offsets.append((p, deseasoned - level))

        level = baseline.trend(usable[-1].ts.timestamp())
        min_effect = max(settings.min_relative_change * abs(level), settings.min_absolute_change)
        best = 0
        length = settings.level_shift_confirm_runs
        while length <= len(usable) // 2:
            extend_to(length)
            if len(offsets) < length:
                break
            segment = offsets[:length]
            middle = float(median(o for _, o in segment))
            # the median of `length` points is known to within 1.25 sigma / sqrt(length); sigma from the
            # segment's own spread (the baseline's may be inflated by a mix of old and new level)
            spread = max(robust_sigma([o for _, o in segment]), 1e-9 * abs(middle))
            noise = _MEDIAN_EFFICIENCY * spread / math.sqrt(length)
            same_side = sum((o - middle / 2) * middle > 0 for _, o in segment)
            if abs(middle) <= min_effect or same_side < _SEGMENT_SHARE * length:
                break  # too small to matter, or the segment crosses back: longer ones would too
            # a noisy series may need a longer segment before its median stands out of the noise:
            # a short one that does not yet is no reason to stop looking
            if abs(middle) > settings.sensitivity * noise and same_side >= settings.level_shift_confirm_runs:
                best = length
            length = max(length + 1, int(length * _SEGMENT_GROWTH))
        segment_points = [p for p, _ in offsets[:best]]
        zeros = sum(p.value == 0 for p in segment_points)
        if not best or zeros >= _SEGMENT_SHARE * len(segment_points):  # an outage is never the new normal
            return baseline, ""
        # the new level is where the segment is now: its newest points (a drift may still be moving)
        recent = offsets[: min(best, _RECENT_LEVEL_RUNS * settings.level_shift_confirm_runs)]
        shift = float(median(o for _, o in recent))
        # the new level began with the segment's oldest point on the shifted side (noise may have put
        # an old-level point at the segment's start)
        oldest = min(p.ts for p in segment_points)
        since = min((p.ts for p, o in offsets[:best] if (o - shift / 2) * shift > 0), default=oldest)
        note = (
            f"new level since {since:%Y-%m-%d %H:%M}: a level shift that lasted {best}+ periods "
            "was adopted as the new normal"
        )
        return baseline.shifted(shift, 0.0), note


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
        increments = [
            b.model_copy(update={"value": b.value - a.value}) for a, b in itertools.pairwise(history)
        ]
        previous = history[-1].value
        judged = self.inner.judge(increments, at, value - previous, settings)

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
