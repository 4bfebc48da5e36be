"""The alert state machine, transition by transition, and decide()'s notification policy."""

from __future__ import annotations

from datetime import timedelta

import pytest
from test_alerts_fixtures import (
    ITEMS_NULLS,
    ORDERS_LAG,
    ORDERS_ROWS,
    RUN,
    SOURCE_KEY,
    T0,
    Runner,
    finding,
    make_config,
)

from driftguard.alerts import decide, new_silence
from driftguard.alerts.lifecycle import advance
from driftguard.config import Alerting
from driftguard.model import (
    AlertState,
    AlertStateName,
    FindingStatus,
    Matcher,
    NoticeKind,
    Severity,
)

S = AlertStateName
F = FindingStatus
ONE_RUN = Alerting(pending_runs=1, error_after_failures=1)

# (state before, finding) -> state after; None: no transition is recorded.
TABLE: list[tuple[AlertStateName, FindingStatus, AlertStateName, bool]] = [
    (S.OK, F.OK, S.OK, False),
    (S.OK, F.ANOMALY, S.FIRING, True),
    (S.OK, F.LEARNING, S.LEARNING, True),
    (S.OK, F.NO_DATA, S.NO_DATA, True),
    (S.OK, F.ERROR, S.ERROR, True),
    (S.PENDING, F.OK, S.OK, True),
    (S.PENDING, F.ANOMALY, S.FIRING, True),
    (S.PENDING, F.LEARNING, S.LEARNING, True),
    (S.PENDING, F.NO_DATA, S.NO_DATA, True),
    (S.PENDING, F.ERROR, S.ERROR, True),
    (S.FIRING, F.OK, S.RESOLVED, True),
    (S.FIRING, F.ANOMALY, S.FIRING, False),
    (S.FIRING, F.LEARNING, S.LEARNING, True),
    (S.FIRING, F.NO_DATA, S.NO_DATA, True),
    (S.FIRING, F.ERROR, S.ERROR, True),
    (S.RESOLVED, F.OK, S.OK, True),
    (S.RESOLVED, F.ANOMALY, S.FIRING, True),
    (S.RESOLVED, F.LEARNING, S.LEARNING, True),
    (S.RESOLVED, F.NO_DATA, S.NO_DATA, True),
    (S.RESOLVED, F.ERROR, S.ERROR, True),
    (S.LEARNING, F.OK, S.OK, True),
    (S.LEARNING, F.ANOMALY, S.FIRING, True),
    (S.LEARNING, F.LEARNING, S.LEARNING, False),
    (S.LEARNING, F.NO_DATA, S.NO_DATA, True),
    (S.LEARNING, F.ERROR, S.ERROR, True),
    (S.NO_DATA, F.OK, S.OK, True),
    (S.NO_DATA, F.ANOMALY, S.FIRING, True),
    (S.NO_DATA, F.LEARNING, S.LEARNING, True),
    (S.NO_DATA, F.NO_DATA, S.NO_DATA, False),
    (S.NO_DATA, F.ERROR, S.ERROR, True),
    (S.ERROR, F.OK, S.RESOLVED, True),
    (S.ERROR, F.ANOMALY, S.FIRING, True),
    (S.ERROR, F.LEARNING, S.LEARNING, True),
    (S.ERROR, F.NO_DATA, S.NO_DATA, True),
    (S.ERROR, F.ERROR, S.ERROR, False),
]


def _state(name: AlertStateName) -> AlertState:
    incident = name in (S.PENDING, S.FIRING, S.ERROR)
    return AlertState(
        key=ORDERS_ROWS,
        state=name,
        since=T0 - RUN,
        active_since=T0 - RUN if incident else None,
        version=7,
    )


@pytest.mark.parametrize(("before", "status", "after", "recorded"), TABLE)
def test_every_transition(before: S, status: F, after: S, recorded: bool) -> None:
    step = advance(_state(before), finding(status), alerting=ONE_RUN, now=T0)
    assert step.after.state == after
    assert step.after.version == 7  # passed through: the store increments it
    if recorded:
        assert step.transition is not None
        assert (step.transition.from_state, step.transition.to_state) == (before, after)
        assert step.transition.at == T0
        assert step.transition.reason
        assert step.transition.finding == finding(status)
        assert step.after.last_transition_id == step.transition.id
        assert step.after.since == T0
    else:
        assert step.transition is None
        assert step.after.since == T0 - RUN


