"""The expected band of a stored series, for display: the range the detector learns at each shown time.

The stores keep values and labels, not the band each run saw, so the report learns it again from the
stored points before each shown time (labels included, as production reads them). Judging uses every
point; only the times the band is drawn at are thinned.

- Seasonal series (volume per period, column metrics, growth of a table's total): the detector's own
  baseline (`choose_baseline`, `fit_baseline`, `band_of`) fitted on the clean points of the training
  window before each block of shown time, and drawn across the block. A judgement refits on every
  run, some 15 ms (3 seasonalities tried); 300 shown points of 500 checks would take half an hour,
  so a chart is refit at most `MAX_REFITS` times (daily for a week, weekly for 8 weeks), with the
  seasonality the newest fit chose wherever the earlier window is long enough to support it.
  Left out, as they concern single judgements: re-admitting alerted points, level-shift adoption,
  the sustained-drift rule and hard limits (the markers show what actually alerted).
- Freshness: the exact judgement of the arrival cadence at each shown time (cheap): no lag up to the
  allowed lag.
A label an operator added later changes the band drawn for earlier times, as it changes training.
"""

from __future__ import annotations

import bisect
import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from driftguard.config import DetectionSettings
from driftguard.detect.baseline import (
    Baseline,
    Seasonality,
    candidate_seasonalities,
    choose_baseline,
    fit_baseline,
)
from driftguard.detect.freshness import CadenceStrategy
from driftguard.detect.kinds import ALL_KINDS
from driftguard.detect.kinds.freshness import LAG_SECONDS, LAST_MODIFIED
from driftguard.detect.seasonal import MAX_TRAINING_POINTS, GrowthStrategy, SeasonalStrategy, band_of
from driftguard.detect.stats import typical_gap
from driftguard.model import CheckKey, CheckKind, FindingStatus, MetricPoint, PointLabel

MAX_REFITS = 8
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class BandPoint:
    expected: float | None
    lower: float | None
    upper: float | None


NO_BAND = BandPoint(None, None, None)


@dataclass(frozen=True)
class SeriesBand:
    """How a kind of series gets its band: `growth` judges a table total by its increments."""

    seasonal: SeasonalStrategy | None = None
    growth: bool = False
    cadence: bool = False


def band_kind(key: CheckKey, volume_period: timedelta | None) -> SeriesBand | None:
    """As the check's kind judges `key`'s series (the registry, detect.kinds), or None where no band
    is learned: custom SQL compares with its own threshold; schema and source checks have no series."""
    kind = next((k for k in ALL_KINDS if k.kind == key.check), None)
    period = volume_period if key.check == CheckKind.VOLUME else None
    strategy = kind.series_strategy(key.metric, period) if kind is not None else None
    if isinstance(strategy, GrowthStrategy):
        return SeriesBand(strategy.inner, growth=True)
    if isinstance(strategy, CadenceStrategy):
        return SeriesBand(cadence=True)
    if isinstance(strategy, SeasonalStrategy):
        return SeriesBand(strategy)
    return None


def judged_series_key(key: CheckKey) -> CheckKey:
    """The series the detector learns from: a freshness lag is judged from the update times."""
    if key.check == CheckKind.FRESHNESS and key.metric == LAG_SECONDS:
        return key.model_copy(update={"metric": LAST_MODIFIED})
    return key


def _increments(points: Sequence[MetricPoint]) -> list[MetricPoint]:
    return [b.model_copy(update={"value": b.value - a.value}) for a, b in itertools.pairwise(points)]


