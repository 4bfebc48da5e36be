"""Freshness: how long ago the table's timestamp column last moved, judged against its cadence.

Series: `last_modified` (epoch seconds of max(column), per run; what detection learns from) and
`lag_seconds` (per run; for display); the finding is keyed `lag_seconds`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime, timedelta

from driftguard.config import FreshnessCheck, TableChecks
from driftguard.detect.explain import explanation, learning_reason
from driftguard.detect.freshness import CadenceStrategy, describe_seconds
from driftguard.detect.kinds.base import (
    Judged,
    KeyOf,
    Run,
    TableCheckKind,
    first_sight_points,
    history_limit,
    segment_name,
)
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

LAST_MODIFIED = "last_modified"
LAG_SECONDS = "lag_seconds"
_MAX_FRESHNESS_POINTS = 20000


class Freshness(TableCheckKind[FreshnessCheck]):
    kind = CheckKind.FRESHNESS
    config_key = "freshness"
    has_series = True

    def series_strategy(self, metric: str, period: timedelta | None) -> CadenceStrategy:
        return CadenceStrategy()  # `lag_seconds` is judged from `last_modified`, the update times

    def configured(self, checks: TableChecks) -> Sequence[FreshnessCheck]:
        return [checks.freshness] if checks.freshness else []

    def keys(self, key_of: KeyOf, check: FreshnessCheck) -> list[tuple[CheckKey, Severity]]:
        return [(key_of(self.kind, LAG_SECONDS, None), check.severity)]

    def judge(self, run: Run, table: str, check: FreshnessCheck, snap: TableSnapshot) -> None:
        if not run.segmented(table):
            self._judge(run, table, check, snap.last_modified, None, [])
            return
        for segment in snap.segments or []:
            if not segment.present:
                continue  # no row in the period: the segment is missing (segment_missing), not late
            modified_key = run.key(table, self.kind, LAST_MODIFIED, segment=segment.segment)
            updates = segment.history.update_times if segment.history else []
            earlier = first_sight_points(
                run, modified_key, run.at, [(t, t.timestamp()) for t in updates], _MAX_FRESHNESS_POINTS
            )
            self._judge(run, table, check, segment.last_modified, segment, earlier)

    def _judge(
        self,
        run: Run,
        table: str,
        check: FreshnessCheck,
        last_modified: datetime | None,
        segment: SegmentSnapshot | None,
        earlier: list[MetricPoint],
    ) -> None:
        name = segment.segment if segment is not None else None
        key = run.key(table, self.kind, LAG_SECONDS, segment=name)
        what = table if segment is None else f"{table} segment {segment_name(segment)}"
        if last_modified is None:
            reason = f"{what} has no rows with a {check.column} value, so its freshness cannot be judged"
            run.status(key, FindingStatus.NO_DATA, check.severity, reason)
            return
        settings = run.settings(check.detection)
        modified = last_modified.timestamp()
        modified_key = run.key(table, self.kind, LAST_MODIFIED, segment=name)
        # Arrival times are values alone: read as a column, not as points (most of a steady
        # check's history reads, since a table updated every few minutes has thousands). A new
        # segment's first run has none stored: its backfilled arrivals stand in for them.
        if earlier:
            limit = history_limit(settings, run.run_period, _MAX_FRESHNESS_POINTS)
            arrivals = [p.value for p in earlier][-limit:]
        else:
            arrivals = run.history_values(
                modified_key, run.at, settings, run.run_period, _MAX_FRESHNESS_POINTS
            )
        strategy = self.series_strategy(LAST_MODIFIED, None)
        judgement = strategy.judge_values(arrivals, run.at, modified, settings)
        judgement = _apply_max_age(judgement, check)
        subject = f"{what} was last updated {describe_seconds(judgement.observed)} ago"
        finding = Finding(
            key=key,
            ts=run.at,
            status=judgement.status,
            severity=check.severity,
            explanation=explanation(
                judgement,
                freshness_reason(subject, judgement),
                {"last_modified": last_modified.isoformat()},
            ),
        )
        points = [
            MetricPoint(key=modified_key, ts=run.at, value=modified),
            MetricPoint(key=key, ts=run.at, value=judgement.observed),
        ]
        run.add(Judged(finding, points, judged_earlier=earlier))

    def backfills(self, checks: TableChecks, check: FreshnessCheck) -> bool:
        return True

    def history_points(
        self, key_of: KeyOf, check: FreshnessCheck, history: TableHistory, until: datetime
    ) -> list[MetricPoint]:
        key = key_of(self.kind, LAST_MODIFIED, None)
        return [trusted_point(key, t, t.timestamp()) for t in history.update_times if t < until]


def _apply_max_age(judgement: Judgement, check: FreshnessCheck) -> Judgement:
    if check.max_age is None or judgement.observed <= check.max_age.total_seconds():
        return judgement
    limit = check.max_age.total_seconds()
    return replace(
        judgement,
        status=FindingStatus.ANOMALY,
        method="hard limit",
        upper=limit,
        score=max(judgement.score, judgement.observed / limit),
        direction="stale",
        note=f"older than the configured max_age of {describe_seconds(limit)}",
    )


def freshness_reason(subject: str, judgement: Judgement) -> str:
    if judgement.status == FindingStatus.LEARNING and judgement.method != "hard limit":
        return learning_reason(subject, judgement, "arrivals")
    if judgement.method == "hard limit":
        return f"{subject}, {judgement.note}."
    allowed = describe_seconds(judgement.upper or 0.0)
    when = f" at {judgement.slot}" if judgement.slot else ""
    if judgement.anomaly:
        return (
            f"{subject}; its {judgement.method} allows at most {allowed}{when} "
            f"(usually {describe_seconds(judgement.expected or 0.0)}): check the job that loads it."
        )
    return f"{subject}, within the {allowed} its {judgement.method} allows{when}."