def test_transition_ids_are_stable_and_distinct() -> None:
    a = advance(_state(S.OK), finding(F.ANOMALY), alerting=ONE_RUN, now=T0).transition
    b = advance(_state(S.OK), finding(F.ANOMALY), alerting=ONE_RUN, now=T0).transition
    c = advance(_state(S.OK), finding(F.ANOMALY, at=T0 + RUN), alerting=ONE_RUN, now=T0 + RUN).transition
    d = advance(_state(S.OK), finding(F.ERROR), alerting=ONE_RUN, now=T0).transition
    assert a is not None and b is not None and c is not None and d is not None
    assert a.id == b.id
    assert len({a.id, c.id, d.id}) == 3


def test_incident_start_survives_moves_between_incident_states() -> None:
    firing = _state(S.FIRING)
    step = advance(firing, finding(F.ERROR), alerting=ONE_RUN, now=T0)
    assert step.after.state == S.ERROR
    assert step.after.active_since == T0 - RUN
    resolved = advance(step.after, finding(F.OK, at=T0 + RUN), alerting=ONE_RUN, now=T0 + RUN)
    assert resolved.after.active_since is None
    assert resolved.incident_ended


def test_pending_holds_for_pending_runs_then_fires() -> None:
    r = Runner(make_config(alerting={"pending_runs": 3}))
    seen = []
    for i in range(4):
        r.run([finding(F.ANOMALY, at=T0 + i * RUN)], T0 + i * RUN)
        seen.append((r.state().state, r.state().consecutive))
    assert seen == [(S.PENDING, 1), (S.PENDING, 2), (S.FIRING, 3), (S.FIRING, 4)]
    moves = [(t.from_state, t.to_state) for d in r.decisions for t in d.transitions]
    assert moves == [(S.OK, S.PENDING), (S.PENDING, S.FIRING)]
    assert [len(d.notifications) for d in r.decisions] == [0, 0, 1, 0]
    assert r.state().active_since == T0  # the incident began with the first anomalous run


def test_pending_that_clears_never_notifies() -> None:
    r = Runner(make_config(alerting={"pending_runs": 2}))
    r.run([finding(F.ANOMALY)], T0)
    d = r.run([finding(F.OK, at=T0 + RUN)], T0 + RUN)
    assert r.state().state == S.OK
    assert [(t.from_state, t.to_state) for t in d.transitions] == [(S.PENDING, S.OK)]
    assert d.notifications == []


def test_one_run_fires_with_a_single_transition() -> None:
    r = Runner(make_config())
    d = r.run([finding(F.ANOMALY, reason="3 rows, expected 1000")], T0)
    [t] = d.transitions
    assert (t.from_state, t.to_state) == (S.OK, S.FIRING)
    assert "3 rows, expected 1000" in t.reason
    [n] = d.notifications
    [a] = n.alerts
    assert (a.kind, a.state, a.transition_id, a.since) == (NoticeKind.FIRING, S.FIRING, t.id, T0)


def test_errors_alert_once_after_error_after_failures() -> None:
    r = Runner(make_config(alerting={"error_after_failures": 2}))
    r.run([finding(F.ANOMALY, key=SOURCE_KEY)], T0)  # firing first
    counts = []
    for i in range(1, 7):
        d = r.run([finding(F.ERROR, key=SOURCE_KEY, at=T0 + i * RUN)], T0 + i * RUN)
        counts.append((r.state(SOURCE_KEY).state, [a.kind for n in d.notifications for a in n.alerts]))
    assert counts == [
        (S.FIRING, []),  # one failure changes nothing
        (S.ERROR, [NoticeKind.ERROR]),
        (S.ERROR, []),
        (S.ERROR, []),
        (S.ERROR, []),
        (S.ERROR, []),
    ]
    d = r.run([finding(F.OK, key=SOURCE_KEY, at=T0 + 7 * RUN)], T0 + 7 * RUN)
    [n] = d.notifications
    assert [(a.kind, a.state) for a in n.alerts] == [(NoticeKind.RESOLVED, S.RESOLVED)]
    assert n.alerts[0].changed.startswith("ERROR → RESOLVED")