def _fit(
    strategy: SeasonalStrategy,
    learned: Sequence[MetricPoint],
    times: list[datetime],
    at: datetime,
    settings: DetectionSettings,
    seasonality: Seasonality | None,
) -> Baseline | None:
    """The baseline learned from the clean points of the training window before `at`, if enough:
    with `seasonality` when the window spans two of its cycles, else the one the detector picks."""
    end = bisect.bisect_left(times, at)
    start = at - settings.training_window
    window = learned[max(0, end - 2 * MAX_TRAINING_POINTS) : end]
    clean = [p for p in window if p.ts >= start and p.label == PointLabel.NONE][-MAX_TRAINING_POINTS:]
    if len(clean) < settings.min_points:
        return None
    secs, values = [p.ts.timestamp() for p in clean], [p.value for p in clean]
    if seasonality is not None and secs[-1] - secs[0] >= 2 * seasonality.cycle:
        return fit_baseline(secs, values, seasonality, counts=strategy.counts)
    period = strategy.period or typical_gap([p.ts for p in clean]) or timedelta(hours=1)
    options = candidate_seasonalities(period, settings.seasonality)
    return choose_baseline(secs, values, options, counts=strategy.counts)


def _refit_times(asked: Sequence[tuple[datetime, float]]) -> list[datetime]:
    """The start of the refit block of each asked time: whole days, at most MAX_REFITS blocks."""
    if not asked:
        return []
    span = asked[-1][0] - asked[0][0]
    block = max(timedelta(days=1), timedelta(days=math.ceil(span / timedelta(days=1) / MAX_REFITS)))
    return [at - (at - _EPOCH) % block for at, _ in asked]


def _seasonal_bands(
    strategy: SeasonalStrategy,
    learned: Sequence[MetricPoint],
    asked: Sequence[tuple[datetime, float]],
    settings: DetectionSettings,
    *,
    growth: bool,
) -> list[BandPoint]:
    totals = [p.ts for p in learned]
    series = _increments(learned) if growth else list(learned)
    times = [p.ts for p in series]
    refits = _refit_times(asked)
    if not refits:
        return []
    newest = _fit(strategy, series, times, refits[-1], settings, None)
    seasonality = newest.seasonality if newest else None
    baselines: dict[datetime, Baseline | None] = {refits[-1]: newest}
    out: list[BandPoint] = []
    for (at, _), refit in zip(asked, refits, strict=True):
        if refit not in baselines:
            baselines[refit] = _fit(strategy, series, times, refit, settings, seasonality)
        baseline = baselines[refit]
        if baseline is None:
            out.append(NO_BAND)
            continue
        band = band_of(baseline, at.timestamp(), settings, floor_zero=strategy.non_negative)
        shift = 0.0
        if growth:  # a total is the previous total plus the expected growth
            before = bisect.bisect_left(totals, at)
            if before == 0:
                out.append(NO_BAND)
                continue
            shift = learned[before - 1].value
        out.append(BandPoint(band.expected + shift, band.lower + shift, band.upper + shift))
    return out


def _cadence_bands(
    learned: Sequence[MetricPoint], asked: Sequence[tuple[datetime, float]], settings: DetectionSettings
) -> list[BandPoint]:
    """The allowed lag at each asked time, judged on the update times known then."""
    times = [p.ts for p in learned]
    strategy = CadenceStrategy()
    out: list[BandPoint] = []
    for at, _ in asked:
        end = bisect.bisect_left(times, at)
        history = learned[max(0, end - 2 * MAX_TRAINING_POINTS) : end]
        same_run = end < len(learned) and learned[end].ts == at
        if not history and not same_run:
            out.append(NO_BAND)
            continue
        last_update = learned[end].value if same_run else history[-1].value
        judgement = strategy.judge(history, at, last_update, settings)
        learning = judgement.status == FindingStatus.LEARNING
        out.append(NO_BAND if learning else BandPoint(judgement.expected, 0.0, judgement.upper))
    return out


def bands_at(
    kind: SeriesBand,
    learned: Sequence[MetricPoint],
    asked: Sequence[tuple[datetime, float]],
    settings: DetectionSettings,
) -> list[BandPoint]:
    """The band at each (time, value) of `asked` (oldest first), learned from the points before it."""
    if kind.cadence:
        return _cadence_bands(learned, asked, settings)
    if kind.seasonal is not None:
        return _seasonal_bands(kind.seasonal, learned, asked, settings, growth=kind.growth)
    return [NO_BAND] * len(asked)
