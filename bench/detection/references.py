"""Reference detectors, re-implemented from the anchors' own code with their default settings.

Each one replays a series the way its tool would judge it if it ran once per period, and returns one
`Verdict` per point, exactly like DriftGuard's backtests. They judge freshness through the lag series
(seconds since the last update, sampled each evaluation period), which is how these tools treat a
freshness metric. Nothing here is tuned to the benchmark: the figures are the tools' defaults.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal, Protocol

from driftguard.detect.base import Verdict

Rows = Sequence[tuple[datetime, float]]
Direction = Literal["both", "spike", "drop"]


class Detector(Protocol):
    name: str

    def backtest(self, rows: Rows, period: timedelta) -> list[Verdict]: ...


def _outside(value: float, lower: float, upper: float, direction: Direction) -> bool:
    if direction == "spike":
        return value > upper
    if direction == "drop":
        return value < lower
    return value > upper or value < lower


def _judged(
    ts: datetime, value: float, center: float, spread: float, factor: float, direction: Direction
) -> Verdict:
    """A verdict for the bounds center +- factor * spread; with no spread any deviation is beyond them."""
    lower, upper = center - factor * spread, center + factor * spread
    deviation = abs(value - center)
    score = deviation / spread if spread > 0 else (math.inf if deviation else 0.0)
    anomaly = _outside(value, lower, upper, direction)
    return Verdict(
        ts=ts, value=value, expected=center, lower=lower, upper=upper, score=score, anomaly=anomaly
    )


def _learning(ts: datetime, value: float) -> Verdict:
    return Verdict(ts=ts, value=value)


def _mean_and_sample_std(values: Sequence[float]) -> tuple[float, float]:
    """Two-pass mean and sample standard deviation (as SQL `stddev`); exact enough at any scale."""
    n = len(values)
    mean = math.fsum(values) / n
    return mean, math.sqrt(math.fsum((x - mean) ** 2 for x in values) / (n - 1))


@dataclass(frozen=True)
class ElementaryZScore:
    """Elementary's volume/freshness anomaly test (z-score over a training window, current point included).

    Followed: elementary-data/dbt-data-reliability,
    macros/edr/data_monitoring/anomaly_detection/get_anomaly_scores_query.sql (training_avg and
    training_stddev are window aggregates over `rows between unbounded preceding and current row` of the
    metrics newer than `days_back`, so the tested point is part of its own mean and stddev; anomaly_score =
    (metric_value - training_avg) / training_stddev, 0 when the stddev is 0, null for a single point) and
    macros/edr/data_monitoring/anomaly_detection/get_anomaly_query.sql (is_anomalous: |score| > sensitivity,
    `anomaly_score > sensitivity` only for freshness metrics, training_set_size >= min_training_set_size).
    Defaults from get_default_config: days_back 14, anomaly_sensitivity 3; min_training_set_size 14 (docs).
    `stddev` is the sample standard deviation, as in PostgreSQL and Snowflake.

    Simplifications: seasonality stays off (its default); each bucket is judged once, when it is the
    newest, whereas a real run re-reports anomalous buckets of the last `backfill_days` (2) for two more days.
    """

    name: str = "Elementary"
    sensitivity: float = 3.0
    days_back: int = 14
    min_training_set_size: int = 14
    direction: Direction = "both"

    def backtest(self, rows: Rows, period: timedelta) -> list[Verdict]:
        training = timedelta(days=self.days_back)
        verdicts, start = [], 0
        for i, (ts, value) in enumerate(rows):
            while rows[start][0] <= ts - training:
                start += 1
            window = [v for _, v in rows[start : i + 1]]
            if len(window) < max(2, self.min_training_set_size):
                verdicts.append(_learning(ts, value))
                continue
            mean, std = _mean_and_sample_std(window)
            if std == 0:  # Elementary scores a flat training set 0: never anomalous
                verdicts.append(Verdict(ts=ts, value=value, expected=mean, lower=mean, upper=mean))
            else:
                verdicts.append(_judged(ts, value, mean, std, self.sensitivity, self.direction))
        return verdicts


@dataclass(frozen=True)
class DeequOnlineNormal:
    """Deequ's OnlineNormalStrategy with its defaults, as run by its AnomalyDetector on every check.

    Followed: awslabs/deequ, src/main/scala/com/amazon/deequ/anomalydetection/OnlineNormalStrategy.scala
    (running mean and population variance updated with the current point BEFORE its bounds are computed;
    lowerDeviationFactor 3, upperDeviationFactor 3, ignoreStartPercentage 0.1: points whose index is below
    0.1 * (length of the series) are never anomalies; ignoreAnomalies true: an anomalous point is rolled back
    out of the mean and variance, while the index keeps counting, as the Scala code does) and
    AnomalyDetector.scala (isNewPointAnomalous re-runs the strategy over the whole stored history with the
    new point appended, searching only that point). Hence verdict i is the strategy's result for index i
    over the series 0..i, so the ignored start grows with the history, exactly as in production.

    No simplification beyond using the full history (no afterDate/beforeDate filter, the default).
    """

    name: str = "Deequ"
    lower_deviation_factor: float = 3.0
    upper_deviation_factor: float = 3.0
    ignore_start_percentage: float = 0.1
    ignore_anomalies: bool = True

    def backtest(self, rows: Rows, period: timedelta) -> list[Verdict]:
        # A history of length L ignores the indices below pct * L, so the run that judges the newest point
        # depends on how many start points it ignores. Two such runs agree wherever the one ignoring fewer
        # points flagged none of the points the other ignores; only then is a new run needed.
        verdicts: list[Verdict] = []
        current: list[Verdict] = []
        steps: Iterator[Verdict] = iter(())
        ignored = -1

        def judged_up_to(last: int) -> None:
            while len(current) <= last:
                current.append(next(steps))

        for last in range(len(rows)):
            needed = math.ceil((last + 1) * self.ignore_start_percentage)
            if ignored >= 0:
                judged_up_to(last)
            if ignored < 0 or any(current[i].anomaly for i in range(ignored, needed)):
                steps, current = self.run(rows, needed), []
            ignored = needed
            judged_up_to(last)
            verdicts.append(current[last])
        return verdicts

    def run(self, rows: Rows, ignored: int) -> Iterator[Verdict]:
        """OnlineNormalStrategy.computeStatsAndAnomalies, one point at a time."""
        mean = variance = sn = 0.0
        for index, (ts, value) in enumerate(rows):
            last_mean, last_variance, last_sn = mean, variance, sn
            mean = value if index == 0 else last_mean + (1.0 / (index + 1)) * (value - last_mean)
            sn += (value - last_mean) * (value - mean)
            variance = sn / (index + 1)
            std = math.sqrt(variance)
            upper = mean + self.upper_deviation_factor * std
            lower = mean - self.lower_deviation_factor * std
            anomaly = index >= ignored and not (lower <= value <= upper)
            if anomaly and self.ignore_anomalies:
                mean, variance, sn = last_mean, last_variance, last_sn
            yield Verdict(
                ts=ts,
                value=value,
                expected=mean,
                lower=mean - self.lower_deviation_factor * std,
                upper=mean + self.upper_deviation_factor * std,
                score=abs(value - mean) / std if std > 0 else 0.0,
                anomaly=anomaly,
            )


def _percentile_cont(ordered: Sequence[float], q: float) -> float:
    """SQL percentile_cont over an ascending sequence: linear interpolation between neighbours."""
    position = q * (len(ordered) - 1)
    below = math.floor(position)
    above = min(below + 1, len(ordered) - 1)
    return ordered[below] + (ordered[above] - ordered[below]) * (position - below)


@dataclass(frozen=True)
class ReDataModifiedZScore:
    """re_data's default anomaly detector: modified z-score (median and MAD), threshold 3.

    Followed: re-data/dbt-re-data, models/metrics/for_anomalies/re_data_last_stats.sql (median and
    quartiles with percentile_cont, median absolute deviation from the median, mean absolute deviation from
    the mean, over the metrics whose time_window_end lies in the last `anomaly_detection_look_back_days`
    (30) before the current window, the current one included), models/alerts/re_data_z_score.sql
    (modified_z = 0.6745 * (x - median) / (MAD + 1e-10), or (x - median) / (1.253314 * (meanAD + 1e-10)) when
    MAD is 0), and macros is_anomaly_from_model (|modified_z| > threshold, direction both). Default detector
    `{name: modified_z_score, threshold: 3}` from the re_data docs (toy_shop dbt_project.yml).

    No simplification of the decision. re_data reports no bounds for this detector; the verdict's are
    derived: median +- threshold * spread, spread = MAD / 0.6745 (or 1.253314 * meanAD when MAD is 0).
    """

    name: str = "re_data"
    threshold: float = 3.0
    look_back_days: int = 30

    def backtest(self, rows: Rows, period: timedelta) -> list[Verdict]:
        look_back = timedelta(days=self.look_back_days) + period
        verdicts, window, start = [], [], 0
        for ts, value in rows:
            bisect.insort(window, value)
            while rows[start][0] <= ts - look_back:
                del window[bisect.bisect_left(window, rows[start][1])]
                start += 1
            if len(window) < 2:  # re_data needs a stddev, hence two points
                verdicts.append(_learning(ts, value))
                continue
            median = _percentile_cont(window, 0.5)
            mad = _percentile_cont(sorted(abs(x - median) for x in window), 0.5)
            if mad == 0:
                mean = math.fsum(window) / len(window)
                spread = 1.253314 * (math.fsum(abs(x - mean) for x in window) / len(window) + 1e-10)
            else:
                spread = (mad + 1e-10) / 0.6745
            verdicts.append(_judged(ts, value, median, spread, self.threshold, "both"))
        return verdicts


@dataclass(frozen=True)
class RollingThreeSigma:
    """The plain baseline: mean +- 3 sample standard deviations of the previous `window` points.

    Out of sample (the judged point is not in its own window). The window is 24 points for sub-daily
    periods and 14 for daily ones unless given. Not taken from any tool: it is what a hand-written SQL check
    usually does, and it tells whether the anchors beat the obvious.
    """

    name: str = "Rolling3sigma"
    sigmas: float = 3.0
    window: int | None = None

    def backtest(self, rows: Rows, period: timedelta) -> list[Verdict]:
        size = self.window or (24 if period < timedelta(days=1) else 14)
        verdicts = []
        for i, (ts, value) in enumerate(rows):
            if i < size:
                verdicts.append(_learning(ts, value))
                continue
            mean, std = _mean_and_sample_std([v for _, v in rows[i - size : i]])
            verdicts.append(_judged(ts, value, mean, std, self.sigmas, "both"))
        return verdicts


@dataclass(frozen=True)
class SeasonalMedianMAD:
    """The strong simple baseline for seasonal counts: expected = the median of the same slot of the
    week (hour of week; weekday for daily series) in the last `weeks` weeks; alert when the residual
    exceeds `factor` x the MAD of the residuals of the last `weeks` weeks.

    Causal: the expected value uses only earlier weeks, the MAD only earlier residuals. Not taken from
    a tool: a few lines an analyst writes for traffic counts, which beat DriftGuard's earlier versions
    on real hourly traffic. MAD is the raw median absolute deviation from the residuals' median (not
    scaled to a standard deviation), so 4 x MAD is about 2.7 standard deviations of normal residuals.
    """

    name: str = "SlotMedianMAD"
    weeks: int = 4
    factor: float = 4.0
    min_residuals: int = 14

    def backtest(self, rows: Rows, period: timedelta) -> list[Verdict]:
        week = timedelta(days=7)
        by_time = {ts: value for ts, value in rows}
        window = self.weeks * week
        verdicts: list[Verdict] = []
        residuals: list[tuple[datetime, float]] = []
        start = 0
        for ts, value in rows:
            same_slot = [by_time[t] for k in range(1, self.weeks + 1) if (t := ts - k * week) in by_time]
            if len(same_slot) < 2:
                verdicts.append(_learning(ts, value))
                continue
            expected = _percentile_cont(sorted(same_slot), 0.5)
            while start < len(residuals) and residuals[start][0] <= ts - window:
                start += 1
            recent = [r for _, r in residuals[start:]]
            residual = value - expected
            residuals.append((ts, residual))
            if len(recent) < self.min_residuals:
                verdicts.append(_learning(ts, value))
                continue
            center = _percentile_cont(sorted(recent), 0.5)
            spread = _percentile_cont(sorted(abs(r - center) for r in recent), 0.5)
            lower, upper = expected - self.factor * spread, expected + self.factor * spread
            verdicts.append(
                Verdict(
                    ts=ts,
                    value=value,
                    expected=expected,
                    lower=lower,
                    upper=upper,
                    score=abs(residual) / spread if spread > 0 else (math.inf if residual else 0.0),
                    anomaly=abs(residual) > self.factor * spread,
                )
            )
        return verdicts


def references(freshness: bool = False) -> list[Detector]:
    """The reference detectors with their defaults; for freshness Elementary alerts on spikes only."""
    return [
        ElementaryZScore(direction="spike" if freshness else "both"),
        DeequOnlineNormal(),
        ReDataModifiedZScore(),
        RollingThreeSigma(),
        SeasonalMedianMAD(),
    ]
