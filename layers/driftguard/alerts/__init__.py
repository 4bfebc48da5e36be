"""The pure alert lifecycle, silences and routing: what changed, and whom to tell.

`decide` is the engine's single entry point. It reads nothing and writes nothing: states,
silences and the run's scheduled time (`now`, the logical clock) come in; new states, the audit
trail and the outbox come out. Replaying the same run gives the same transition and
notification ids, so a retried run can never say the same thing twice.

- lifecycle.py: the state machine of one check (OK, PENDING, FIRING, RESOLVED, LEARNING, ERROR,
  NO_DATA) and its transitions;
- notices.py: which channel hears what (FIRING, ESCALATED, REPEAT, ERROR, RESOLVED) and the one
  grouped Notification per source, run and channel;
- silences.py: matchers, creating/extending/expiring silences, which silences mute an alert;
- routing.py: the Alertmanager-style routing tree;
- grouping.py: on routes that group (group_by, group_wait, group_interval), which group a notice
  joins, when a group is due and its one merged message.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime

from pydantic import Field

from driftguard.alerts.grouping import Grouping, group_due, group_of, merge, sealable
from driftguard.alerts.labels import LABEL_NAMES, Labels
from driftguard.alerts.lifecycle import advance
from driftguard.alerts.notices import PlannedNotice, build_notification, plan_notices, record_notified
from driftguard.alerts.routing import route, route_option, routes_of
from driftguard.alerts.silences import expire, extend, new_silence, parse_matcher, silenced_by
from driftguard.config import Config, Source
from driftguard.model import (
    AlertState,
    AlertStateName,
    CheckKind,
    Finding,
    Frozen,
    GroupedNotice,
    Notification,
    NotificationGroup,
    Severity,
    Silence,
    Transition,
    utc,
)

__all__ = [
    "LABEL_NAMES",
    "Decision",
    "Labels",
    "decide",
    "expire",
    "extend",
    "group_due",
    "merge",
    "new_silence",
    "parse_matcher",
    "route",
    "sealable",
    "silenced_by",
]


class Decision(Frozen):
    """Everything one run decided about one source's alerts, ready for `RunCommit`."""

    states: list[AlertState] = Field(default_factory=list)  # changed states; versions as read
    expected_versions: dict[str, int] = Field(default_factory=dict)  # fingerprint -> version read (0 = new)
    transitions: list[Transition] = Field(default_factory=list)
    notifications: list[Notification] = Field(default_factory=list)
    grouped: list[GroupedNotice] = Field(default_factory=list)  # notices of routes that group: they wait
    # silences that end now: they muted an alert that resolved on a route with end_silences_on_resolve
    expired_silences: list[Silence] = Field(default_factory=list)


def _by_fingerprint(source: Source, findings: Sequence[Finding]) -> dict[str, Finding]:
    out: dict[str, Finding] = {}
    for f in findings:
        if f.key.source != source.name:
            raise ValueError(f"finding {f.key.label} belongs to source {f.key.source!r}, not {source.name!r}")
        if f.fingerprint in out:
            raise ValueError(f"two findings for {f.key.label} in one run; each check reports once per run")
        out[f.fingerprint] = f
    return out