def test_an_interrupted_error_streak_starts_again() -> None:
    r = Runner(make_config(alerting={"error_after_failures": 2}))
    statuses = [F.ERROR, F.OK, F.ERROR, F.OK, F.ERROR, F.ERROR]
    for i, status in enumerate(statuses):
        r.run([finding(status, at=T0 + i * RUN)], T0 + i * RUN)
    moves = [(t.from_state, t.to_state) for d in r.decisions for t in d.transitions]
    assert moves == [(S.OK, S.ERROR)]
    assert r.decisions[-1].transitions[0].at == T0 + 5 * RUN


def test_escalation_notifies_again_and_deescalation_does_not() -> None:
    r = Runner(make_config())
    r.run([finding(F.ANOMALY, severity=Severity.WARNING, observed=120.0)], T0)
    d = r.run([finding(F.ANOMALY, severity=Severity.CRITICAL, observed=12.0, at=T0 + RUN)], T0 + RUN)
    [t] = d.transitions
    assert (t.from_state, t.to_state, t.reason) == (S.FIRING, S.FIRING, "severity warning → critical")
    [n] = d.notifications
    [a] = n.alerts
    assert (a.kind, a.severity) == (NoticeKind.ESCALATED, Severity.CRITICAL)
    assert a.changed == "severity warning → critical; value 120 → 12"
    d = r.run([finding(F.ANOMALY, severity=Severity.WARNING, at=T0 + 2 * RUN)], T0 + 2 * RUN)
    assert [(t.from_state, t.to_state) for t in d.transitions] == [(S.FIRING, S.FIRING)]
    assert d.notifications == []
    assert r.state().severity == Severity.WARNING


def test_repeats_wait_for_repeat_interval_per_route() -> None:
    config = make_config(
        channels=[{"name": "chat", "type": "console"}, {"name": "pager", "type": "console"}],
        route={
            "receivers": ["chat"],
            "repeat_interval": "1h",
            "routes": [
                {"match": {"table": "orders"}, "receivers": ["chat"], "continue": True},
                {"match": {"table": "orders"}, "receivers": ["pager"], "repeat_interval": "30m"},
            ],
        },
        alerting={"repeat_interval": "4h"},
    )
    r = Runner(config)
    sent: dict[str, list[int]] = {"chat": [], "pager": []}
    for i in range(9):  # every 15 minutes for two hours
        d = r.run([finding(F.ANOMALY, at=T0 + i * RUN)], T0 + i * RUN)
        for n in d.notifications:
            assert [a.kind for a in n.alerts] == [NoticeKind.FIRING if i == 0 else NoticeKind.REPEAT]
            sent[n.channel].append(i)
    assert sent == {"chat": [0, 4, 8], "pager": [0, 2, 4, 6, 8]}


def test_resolved_goes_only_to_channels_that_heard_and_want_it() -> None:
    config = make_config(
        channels=[
            {"name": "chat", "type": "console"},
            {"name": "quiet", "type": "console", "send_resolved": False},
            {"name": "crit", "type": "console"},
        ],
        route={
            "receivers": ["chat", "quiet"],
            "routes": [{"match": {"severity": "critical"}, "receivers": ["crit"], "continue": True}],
        },
    )
    r = Runner(config)
    r.run([finding(F.ANOMALY)], T0)
    d = r.run([finding(F.OK, at=T0 + RUN)], T0 + RUN)
    assert [(n.channel, [a.kind for a in n.alerts]) for n in d.notifications] == [
        ("chat", [NoticeKind.RESOLVED])
    ]
    assert d.notifications[0].silence_hint == ""
    d = r.run([finding(F.OK, at=T0 + 2 * RUN)], T0 + 2 * RUN)
    assert r.state().state == S.OK
    assert d.notifications == []


