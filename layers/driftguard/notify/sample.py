"""A realistic sample notification, for sending a test message through a configured channel (every
part of the layout shows once, before a real incident needs it) and for the notify tests."""

from __future__ import annotations

from datetime import datetime, timedelta

from driftguard.model import (
    AlertNotice,
    AlertStateName,
    CheckKey,
    CheckKind,
    Explanation,
    Finding,
    FindingStatus,
    NoticeKind,
    Notification,
    Severity,
    stable_hash,
    utcnow,
)


def sample_notification(channel: str, *, now: datetime | None = None) -> Notification:
    """One firing volume drop with recent values and one resolved freshness alert."""
    at = (now or utcnow()).replace(second=0, microsecond=0)
    volume = CheckKey(source="orders-db", table="public.orders", check=CheckKind.VOLUME, metric="row_count")
    freshness = CheckKey(
        source="orders-db", table="public.payments", check=CheckKind.FRESHNESS, metric="freshness"
    )
    drop = Explanation(
        observed=112.0,
        expected=1040.0,
        lower=820.0,
        upper=1260.0,
        score=9.3,
        method="seasonal median + MAD",
        seasonal_slot="Mon 09:00",
        direction="drop",
        effect_size=-0.892,
        reason="This is a test from DriftGuard: 112 new rows in the last hour, 89% below the usual "
        "1,040 for Monday 09:00.",
    )
    hours = range(8, 0, -1)
    return Notification(
        id=stable_hash("sample", channel, at.isoformat()),
        source="orders-db",
        channel=channel,
        run_time=at,
        created_at=at,
        owner="data-platform",
        tags=["tier-1", "sample"],
        alerts=[
            AlertNotice(
                key=volume,
                kind=NoticeKind.FIRING,
                state=AlertStateName.FIRING,
                severity=Severity.CRITICAL,
                since=at - timedelta(minutes=45),
                finding=Finding(
                    key=volume,
                    ts=at,
                    status=FindingStatus.ANOMALY,
                    severity=Severity.CRITICAL,
                    explanation=drop,
                ),
                transition_id=stable_hash("sample-transition", channel, at.isoformat()),
                changed="new alert",
                recent=[(at - timedelta(hours=h), 1000.0 + 40 * (h % 3)) for h in hours] + [(at, 112.0)],
            ),
            AlertNotice(
                key=freshness,
                kind=NoticeKind.RESOLVED,
                state=AlertStateName.RESOLVED,
                severity=Severity.WARNING,
                since=at,
                active_since=at - timedelta(hours=3, minutes=15),
                finding=None,
                transition_id=None,
                changed="data arrived again",
            ),
        ],
        silence_hint="driftguard silence --source orders-db --duration 2h --comment 'investigating'",
    )
