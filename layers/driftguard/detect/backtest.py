"""Replay a series through detection exactly as production would have judged it, point by point.

Verdict i uses only the rows before i; a row that was judged anomalous is labelled so and stays
out of later training, as it would in production. Used by `driftguard backtest` and the
detection benchmark.

Every point is judged by the same `SeasonalStrategy.judge` a production check runs, on its own
training window: the replay hands each judgement only the rows that can be in that window (found
by bisecting the rows' times once converted), instead of the last 2 x MAX_TRAINING_POINTS rows
re-filtered by time at every step. `_replay_volume_reference` keeps the first, simpler form; the two
must agree on every judgement (tests/unit/test_backtest_equivalence.py).
"""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Sequence
from datetime import datetime, timedelta

from driftguard.config import DetectionSettings
from driftguard.detect import seasonal
from driftguard.detect.base import Verdict
from driftguard.detect.freshness import UpdateTimes, judge_lag
from driftguard.detect.seasonal import Fitted, SeasonalStrategy
from driftguard.detect.strategy import Judgement
from driftguard.model import CheckKey, CheckKind, FindingStatus, Frozen, MetricPoint, PointLabel, utc

_KEY = CheckKey(source="backtest", table="series", check=CheckKind.VOLUME, metric="rows_per_period")
# rows this much older than a window's start are still handed to the judgement, which filters them
# by exact datetime comparison: epoch seconds as floats must never decide which rows a window holds
_WINDOW_MARGIN = 1.0  # seconds

Replayed = tuple[datetime, float, Judgement]
"""(time, value, the judgement of the value using only the rows before it)."""


def backtest_volume(
    rows: list[tuple[datetime, float]],
    period: timedelta | None,
    settings: DetectionSettings | None = None,
    *,
    exact: bool = False,
) -> list[Verdict]:
    """Judge each (timestamp, value) row, oldest first, against the rows before it.

    `period`: the spacing of the rows; None detects it from the timestamps seen so far. `exact`: fit
    every judgement in full (see `replay_volume`)."""
    return [_verdict(*r) for r in replay_volume(rows, period, settings or DetectionSettings(), exact=exact)]


def replay_volume(
    rows: Sequence[tuple[datetime, float]],
    period: timedelta | None,
    settings: DetectionSettings,
    *,
    exact: bool = False,
) -> list[Replayed]:
    """Every row's full judgement (what an explanation is built from), oldest row first.

    As a production check does, a plainly normal value is judged by the fit kept from an earlier
    judgement (`SeasonalStrategy.reuse`: fresh, under the same settings); every other value is judged
    by a full fit on its training window. `exact`: a full fit for every value, what the replay did
    before fits were kept (tests/unit/test_backtest_equivalence.py measures the two against each other).

    Rows in strictly increasing time order (what `driftguard backtest` accepts) are replayed with
    each judgement handed only the rows of its training window; any other order is replayed as
    `_replay_volume_reference` does, where "the rows before" means the earlier rows in time."""
    ats = [utc(ts) for ts, _ in rows]
    if any(b <= a for a, b in itertools.pairwise(ats)):
        return _replay_volume_reference(rows, period, settings)
    strategy = SeasonalStrategy(period=period)
    secs = [at.timestamp() for at in ats]
    reach = settings.training_window.total_seconds() + _WINDOW_MARGIN
    most = 2 * seasonal.MAX_TRAINING_POINTS  # what the reference hands over, at most
    tail = strategy.reuse_tail(settings)
    fitted: Fitted | None = None
    history: list[MetricPoint] = []
    replayed: list[Replayed] = []
    for i, (at, (_, raw)) in enumerate(zip(ats, rows, strict=True)):
        value = float(raw)
        first = max(i - most, bisect.bisect_left(secs, secs[i] - reach, 0, i), 0)
        judgement = (
            None if exact else strategy.reuse(fitted, history[max(first, i - tail) : i], at, value, settings)
        )
        if judgement is None:
            judgement = strategy.judge(history[first:i], at, value, settings)
            fitted = judgement.fitted or fitted  # as a check keeps it: a holiday's makes none
        replayed.append((at, value, judgement))
        history.append(_point(at, value, judgement))
    return replayed


def _replay_volume_reference(
    rows: Sequence[tuple[datetime, float]], period: timedelta | None, settings: DetectionSettings
) -> list[Replayed]:
    """The replay in its first form: every step re-filters the last 2 x MAX_TRAINING_POINTS rows by
    time. Kept as the reference the faster replay is checked against, and for rows out of order."""
    strategy = SeasonalStrategy(period=period)
    most = 2 * seasonal.MAX_TRAINING_POINTS
    history: list[MetricPoint] = []
    replayed: list[Replayed] = []
    for ts, raw in rows:
        at = utc(ts)
        value = float(raw)
        past = [p for p in history[-most:] if p.ts < at]
        judgement = strategy.judge(past, at, value, settings)
        replayed.append((at, value, judgement))
        history.append(_point(at, value, judgement))
    return replayed


def _point(at: datetime, value: float, judgement: Judgement) -> MetricPoint:
    """The row as production stores it after judging: labelled when it alerted."""
    label = PointLabel.ANOMALY if judgement.anomaly else PointLabel.NONE
    return MetricPoint(key=_KEY, ts=at, value=value, label=label)


def _verdict(at: datetime, value: float, judgement: Judgement) -> Verdict:
    learning = judgement.status == FindingStatus.LEARNING
    return Verdict(
        ts=at,
        value=value,
        expected=None if learning else judgement.expected,
        lower=None if learning else judgement.lower,
        upper=None if learning else judgement.upper,
        score=judgement.score,
        anomaly=judgement.anomaly,
    )


class FreshnessVerdict(Frozen):
    """The freshness judgement at one evaluation time, using only the updates up to it."""

    ts: datetime
    lag_seconds: float | None  # None before the first update
    expected_max_lag: float | None = None  # None while learning (and no max_age)
    score: float = 0.0  # lag / expected_max_lag: above 1 is late
    anomaly: bool = False


def backtest_freshness(
    update_times: Sequence[datetime],
    eval_times: Sequence[datetime],
    settings: DetectionSettings | None = None,
    max_age: timedelta | None = None,
) -> list[FreshnessVerdict]:
    """For each evaluation time: the table's lag then, what its cadence allowed, and whether it
    would have alerted (cadence or the `max_age` hard limit)."""
    settings = settings or DetectionSettings()
    updates = UpdateTimes([utc(t).timestamp() for t in update_times])
    limit = max_age.total_seconds() if max_age is not None else None
    verdicts: list[FreshnessVerdict] = []
    for ts in eval_times:
        at = utc(ts)
        now = at.timestamp()
        if updates.last_before(now) is None:
            verdicts.append(FreshnessVerdict(ts=at, lag_seconds=None))
            continue
        judgement = judge_lag(updates, now, settings)
        lag = judgement.observed
        allowed = judgement.upper if judgement.status != FindingStatus.LEARNING else None
        anomaly = judgement.anomaly
        if limit is not None:
            allowed = limit if allowed is None else min(allowed, limit)
            anomaly = anomaly or lag > limit
        verdicts.append(
            FreshnessVerdict(
                ts=at,
                lag_seconds=lag,
                expected_max_lag=allowed,
                score=lag / allowed if allowed else 0.0,
                anomaly=anomaly,
            )
        )
    return verdicts
