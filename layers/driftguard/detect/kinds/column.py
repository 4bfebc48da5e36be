"""Column metrics: null rate, distinct count, mean, min, max and quantiles of one column, each its
own series (`null_rate`, `distinct_count`, `mean`, `min`, `max`, `p25` ...). With the table's
timestamp column each point is one complete period (at its start, judged with the period's
seasonality and backfilled from the table's own rows on first sight); without one, one sampled
point per run. A metric that could not be computed is that metric's ERROR alone. The evaluator
controls false discoveries across the run's column metrics (Benjamini-Hochberg)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime, timedelta

from driftguard.config import ColumnCheck, TableChecks
from driftguard.detect.explain import explanation, number, series_reason
from driftguard.detect.freshness import describe_seconds
from driftguard.detect.kinds.base import (
    Judged,
    KeyOf,
    Run,
    TableCheckKind,
    first_sight_points,
    history_limit,
    segment_name,
)
from driftguard.detect.seasonal import SeasonalStrategy
from driftguard.model import (
    CheckKey,
    CheckKind,
    ColumnProfile,
    Finding,
    FindingStatus,
    MetricPoint,
    SegmentSnapshot,
    Severity,
    TableHistory,
    TableSnapshot,
)


class Column(TableCheckKind[ColumnCheck]):
    kind = CheckKind.COLUMN
    config_key = "columns"
    has_series = True

    def series_strategy(self, metric: str, period: timedelta | None) -> SeasonalStrategy:
        return SeasonalStrategy(
            period=period, counts=metric == "distinct_count", non_negative=metric != "mean"
        )

    def configured(self, checks: TableChecks) -> Sequence[ColumnCheck]:
        return checks.columns

    def keys(self, key_of: KeyOf, check: ColumnCheck) -> list[tuple[CheckKey, Severity]]:
        return [(key_of(self.kind, metric, check.name), check.severity) for metric in check.metrics]

    def judge(self, run: Run, table: str, check: ColumnCheck, snap: TableSnapshot) -> None:
        if not run.segmented(table):
            profile = next((p for p in snap.profiles or [] if p.column == check.name), None)
            self._judge(run, table, check, profile, None)
            return
        for segment in snap.segments or []:
            if segment.present:
                profile = next((p for p in segment.profiles or [] if p.column == check.name), None)
                self._judge(run, table, check, profile, segment)

    def _judge(
        self,
        run: Run,
        table: str,
        check: ColumnCheck,
        profile: ColumnProfile | None,
        segment: SegmentSnapshot | None,
    ) -> None:
        settings = run.settings(check.detection)
        period = _period(run, table, profile)
        name_of_segment = segment.segment if segment is not None else None
        where = table if segment is None else f"{table} segment {segment_name(segment)}"
        backfilled: dict[str, list[tuple[datetime, float]]] = {}  # a new segment's past, by metric
        if segment is not None and segment.history is not None and profile is not None:
            for past in segment.history.profiles:
                if past.column != check.name or past.period_start is None or past.row_count == 0:
                    continue
                for metric in check.metrics:
                    for name, value in _metric_values(metric, past):
                        if value is not None:
                            backfilled.setdefault(name, []).append((past.period_start, value))
        for metric in check.metrics:
            if profile is not None and metric in profile.errors:
                key = run.key(table, self.kind, metric, check.name, name_of_segment)
                run.status(key, FindingStatus.ERROR, check.severity, profile.errors[metric])
                continue
            for name, value in _metric_values(metric, profile):
                key = run.key(table, self.kind, name, check.name, name_of_segment)
                subject = f"{where}: {check.name} {name.replace('_', ' ')}{_scope(profile, period)}"
                if segment is None:
                    subject = f"{table}.{check.name} {name.replace('_', ' ')}{_scope(profile, period)}"
                if profile is None or profile.row_count == 0 or value is None:
                    why = "has no rows to profile" if profile is not None else "was not profiled"
                    run.status(
                        key,
                        FindingStatus.NO_DATA,
                        check.severity,
                        f"{subject} cannot be judged: the column {why}",
                    )
                    continue
                at = profile.period_start or run.at
                strategy = self.series_strategy(name, period if profile.period_start else None)
                limit = history_limit(settings, period)
                earlier = first_sight_points(run, key, at, backfilled.get(name, []), limit)
                judgement = run.judge_series(key, strategy, at, value, settings, period, earlier)
                p_value: float | None = (
                    judgement.p_value if judgement.status != FindingStatus.LEARNING else None
                )
                if name == "null_rate" and check.max_null_rate is not None and value > check.max_null_rate:
                    judgement = replace(
                        judgement,
                        status=FindingStatus.ANOMALY,
                        method="hard limit",
                        upper=check.max_null_rate,
                        note=f"above the configured max_null_rate of {number(check.max_null_rate)}",
                    )
                    p_value = None  # a hard limit is not a test: no false-alarm control applies
                details: dict[str, object] = {"rows": profile.row_count}
                if profile.sample_rows is not None:
                    details["sample_rows"] = profile.sample_rows
                if profile.period_start is not None:
                    details["period_start"] = profile.period_start.isoformat()
                finding = Finding(
                    key=key,
                    ts=run.at,
                    status=judgement.status,
                    severity=check.severity,
                    explanation=explanation(judgement, series_reason(subject, judgement), details),
                )
                point = MetricPoint(key=key, ts=at, value=value)
                run.add(Judged(finding, [point], earlier, p_value=p_value, settings=settings))

    def backfills(self, checks: TableChecks, check: ColumnCheck) -> bool:
        return checks.column_metrics_period is not None

    def history_points(
        self, key_of: KeyOf, check: ColumnCheck, history: TableHistory, until: datetime
    ) -> list[MetricPoint]:
        points: list[MetricPoint] = []
        for profile in history.profiles:
            if profile.column != check.name or profile.period_start is None or profile.period_start >= until:
                continue
            if profile.row_count == 0:
                continue  # a period without rows has no rate, mean or extremes to learn
            for metric in check.metrics:
                for name, value in _metric_values(metric, profile):
                    if value is not None:
                        key = key_of(self.kind, name, check.name)
                        points.append(MetricPoint(key=key, ts=profile.period_start, value=value))
        return points


def _period(run: Run, table: str, profile: ColumnProfile | None) -> timedelta:
    """The spacing of the column's points: the table's period when profiled per period, else the
    run's."""
    checks = next((t.checks for t in run.source.tables if t.name == table), None)
    timing = checks.column_metrics_period if checks is not None else None
    if timing is not None and profile is not None and profile.period_start is not None:
        return timing[1]
    return run.run_period


def _scope(profile: ColumnProfile | None, period: timedelta) -> str:
    """Which rows the metric describes: ' in the 1h to Tue 11:00' or ' (a sample of 100,000 rows)'."""
    if profile is None:
        return ""
    if profile.period_start is not None:
        end = profile.period_start + period
        return f" in the {describe_seconds(period.total_seconds())} to {end:%a %H:%M}"
    if profile.sample_rows is not None:
        return f" (a sample of {number(profile.sample_rows)} rows)"
    return ""


def _metric_values(metric: str, profile: ColumnProfile | None) -> list[tuple[str, float | None]]:
    if metric == "quantiles":
        return [
            (name, value) for name, value in sorted(((profile.quantiles if profile else None) or {}).items())
        ]
    if profile is None:
        return [(metric, None)]
    raw = {
        "null_rate": profile.null_rate,
        "distinct_count": profile.distinct_count,
        "mean": profile.mean,
        "min": profile.min,
        "max": profile.max,
    }[metric]
    return [(metric, float(raw) if isinstance(raw, int | float) else None)]