def decide(
    *,
    config: Config,
    source: Source,
    findings: list[Finding],
    states: Mapping[str, AlertState],
    silences: Sequence[Silence],
    now: datetime,
) -> Decision:
    """Advance every check of `source` that reported in this run and decide its notices.

    Checks without a finding in this run (e.g. a table whose collection failed) keep their state
    untouched. A silenced check moves like any other, its transition lists the silences, and it
    is not notified; its notice goes out on the first unsilenced run, because notices follow
    from the state (see notices.py). Options of the channel and route:
    - `resolved_when_silenced` (channel): its end is still told to a channel that heard of it;
    - `end_silences_on_resolve` (route): the silences that muted it end when it resolves
      (`Decision.expired_silences`, for the engine to store);
    - `inhibit_when_source_down` (route): while the source's availability alert is in ERROR, its
      table alerts are muted like silenced ones (their transitions say so).
    """
    now = utc(now)
    send_resolved = {c.name: c.send_resolved for c in config.channels}
    # a silenced (or inhibited) alert's end is told only to channels that asked for it
    resolved_when_muted = {c.name: c.send_resolved and c.resolved_when_silenced for c in config.channels}
    by_fingerprint = _by_fingerprint(source, findings)
    down = _source_down(source, by_fingerprint.values(), states, config, now)
    expired: dict[str, Silence] = {}
    new_states: list[AlertState] = []
    expected: dict[str, int] = {}
    transitions: list[Transition] = []
    outbox: dict[str, list[PlannedNotice]] = {}
    waiting: dict[str, tuple[NotificationGroup, list[PlannedNotice]]] = {}
    ordered = sorted(by_fingerprint.values(), key=lambda f: (f.key.label, f.fingerprint))
    for finding in ordered:
        previous = states.get(finding.fingerprint)
        step = advance(previous, finding, alerting=config.alerting, now=now)
        labels = Labels.of(finding.key, step.after.severity, source)
        silenced = silenced_by(labels, silences, now)
        muted = list(silenced)
        inhibited = down is not None and finding.key.check != CheckKind.SOURCE
        if inhibited and route_option(config.route, labels, "inhibit_when_source_down"):
            muted.append(f"inhibited: source {source.name} is down ({down})")
        if step.transition is not None:
            transitions.append(step.transition.model_copy(update={"silenced_by": muted}))
        routed = []
        if muted and not step.incident_ended:
            planned = []
        else:
            routed = routes_of(config.route, labels, default_repeat_interval=config.alerting.repeat_interval)
            planned = plan_notices(
                step,
                finding,
                routes=[(r.channel, r.repeat_interval) for r in routed],
                send_resolved=resolved_when_muted if muted else send_resolved,
                now=now,
            )
        if silenced and step.incident_ended and route_option(config.route, labels, "end_silences_on_resolve"):
            for s in silences:
                if s.id in silenced and s.id not in expired:
                    expired[s.id] = expire(s, now)
        after = record_notified(step.after, planned, finding, now) if planned else step.after
        if step.changed or planned:
            new_states.append(after)
            expected[finding.fingerprint] = previous.version if previous else 0
        grouping = {r.channel: (r.grouping, labels) for r in routed}
        for p in planned:
            how, as_labels = grouping.get(p.channel) or _heard_as(config, finding, source, p.channel)
            if how is None:
                outbox.setdefault(p.channel, []).append(p)
            else:
                group = group_of(how, p.channel, as_labels)
                waiting.setdefault(group.key, (group, []))[1].append(p)
    return Decision(
        states=new_states,
        expected_versions=expected,
        transitions=transitions,
        notifications=[build_notification(source, ch, outbox[ch], now) for ch in sorted(outbox)],
        grouped=[
            GroupedNotice(
                group=group,
                not_before=now + group.wait,
                notification=build_notification(source, group.channel, ps, now),
            )
            for group, ps in (waiting[k] for k in sorted(waiting))
        ],
        expired_silences=[expired[i] for i in sorted(expired)],
    )


def _heard_as(
    config: Config, finding: Finding, source: Source, channel: str
) -> tuple[Grouping | None, Labels]:
    """How a notice groups on a channel that routing no longer picks for the alert (it is told that
    an incident it heard of ended, after the severity changed): as the route that reaches the
    channel at another severity, the highest first; a channel no route reaches hears at once."""
    for severity in sorted(Severity, key=lambda s: s.rank, reverse=True):
        labels = Labels.of(finding.key, severity, source)
        for r in routes_of(config.route, labels, default_repeat_interval=config.alerting.repeat_interval):
            if r.channel == channel:
                return r.grouping, labels
    return None, Labels.of(finding.key, finding.severity, source)


def _source_down(
    source: Source,
    findings: Iterable[Finding],
    states: Mapping[str, AlertState],
    config: Config,
    now: datetime,
) -> str | None:
    """Why the source is down (its availability alert is in ERROR after this run), else None."""
    for f in findings:
        if f.key.check == CheckKind.SOURCE:
            step = advance(states.get(f.fingerprint), f, alerting=config.alerting, now=now)
            return f.explanation.reason if step.after.state == AlertStateName.ERROR else None
    for state in states.values():  # no availability finding in this run: as last decided
        own = state.key.check == CheckKind.SOURCE and state.key.source == source.name
        if own and state.state == AlertStateName.ERROR:
            return state.last_finding.explanation.reason if state.last_finding else "unreachable"
    return None