def test_one_notification_per_channel_groups_the_sources_alerts() -> None:
    r = Runner(make_config())
    d = r.run(
        [
            finding(F.ANOMALY, key=ORDERS_ROWS),
            finding(F.ANOMALY, key=ITEMS_NULLS, severity=Severity.CRITICAL),
            finding(F.OK, key=ORDERS_LAG),
        ],
        T0,
    )
    [n] = d.notifications
    assert {a.key for a in n.alerts} == {ORDERS_ROWS, ITEMS_NULLS}
    assert (n.source, n.channel, n.run_time, n.created_at) == ("orders_db", "console", T0, T0)
    assert (n.owner, n.tags) == ("data-team", ["tier1", "sales"])
    assert n.worst_severity == Severity.CRITICAL
    assert n.silence_hint == (
        "driftguard silence --source orders_db --match 'table=~items|orders' --duration 2h --comment '<why>'"
    )


def test_silence_hint_names_the_table_and_check_when_there_is_one() -> None:
    d = Runner(make_config()).run([finding(F.ANOMALY, key=ORDERS_ROWS)], T0)
    assert d.notifications[0].silence_hint == (
        "driftguard silence --source orders_db --table orders --check volume --duration 2h --comment '<why>'"
    )


def test_silence_hint_names_the_segments_when_every_alert_is_a_segments() -> None:
    de = ORDERS_ROWS.model_copy(update={"segment": "country=DE"})
    gb = ORDERS_ROWS.model_copy(update={"segment": "country=GB"})
    one = Runner(make_config()).run([finding(F.ANOMALY, key=de)], T0)
    assert one.notifications[0].silence_hint == (
        "driftguard silence --source orders_db --table orders --check volume --match segment=country=DE "
        "--duration 2h --comment '<why>'"
    )
    two = Runner(make_config()).run([finding(F.ANOMALY, key=de), finding(F.ANOMALY, key=gb)], T0)
    assert "--match 'segment=~country=DE|country=GB'" in two.notifications[0].silence_hint
    mixed = Runner(make_config()).run([finding(F.ANOMALY, key=de), finding(F.ANOMALY, key=ORDERS_ROWS)], T0)
    assert "segment" not in mixed.notifications[0].silence_hint  # the whole table's alert is in it too


def test_replaying_a_run_gives_the_same_ids() -> None:
    r = Runner(make_config())
    r.run([finding(F.ANOMALY)], T0)
    states = dict(r.states)
    later = [finding(F.ANOMALY, key=ITEMS_NULLS, at=T0 + RUN), finding(F.OK, at=T0 + RUN)]
    kwargs = {"config": r.config, "source": r.source, "findings": later, "states": states, "silences": []}
    first = decide(**kwargs, now=T0 + RUN)  # type: ignore[arg-type]
    again = decide(**kwargs, now=T0 + RUN)  # type: ignore[arg-type]
    assert first == again
    assert len(first.notifications) == 1 and len(first.transitions) == 2
    other = decide(**kwargs, now=T0 + 2 * RUN)  # type: ignore[arg-type]
    assert {n.id for n in other.notifications}.isdisjoint(n.id for n in first.notifications)


def test_versions_are_passed_through_and_unchanged_states_not_written() -> None:
    r = Runner(make_config())
    d = r.run([finding(F.OK)], T0)
    assert d.expected_versions == {ORDERS_ROWS.fingerprint: 0}  # new state, stored once
    assert d.transitions == []
    d = r.run([finding(F.OK, at=T0 + RUN)], T0 + RUN)
    assert d.states == [] and d.expected_versions == {}
    d = r.run([finding(F.ANOMALY, at=T0 + 2 * RUN)], T0 + 2 * RUN)
    assert d.expected_versions == {ORDERS_ROWS.fingerprint: 1}
    assert d.states[0].version == 1
    assert d.states[0].notified_at == {"console": T0 + 2 * RUN}


def test_checks_without_a_finding_keep_their_state() -> None:
    r = Runner(make_config())
    r.run([finding(F.ANOMALY), finding(F.ANOMALY, key=ITEMS_NULLS)], T0)
    d = r.run([finding(F.OK, at=T0 + RUN)], T0 + RUN)
    assert [s.key for s in d.states] == [ORDERS_ROWS]
    assert r.state(ITEMS_NULLS).state == S.FIRING


