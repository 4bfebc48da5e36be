"""Segment missing: a segment of a segmented table (`tables[].segment_by`) that the table had
before has no row in the latest volume period.

It is judged on the segment's own volume series (`rows_per_period` with the segment), by the
same seasonal baseline, as a count of zero: a segment whose history expects rows in this period
is missing (ANOMALY, critical when it normally has at least one row); one that often has none
(a weekly load, a quiet hour) is not. The zero is kept in the segment's volume series, so an
absence that lasts becomes its new normal like any level shift. When a segment that was absent
has rows again, its `segment_missing` finding is OK (the alert resolves).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

from driftguard.config import TableChecks, VolumeCheck
from driftguard.detect.explain import number
from driftguard.detect.freshness import describe_seconds
from driftguard.detect.kinds.base import KeyOf, Run, TableCheckKind
from driftguard.detect.kinds.volume import ROWS_PER_PERIOD, series_judged
from driftguard.detect.seasonal import SeasonalStrategy
from driftguard.model import (
    CheckKey,
    CheckKind,
    FindingStatus,
    MetricPoint,
    SegmentSnapshot,
    Severity,
    TableSnapshot,
)

SEGMENT_MISSING = "segment_missing"


class SegmentMissing(TableCheckKind[VolumeCheck]):
    kind = CheckKind.SEGMENT_MISSING
    config_key = "segment_by"  # tables[].segment_by (beside checks), which switches it on
    has_series = False  # its value is always zero; the segment's volume series is the one to show

    def configured(self, checks: TableChecks) -> Sequence[VolumeCheck]:
        # segments are ranked by volume: every segmented table has a volume check (config.py)
        return [checks.volume] if checks.volume else []

    def keys(self, key_of: KeyOf, check: VolumeCheck) -> list[tuple[CheckKey, Severity]]:
        return []  # a table that could not be collected is reported by its own checks

    def judge(self, run: Run, table: str, check: VolumeCheck, snap: TableSnapshot) -> None:
        if not run.segmented(table):
            return
        period = check.effective_period
        assert period is not None  # segment_by needs volume.column
        for segment in snap.segments or []:
            if segment.period_start is None:
                continue
            if segment.present:
                self._back(run, table, check, segment, period)
            else:
                self._missing(run, table, check, segment, period)

    def _missing(
        self, run: Run, table: str, check: VolumeCheck, segment: SegmentSnapshot, period: timedelta
    ) -> None:
        assert segment.period_start is not None
        volume_key = run.key(table, CheckKind.VOLUME, ROWS_PER_PERIOD, segment=segment.segment)
        key = run.key(table, self.kind, SEGMENT_MISSING, segment=segment.segment)
        settings = run.settings(check.detection)
        strategy = SeasonalStrategy(period=period)
        judgement = run.judge_series(volume_key, strategy, segment.period_start, 0.0, settings, period)
        when = (
            f"in the {describe_seconds(period.total_seconds())} to {segment.period_start + period:%a %H:%M}"
        )
        if judgement.anomaly:
            subject = f"segment {segment.segment} of {table} is missing: it has no rows {when}"
        else:
            subject = f"segment {segment.segment} of {table} has no rows {when}"
        point = MetricPoint(key=volume_key, ts=segment.period_start, value=0.0)
        run.add(series_judged(run, key, judgement, [point], subject, check.severity))

    def _back(
        self, run: Run, table: str, check: VolumeCheck, segment: SegmentSnapshot, period: timedelta
    ) -> None:
        """A segment whose previous period was judged missing (its last point is a zero) has rows
        again: its segment_missing finding is OK, so an alert about it resolves."""
        assert segment.period_start is not None
        volume_key = run.key(table, CheckKind.VOLUME, ROWS_PER_PERIOD, segment=segment.segment)
        last = run.history(volume_key, segment.period_start, 1)
        if not last or last[-1].value != 0:
            return
        key = run.key(table, self.kind, SEGMENT_MISSING, segment=segment.segment)
        reason = (
            f"segment {segment.segment} of {table} has rows again: {number(segment.row_count)} in the "
            f"{describe_seconds(period.total_seconds())} to {segment.period_start + period:%a %H:%M}"
        )
        run.status(key, FindingStatus.OK, check.severity, reason)
