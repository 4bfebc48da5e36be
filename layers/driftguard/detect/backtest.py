"""Replay a series through detection exactly as production would have judged it, point by point.

Verdict i uses only the rows before i; a row that was judged anomalous is labelled so and stays
out of later training, as it would in production. Used by `driftguard backtest` and the
detection benchmark.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from driftguard.config import DetectionSettings
from driftguard.detect.base import Verdict
from driftguard.detect.freshness import UpdateTimes, judge_lag
from driftguard.detect.seasonal import MAX_TRAINING_POINTS, SeasonalStrategy
from driftguard.model import CheckKey, CheckKind, FindingStatus, Frozen, MetricPoint, PointLabel, utc

_KEY = CheckKey(source="backtest", table="series", check=CheckKind.VOLUME, metric="rows_per_period")


def backtest_volume(
    rows: list[tuple[datetime, float]], period: timedelta | None, settings: DetectionSettings | None = None
) -> list[Verdict]:
    """Judge each (timestamp, value) row, oldest first, against the rows before it.

    `period`: the spacing of the rows; None detects it from the timestamps seen so far."""
    settings = settings or DetectionSettings()
    strategy = SeasonalStrategy(period=period)
    history: list[MetricPoint] = []
    verdicts: list[Verdict] = []
    for ts, value in rows:
        at = utc(ts)
        past = [p for p in history[-(MAX_TRAINING_POINTS * 2) :] if p.ts < at]
        judgement = strategy.judge(past, at, float(value), settings)
        learning = judgement.status == FindingStatus.LEARNING
        verdicts.append(
            Verdict(
                ts=at,
                value=float(value),
                expected=None if learning else judgement.expected,
                lower=None if learning else judgement.lower,
                upper=None if learning else judgement.upper,
                score=judgement.score,
                anomaly=judgement.anomaly,
            )
        )
        label = PointLabel.ANOMALY if judgement.anomaly else PointLabel.NONE
        history.append(MetricPoint(key=_KEY, ts=at, value=float(value), label=label))
    return verdicts


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
