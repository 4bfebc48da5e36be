"""What to tell which channel about one check after its step, and the grouped message.

The policy is decided from the state, per channel, not from the transition alone, so a notice
that a silence held back is sent by the first run after the silence ends:
- FIRING: a channel that has not heard of the current FIRING spell (`notified_at[channel]` is
  before `since`) gets FIRING; one that has gets ESCALATED when the severity rose above what was
  last notified, else REPEAT once its route's `repeat_interval` has passed. Only runs whose
  finding is an anomaly notify: a run that failed says nothing new about the condition.
- ERROR: once per outage, to each routed channel that has not heard of it; so is the source's own
  NO_DATA (no run recorded for two periods: the watchdog), as an ERROR notice.
- RESOLVED: when an incident ends, to every channel that was notified during it (even if routing
  would no longer pick it) and whose `send_resolved` is true. Channels that never heard of the
  incident, e.g. because it was silenced throughout, are not told that it ended.
Silenced alerts get no notice at all; their state still moves (see driftguard.alerts.decide).
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from driftguard.alerts.lifecycle import Step, is_incident
from driftguard.config import Source
from driftguard.formatting import format_value
from driftguard.model import (
    AlertNotice,
    AlertState,
    AlertStateName,
    CheckKey,
    Finding,
    FindingStatus,
    NoticeKind,
    Notification,
    stable_hash,
)

SILENCE_HINT_DURATION = "2h"


@dataclass(frozen=True)
class PlannedNotice:
    channel: str
    notice: AlertNotice
    marker: str  # the dedup marker of this notice within its run: a transition id or kind:fingerprint


def _kind_for(
    step: Step, finding: Finding, channel: str, interval: timedelta, now: datetime
) -> NoticeKind | None:
    after = step.after
    heard_at = after.notified_at.get(channel)
    if heard_at is None or heard_at < after.since:  # this channel has not heard of the current state
        source_blind = after.state == AlertStateName.NO_DATA and is_incident(after.state, after.key)
        if after.state == AlertStateName.ERROR or source_blind:
            return NoticeKind.ERROR
        firing_now = after.state == AlertStateName.FIRING and finding.status == FindingStatus.ANOMALY
        return NoticeKind.FIRING if firing_now else None
    if after.state != AlertStateName.FIRING or finding.status != FindingStatus.ANOMALY:
        return None
    notified_rank = after.last_notified_severity.rank if after.last_notified_severity else -1
    if after.severity.rank > notified_rank:
        return NoticeKind.ESCALATED
    return NoticeKind.REPEAT if now - heard_at >= interval else None


def _resolved_channels(before: AlertState, send_resolved: Mapping[str, bool]) -> list[str]:
    began = before.active_since or before.since
    return [c for c, at in sorted(before.notified_at.items()) if at >= began and send_resolved.get(c, False)]


def _changed(step: Step, finding: Finding) -> str:
    parts: list[str] = []
    t = step.transition
    if t is not None and t.from_state != t.to_state:
        parts.append(f"{t.from_state.value} → {t.to_state.value}")
    told = step.before.last_notified_severity
    if told is not None and told != step.after.severity:
        parts.append(f"severity {told.value} → {step.after.severity.value}")
    last = step.before.last_notified_finding
    old = last.explanation.observed if last is not None else None
    new = finding.explanation.observed
    if old is not None and new is not None and old != new:
        key = finding.key
        before, after = (format_value(v, seconds=key.measures_time, rate=key.is_rate) for v in (old, new))
        parts.append(f"value {before} → {after}")
    return "; ".join(parts)


def plan_notices(
    step: Step,
    finding: Finding,
    *,
    routes: Sequence[tuple[str, timedelta]],
    send_resolved: Mapping[str, bool],
    now: datetime,
) -> list[PlannedNotice]:
    """The notices one (unsilenced) check's step calls for, one per channel at most."""
    if step.incident_ended:
        kinds = {c: NoticeKind.RESOLVED for c in _resolved_channels(step.before, send_resolved)}
    else:
        kinds = {
            c: k for c, interval in routes if (k := _kind_for(step, finding, c, interval, now)) is not None
        }
    if not kinds:
        return []
    transition_id = step.transition.id if step.transition else step.after.last_transition_id
    changed = _changed(step, finding)
    planned = []
    for channel, kind in kinds.items():
        notice = AlertNotice(
            key=finding.key,
            kind=kind,
            state=step.after.state,
            severity=step.after.severity,
            since=step.after.since,
            finding=finding,
            transition_id=transition_id,
            changed=changed,
        )
        marker = step.transition.id if step.transition else f"{kind.value}:{finding.fingerprint}"
        planned.append(PlannedNotice(channel=channel, notice=notice, marker=marker))
    return planned


def record_notified(
    state: AlertState, planned: Sequence[PlannedNotice], finding: Finding, now: datetime
) -> AlertState:
    """The state's bookkeeping after `planned` notices were put in the outbox."""
    return state.model_copy(
        update={
            "notified_at": {**state.notified_at, **{p.channel: now for p in planned}},
            "last_notified_at": now,
            "last_notified_severity": state.severity,
            "last_notified_finding": finding,
        }
    )


def silence_hint(source: str, keys: Sequence[CheckKey]) -> str:
    """The `driftguard silence` command that mutes exactly these alerts' tables (and check)."""
    if not keys:
        return ""
    args = ["driftguard", "silence", "--source", source]
    tables = sorted({k.table for k in keys})
    if "" not in tables:
        if len(tables) == 1:
            args += ["--table", tables[0]]
        else:
            args += ["--match", "table=~" + "|".join(re.escape(t) for t in tables)]
    checks = sorted({k.check.value for k in keys})
    if len(checks) == 1:
        args += ["--check", checks[0]]
    segments = sorted({k.segment or "" for k in keys})
    if "" not in segments:  # every alert is one segment's (tables[].segment_by): mute those alone
        if len(segments) == 1:
            args += ["--match", "segment=" + segments[0]]
        else:
            args += ["--match", "segment=~" + "|".join(re.escape(s) for s in segments)]
    args += ["--duration", SILENCE_HINT_DURATION, "--comment", "<why>"]
    return shlex.join(args)


def build_notification(
    source: Source, channel: str, planned: Sequence[PlannedNotice], now: datetime
) -> Notification:
    """One message for one source, run and channel; its id is stable for the same run's notices."""
    markers = sorted(p.marker for p in planned)
    notices = [p.notice for p in planned]
    return Notification(
        id=stable_hash(source.name, now.isoformat(), channel, *markers),
        source=source.name,
        channel=channel,
        run_time=now,
        created_at=now,
        owner=source.owner,
        tags=list(source.tags),
        alerts=notices,
        silence_hint=silence_hint(source.name, [n.key for n in notices if n.kind != NoticeKind.RESOLVED]),
    )