def test_silenced_alert_moves_records_silences_and_notifies_once_the_silence_ends() -> None:
    r = Runner(make_config())
    silence = new_silence(
        [Matcher(label="table", value="orders")],
        created_by="ana",
        comment="migration",
        now=T0,
        duration=RUN * 2,
    )
    r.silences.append(silence)
    d = r.run([finding(F.ANOMALY)], T0)
    [t] = d.transitions
    assert t.to_state == S.FIRING and t.silenced_by == [silence.id]
    assert d.notifications == []
    assert r.run([finding(F.ANOMALY, at=T0 + RUN)], T0 + RUN).notifications == []
    d = r.run([finding(F.ANOMALY, at=T0 + 2 * RUN)], T0 + 2 * RUN)  # the silence ended at T0 + 2 runs
    [n] = d.notifications
    assert [(a.kind, a.transition_id, a.since) for a in n.alerts] == [(NoticeKind.FIRING, t.id, T0)]


def test_an_incident_that_ends_while_silenced_resolves_quietly() -> None:
    r = Runner(make_config())
    r.run([finding(F.ANOMALY)], T0)
    r.silences.append(
        new_silence(
            [Matcher(label="source", value="orders_db")],
            created_by="a",
            comment="x",
            now=T0,
            duration=RUN * 4,
        )
    )
    d = r.run([finding(F.OK, at=T0 + RUN)], T0 + RUN)
    assert d.notifications == [] and d.transitions[0].to_state == S.RESOLVED
    assert r.run([finding(F.OK, at=T0 + 8 * RUN)], T0 + 8 * RUN).notifications == []


def test_findings_must_belong_to_the_source_and_be_unique() -> None:
    config = make_config()
    foreign = finding(F.OK, key=ORDERS_ROWS.model_copy(update={"source": "other"}))
    with pytest.raises(ValueError, match="belongs to source 'other'"):
        decide(config=config, source=config.sources[0], findings=[foreign], states={}, silences=[], now=T0)
    with pytest.raises(ValueError, match="two findings"):
        decide(
            config=config,
            source=config.sources[0],
            findings=[finding(F.OK), finding(F.ANOMALY)],
            states={},
            silences=[],
            now=T0,
        )


def test_a_removed_channel_is_not_sent_a_resolved_notice() -> None:
    r = Runner(make_config(channels=[{"name": "old", "type": "console"}]))
    r.run([finding(F.ANOMALY)], T0)
    r.config = make_config(channels=[{"name": "new", "type": "console"}])
    assert r.run([finding(F.OK, at=T0 + RUN)], T0 + RUN).notifications == []


def test_repeat_is_counted_from_the_last_notice_not_the_incident_start() -> None:
    r = Runner(make_config(alerting={"repeat_interval": "1h"}))
    r.run([finding(F.ANOMALY)], T0)
    late = T0 + timedelta(minutes=50)
    assert r.run([finding(F.ANOMALY, at=late)], late).notifications == []
    on_time = T0 + timedelta(hours=1)
    [n] = r.run([finding(F.ANOMALY, at=on_time)], on_time).notifications
    assert n.alerts[0].kind == NoticeKind.REPEAT


@pytest.mark.parametrize(("status", "state"), [(F.LEARNING, S.LEARNING), (F.NO_DATA, S.NO_DATA)])
def test_an_incident_that_can_no_longer_be_judged_is_resolved(status: F, state: S) -> None:
    r = Runner(make_config())
    r.run([finding(F.ANOMALY)], T0)
    [n] = r.run([finding(status, at=T0 + RUN)], T0 + RUN).notifications
    assert [(a.kind, a.state, a.changed) for a in n.alerts] == [
        (NoticeKind.RESOLVED, state, f"FIRING → {state}")
    ]
    assert n.title == "[RESOLVED] orders_db: 1 alert(s) resolved"


def test_a_check_that_recovers_from_error_into_an_anomaly_fires_anew() -> None:
    r = Runner(make_config(alerting={"error_after_failures": 1}))
    [n] = r.run([finding(F.ERROR, key=SOURCE_KEY, reason="connection refused")], T0).notifications
    assert [a.kind for a in n.alerts] == [NoticeKind.ERROR]
    assert "connection refused" in r.decisions[-1].transitions[0].reason
    [n] = r.run([finding(F.ANOMALY, key=SOURCE_KEY, at=T0 + RUN)], T0 + RUN).notifications
    assert [(a.kind, a.changed) for a in n.alerts] == [(NoticeKind.FIRING, "ERROR → FIRING")]
    assert r.state(SOURCE_KEY).active_since == T0  # one incident throughout
