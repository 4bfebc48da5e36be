"""What a table's stored series remember of its last full read, so collection can keep that read's
values while the table's write counters stand still (collect.changes), and how such a run says so.

Pure: the series come through the `HistoryReader` the engine hands in.
"""

from __future__ import annotations

from datetime import UTC, datetime

from driftguard.detect.base import HistoryReader
from driftguard.detect.kinds.freshness import LAST_MODIFIED
from driftguard.detect.kinds.volume import ROW_COUNT
from driftguard.model import CheckKey, CheckKind, Finding, LastRead, MetricPoint, Snapshot

CHANGE_MARKER = "change_marker"


def marker_key(source: str, table: str) -> CheckKey:
    """The series of a table's change markers: one point per full read, none while values are kept,
    so its newest point is the last full read."""
    return CheckKey(source=source, table=table, check=CheckKind.VOLUME, metric=CHANGE_MARKER)


def last_read(history: HistoryReader, source: str, table: str, before: datetime) -> LastRead | None:
    """The last full read of `table` before `before`, or None when no marker was stored."""
    markers = history(marker_key(source, table), before, 1)
    if not markers:
        return None
    marker = markers[-1]
    modified = history(
        CheckKey(source=source, table=table, check=CheckKind.FRESHNESS, metric=LAST_MODIFIED), before, 1
    )
    rows = history(CheckKey(source=source, table=table, check=CheckKind.VOLUME, metric=ROW_COUNT), before, 1)
    return LastRead(
        marker=int(marker.value),
        at=marker.ts,
        last_modified=datetime.fromtimestamp(modified[-1].value, UTC) if modified else None,
        row_count=int(rows[-1].value) if rows else None,
    )


def marker_points(snapshot: Snapshot) -> list[MetricPoint]:
    """A point for each table this run read in full and whose engine keeps write counters."""
    return [
        MetricPoint(
            key=marker_key(snapshot.source, t.table), ts=snapshot.scheduled_time, value=t.change_marker
        )
        for t in snapshot.tables
        if t.change_marker is not None and t.reused_from is None and t.error is None
    ]


def say_what_was_kept(findings: list[Finding], snapshot: Snapshot) -> list[Finding]:
    """Freshness and volume findings of tables whose values were kept say so, and since when."""
    kept = {t.table: t.reused_from for t in snapshot.tables if t.reused_from is not None}
    if not kept:
        return findings
    out = []
    for finding in findings:
        since = kept.get(finding.key.table)
        if since is None or finding.key.check not in (CheckKind.FRESHNESS, CheckKind.VOLUME):
            out.append(finding)
            continue
        note = (
            f"No row of {finding.key.table} was written since the full read at {since:%Y-%m-%d %H:%M} UTC "
            "(the database's write counters stood still), so that read's values were kept."
        )
        explanation = finding.explanation.model_copy(
            update={
                "reason": f"{finding.explanation.reason} {note}".strip(),
                "details": {**finding.explanation.details, "values_kept_from": since.isoformat()},
            }
        )
        out.append(finding.model_copy(update={"explanation": explanation}))
    return out
