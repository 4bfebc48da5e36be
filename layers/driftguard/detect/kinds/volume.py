"""Volume: rows per complete period of the table's timestamp column (seasonal baseline), or the
table's total row count per run (growth baseline) without one.

Series: `rows_per_period` (one point per complete period, at the period's start) when the check
has a timestamp column, else `row_count` (the table total, per run).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime, timedelta

from driftguard.config import TableChecks, VolumeCheck
from driftguard.detect.explain import explanation, number, series_reason
from driftguard.detect.freshness import describe_seconds
from driftguard.detect.kinds.base import (
    Judged,
    KeyOf,
    Run,
    TableCheckKind,
    first_sight_points,
    history_limit,
    labelled,
    segment_name,
    status_finding,
)
from driftguard.detect.seasonal import GrowthStrategy, SeasonalStrategy
from driftguard.detect.strategy import Judgement
from driftguard.model import (
    CheckKey,
    CheckKind,
    Finding,
    FindingStatus,
    MetricPoint,
    SegmentSnapshot,
    Severity,
    TableHistory,
    TableSnapshot,
    trusted_point,
)

ROWS_PER_PERIOD = "rows_per_period"
ROW_COUNT = "row_count"


class Volume(TableCheckKind[VolumeCheck]):
    kind = CheckKind.VOLUME
    config_key = "volume"
    has_series = True

    def configured(self, checks: TableChecks) -> Sequence[VolumeCheck]:
        return [checks.volume] if checks.volume else []

    def keys(self, key_of: KeyOf, check: VolumeCheck) -> list[tuple[CheckKey, Severity]]:
        metric = ROWS_PER_PERIOD if check.column else ROW_COUNT
        return [(key_of(self.kind, metric, None), check.severity)]

    def series_strategy(self, metric: str, period: timedelta | None) -> SeasonalStrategy | GrowthStrategy:
        return GrowthStrategy() if metric == ROW_COUNT else SeasonalStrategy(period=period)

    def judge(self, run: Run, table: str, check: VolumeCheck, snap: TableSnapshot) -> None:
        if run.segmented(table):
            for segment in snap.segments or []:
                if segment.present:
                    self._segment(run, table, check, segment)
            return
        if check.effective_period is None:
            self._total(run, table, check, snap)
        else:
            self._per_period(run, table, check, snap)

    def _total(self, run: Run, table: str, check: VolumeCheck, snap: TableSnapshot) -> None:
        key = run.key(table, self.kind, ROW_COUNT)
        if snap.row_count is None:
            run.status(
                key, FindingStatus.NO_DATA, check.severity, f"the row count of {table} was not collected"
            )
            return
        settings = run.settings(check.detection)
        judgement = run.judge_series(
            key, self.series_strategy(ROW_COUNT, None), run.at, snap.row_count, settings, run.run_period
        )
        point = MetricPoint(key=key, ts=run.at, value=snap.row_count)
        if snap.row_count == 0 and not judgement.anomaly:
            reason = f"{table} is empty: there is nothing to judge yet"
            run.add(
                Judged(status_finding(key, run.at, FindingStatus.NO_DATA, check.severity, reason), [point])
            )
            return
        subject = f"{table} has {number(snap.row_count)} rows"
        run.add(series_judged(run, key, judgement, [point], subject, check.severity, check))

    def _per_period(self, run: Run, table: str, check: VolumeCheck, snap: TableSnapshot) -> None:
        period = check.effective_period
        assert period is not None  # judge() sends only checks with a timestamp column here
        key = run.key(table, self.kind, ROWS_PER_PERIOD)
        if not snap.period_counts:
            reason = (
                f"{table} has no complete {describe_seconds(period.total_seconds())} period with rows yet"
            )
            run.status(key, FindingStatus.NO_DATA, check.severity, reason)
            return
        settings = run.settings(check.detection)
        known = run.history(key, run.at, 1)
        newest = known[-1].ts if known else None
        fresh = [
            pc for pc in snap.period_counts if newest is None or pc.start > newest
        ] or snap.period_counts[-1:]
        strategy = self.series_strategy(ROWS_PER_PERIOD, period)
        earlier: list[MetricPoint] = []
        for i, pc in enumerate(fresh):
            judgement = run.judge_series(key, strategy, pc.start, pc.count, settings, period, earlier)
            end = pc.start + period
            subject = (
                f"{table} received {number(pc.count)} rows in the {describe_seconds(period.total_seconds())} "
                f"to {end:%a %H:%M}"
            )
            point = MetricPoint(key=key, ts=pc.start, value=pc.count)
            judged = series_judged(run, key, judgement, [point], subject, check.severity, check)
            if i == len(fresh) - 1:
                judged.judged_earlier = earlier
                run.add(judged)
            else:
                earlier.append(labelled(point, judged.finding.status))

    def _segment(self, run: Run, table: str, check: VolumeCheck, segment: SegmentSnapshot) -> None:
        """One segment's rows in the latest period, judged on its own series (hard limits are the
        table's, not a segment's: they do not apply). A segment seen for the first time learns
        from the history its backfill brought."""
        period = check.effective_period
        assert period is not None and segment.period_start is not None  # segment_by needs volume.column
        key = run.key(table, self.kind, ROWS_PER_PERIOD, segment=segment.segment)
        settings = run.settings(check.detection)
        earlier = first_sight_points(
            run,
            key,
            segment.period_start,
            [(pc.start, pc.count) for pc in segment.history.period_counts] if segment.history else [],
            history_limit(settings, period),
        )
        judgement = run.judge_series(
            key,
            self.series_strategy(ROWS_PER_PERIOD, period),
            segment.period_start,
            segment.row_count,
            settings,
            period,
            earlier,
        )
        subject = (
            f"{table} segment {segment_name(segment)} received {number(segment.row_count)} rows in the "
            f"{describe_seconds(period.total_seconds())} to {segment.period_start + period:%a %H:%M}"
        )
        point = MetricPoint(key=key, ts=segment.period_start, value=segment.row_count)
        judged = series_judged(run, key, judgement, [point], subject, check.severity)
        judged.judged_earlier = earlier
        run.add(judged)

    def backfills(self, checks: TableChecks, check: VolumeCheck) -> bool:
        return check.column is not None

    def history_points(
        self, key_of: KeyOf, check: VolumeCheck, history: TableHistory, until: datetime
    ) -> list[MetricPoint]:
        if check.column is None:
            return []
        key = key_of(self.kind, ROWS_PER_PERIOD, None)
        return [trusted_point(key, pc.start, pc.count) for pc in history.period_counts if pc.start < until]


def series_judged(
    run: Run,
    key: CheckKey,
    judgement: Judgement,
    points: list[MetricPoint],
    subject: str,
    severity: Severity,
    limits: VolumeCheck | None = None,
) -> Judged:
    """The finding of one judged count-like value: hard limits first, and a normally non-zero
    series that dropped to nothing is critical."""
    if limits is not None:
        judgement = _apply_row_limits(judgement, limits)
    if judgement.anomaly and judgement.observed == 0 and (judgement.expected or 0) >= 1:
        severity = Severity.CRITICAL
    finding = Finding(
        key=key,
        ts=run.at,
        status=judgement.status,
        severity=severity,
        explanation=explanation(judgement, series_reason(subject, judgement)),
    )
    return Judged(finding, points)


def _apply_row_limits(judgement: Judgement, check: VolumeCheck) -> Judgement:
    value = judgement.observed
    if check.min_rows is not None and value < check.min_rows:
        return _breach(judgement, "drop", "below", "min_rows", check.min_rows)
    if check.max_rows is not None and value > check.max_rows:
        return _breach(judgement, "spike", "above", "max_rows", check.max_rows)
    return judgement


def _breach(judgement: Judgement, direction: str, where: str, name: str, limit: int) -> Judgement:
    return replace(
        judgement,
        status=FindingStatus.ANOMALY,
        method="hard limit",
        direction=direction,
        lower=float(limit) if direction == "drop" else judgement.lower,
        upper=float(limit) if direction == "spike" else judgement.upper,
        note=f"{where} the configured {name} of {number(limit)}",
    )
