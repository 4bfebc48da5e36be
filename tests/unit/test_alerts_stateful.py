"""Stateful property tests: random runs, silences and clock moves through decide().

The machine feeds decide() its own states back (as the engine and store do) and checks, after
every run, invariants stated from the outside: what an operator would notice if they broke.
Silence matching is re-derived here from single exact matchers, independently of the code.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, rule
from test_alerts_fixtures import ITEMS_NULLS, ORDERS_ROWS, RUN, SOURCE_KEY, T0, Runner, finding, make_config

from driftguard.alerts import Decision, decide, group_due, merge, new_silence
from driftguard.model import (
    AlertNotice,
    AlertState,
    AlertStateName,
    CheckKey,
    CheckKind,
    Finding,
    FindingStatus,
    GroupedNotice,
    Matcher,
    NoticeKind,
    Notification,
    Severity,
    Silence,
    Transition,
    stable_hash,
)

S = AlertStateName
INCIDENT = {S.PENDING, S.FIRING, S.ERROR}


def incident(state: AlertStateName, key: CheckKey) -> bool:
    """The source's own NO_DATA (the watchdog found no run) is an incident too; a table's is not."""
    return state in INCIDENT or (state == S.NO_DATA and key.check == CheckKind.SOURCE)


def pages(state: AlertStateName, key: CheckKey) -> bool:
    """States announced once per outage, like ERROR."""
    return state == S.ERROR or (state == S.NO_DATA and incident(state, key))


KEYS = [ORDERS_ROWS, ITEMS_NULLS, SOURCE_KEY]
INTERVAL = {"chat": timedelta(hours=1), "quiet": timedelta(hours=1), "pager": timedelta(minutes=30)}
SEND_RESOLVED = {"chat": True, "quiet": False, "pager": True}
ROUTE = {
    "receivers": ["chat"],
    "repeat_interval": "1h",
    "routes": [
        {"match": {"source": "orders_db"}, "receivers": ["chat", "quiet"], "continue": True},
        {"match": {"severity": "critical"}, "receivers": ["pager"], "repeat_interval": "30m"},
    ],
}
CHANNELS = [{"name": n, "type": "console", "send_resolved": SEND_RESOLVED[n]} for n in INTERVAL]
MATCHERS = [
    ("table", "orders"),
    ("table", "items"),
    ("source", "orders_db"),
    ("severity", "critical"),
    ("check", "source"),
]

observations = st.sampled_from(
    [
        None,
        (FindingStatus.OK, Severity.WARNING),
        (FindingStatus.ANOMALY, Severity.WARNING),
        (FindingStatus.ANOMALY, Severity.CRITICAL),
        (FindingStatus.ERROR, Severity.WARNING),
        (FindingStatus.LEARNING, Severity.WARNING),
        (FindingStatus.NO_DATA, Severity.WARNING),
    ]
)


def _label(key: CheckKey, severity: Severity, label: str) -> str:
    return {"table": key.table, "source": key.source, "severity": severity.value, "check": key.check.value}[
        label
    ]


def _routed(severity: Severity) -> set[str]:
    return {"chat", "quiet"} | ({"pager"} if severity == Severity.CRITICAL else set())


class AlertLifecycle(RuleBasedStateMachine):
    # the lifecycle options (all off here; LifecycleOptions turns them on)
    resolved_when_silenced: dict[str, bool] = dict.fromkeys(INTERVAL, False)
    end_silences_on_resolve = False
    inhibit_when_source_down = False

    @initialize(pending_runs=st.integers(1, 3), error_after_failures=st.integers(1, 3))
    def setup(self, pending_runs: int, error_after_failures: int) -> None:
        channels = [{**c, "resolved_when_silenced": self.resolved_when_silenced[c["name"]]} for c in CHANNELS]
        route = {
            **ROUTE,
            "end_silences_on_resolve": self.end_silences_on_resolve,
            "inhibit_when_source_down": self.inhibit_when_source_down,
        }
        config = make_config(
            channels=channels,
            route=route,
            alerting={"pending_runs": pending_runs, "error_after_failures": error_after_failures},
        )
        self.runner = Runner(config)
        self.now = T0
        self.notification_ids: set[str] = set()
        self.transition_ids: set[str] = set()
        self.announced: set[tuple[str, str | None, NoticeKind]] = set()  # (channel, transition, kind)
        self.heard: dict[str, set[str]] = {}  # fingerprint -> channels told during the incident
        self.spell: dict[str, set[str]] = {}  # fingerprint -> channels told during the current state
        self.errors_told: dict[str, Counter[str]] = {}
        self.last_notice: dict[tuple[str, str], datetime] = {}
        self.streaks: dict[str, tuple[FindingStatus, int]] = {}  # fingerprint -> (status, consecutive runs)

    # ------------------------------------------------------------------ rules

    @rule(
        seen=st.tuples(observations, observations, observations),
        gap=st.sampled_from([1, 1, 1, 2, 3, 4, 8]),
    )
    def run(self, seen: tuple[tuple[FindingStatus, Severity] | None, ...], gap: int) -> None:
        self.now += gap * RUN
        findings = [
            finding(obs[0], key=key, severity=obs[1], at=self.now, observed=float(gap))
            for key, obs in zip(KEYS, seen, strict=True)
            if obs is not None
        ]
        before = dict(self.runner.states)
        silences_before = list(self.runner.silences)
        decision = self.runner.run(findings, self.now)
        replay = decide(
            config=self.runner.config,
            source=self.runner.source,
            findings=findings,
            states=before,
            silences=silences_before,
            now=self.now,
        )
        assert replay == decision, "a replayed run must decide exactly the same, ids included"
        self.silences_before = silences_before
        self._check_run(findings, before, self._told(decision), decision.transitions)

    def _told(self, decision: Decision) -> list[Notification]:
        """What the run tells each channel (here: at once, one message per channel)."""
        assert decision.grouped == [], "no route groups: nothing waits"
        return decision.notifications

    @rule(which=st.sampled_from(MATCHERS), starts_in=st.sampled_from([0, 0, 2]), runs=st.integers(1, 12))
    def add_silence(self, which: tuple[str, str], starts_in: int, runs: int) -> None:
        start = self.now + starts_in * RUN
        self.runner.silences.append(
            new_silence(
                [Matcher(label=which[0], value=which[1])],
                created_by="test",
                comment="random",
                now=self.now,
                starts_at=start,
                duration=runs * RUN,
            )
        )

    @rule(data=st.data())
    def remove_silence(self, data: st.DataObject) -> None:
        if self.runner.silences:
            self.runner.silences.pop(data.draw(st.integers(0, len(self.runner.silences) - 1)))

    # ------------------------------------------------------------------ invariants

    def _check_move(self, f: Finding, was: AlertStateName, now_in: AlertStateName) -> None:
        """The documented moves: PENDING for `pending_runs`, ERROR after `error_after_failures`."""
        last, count = self.streaks.get(f.fingerprint, (FindingStatus.OK, 0))
        streak = count + 1 if last == f.status else 1
        self.streaks[f.fingerprint] = (f.status, streak)
        alerting = self.runner.config.alerting
        if f.status == FindingStatus.ERROR:
            failed = was == S.ERROR or streak >= alerting.error_after_failures
            assert now_in == (S.ERROR if failed else was), f"{streak} failure(s) moved {was} to {now_in}"
        elif f.status == FindingStatus.ANOMALY:
            fires = was == S.FIRING or streak >= alerting.pending_runs
            assert now_in == (S.FIRING if fires else S.PENDING), f"{streak} anomalies moved {was} to {now_in}"
        elif f.status == FindingStatus.NO_DATA:
            assert now_in == S.NO_DATA, f"no data moved {was} to {now_in}"
        else:
            assert not incident(now_in, f.key), f"{f.status} left the alert {now_in}"

    def _silenced(self, key: CheckKey, severity: Severity) -> bool:
        return any(_matches(s, key, severity, self.now) for s in self.silences_before)

    def _inhibited(self, key: CheckKey) -> bool:
        """The source's availability alert is in ERROR after this run, and this is a table's alert."""
        source = self.runner.states.get(SOURCE_KEY.fingerprint)
        down = source is not None and source.state == S.ERROR
        return self.inhibit_when_source_down and down and key != SOURCE_KEY

    def _check_run(
        self,
        findings: list[Finding],
        before: dict[str, AlertState],
        notifications: list[Notification],
        transitions: list[Transition],
    ) -> None:
        channels = [n.channel for n in notifications]
        assert len(channels) == len(set(channels)), "one notification per channel per run"
        notices: dict[str, dict[str, AlertNotice]] = {}
        for n in notifications:
            assert n.id not in self.notification_ids, "a notification id was reused"
            self.notification_ids.add(n.id)
            assert n.alerts and n.run_time == self.now
            for a in n.alerts:
                assert a.key.fingerprint not in notices.get(n.channel, {}), (
                    "an alert twice in one notification"
                )
                notices.setdefault(a.key.fingerprint, {})[n.channel] = a
        for t in transitions:
            assert t.id not in self.transition_ids, "a transition was recorded twice"
            self.transition_ids.add(t.id)
        for f in findings:
            self._check_alert(f, before.get(f.fingerprint), notices.get(f.fingerprint, {}))

    def _check_alert(self, f: Finding, previous: AlertState | None, told: dict[str, AlertNotice]) -> None:
        fp = f.fingerprint
        after = self.runner.states[fp]
        was = previous.state if previous else S.OK
        self._check_move(f, was, after.state)
        silenced = self._silenced(f.key, after.severity)
        muted = silenced or self._inhibited(f.key)
        ended = incident(was, f.key) and not incident(after.state, f.key)
        if muted and not ended:
            assert not told, "notified while muted by a matching silence or a source that is down"
        if silenced and ended and self.end_silences_on_resolve:
            still = [s for s in self.runner.silences if _matches(s, f.key, after.severity, self.now)]
            assert not still, "a silence outlived the alert it muted, whose route ends silences on resolve"
        if not incident(was, f.key) and incident(after.state, f.key):
            self.heard[fp] = set()
        if after.state != was:
            self.spell[fp] = set()
        resolved = {c for c, a in told.items() if a.kind == NoticeKind.RESOLVED}
        if ended:
            heard = {c for c in self.heard.get(fp, set()) if SEND_RESOLVED[c]}
            expected = {c for c in heard if self.resolved_when_silenced[c]} if muted else heard
            assert resolved == expected, "an ended incident is resolved exactly to those who heard of it"
            assert set(told) == resolved
        else:
            assert not resolved, "RESOLVED outside the end of an incident"
        if (after.state != S.FIRING and not pages(after.state, f.key)) or (
            after.state == S.FIRING and f.status != FindingStatus.ANOMALY
        ):
            assert set(told) == resolved, "only firing runs and errors notify"
        for channel, a in told.items():
            if a.kind == NoticeKind.REPEAT:
                gap = self.now - self.last_notice[(fp, channel)]
                assert gap >= INTERVAL[channel], f"repeat after {gap} on {channel}"
            else:
                marker = (channel, a.transition_id, a.kind)
                assert marker not in self.announced, "the same transition was notified twice"
                self.announced.add(marker)
            self.last_notice[(fp, channel)] = self.now
            if a.kind != NoticeKind.RESOLVED:
                self.heard.setdefault(fp, set()).add(channel)
                self.spell.setdefault(fp, set()).add(channel)
        if pages(after.state, f.key):
            counts = self.errors_told.setdefault(fp, Counter()) if was == after.state else Counter()
            counts.update(c for c, a in told.items() if a.kind == NoticeKind.ERROR)
            self.errors_told[fp] = counts
            assert max(counts.values(), default=0) <= 1, "ERROR notified more than once per outage"
        announce = pages(after.state, f.key) or (
            after.state == S.FIRING and f.status == FindingStatus.ANOMALY
        )
        if announce and not muted:
            missing = _routed(after.severity) - self.spell.get(fp, set())
            assert not missing, f"{after.state} never announced on {missing}"


def _matches(s: Silence, key: CheckKey, severity: Severity, at: datetime) -> bool:
    [m] = s.matchers
    return s.starts_at <= at < s.ends_at and _label(key, severity, m.label) == m.value


AlertLifecycle.TestCase.settings = settings(
    max_examples=150, stateful_step_count=40, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
test_alert_lifecycle = AlertLifecycle.TestCase


class LifecycleOptions(AlertLifecycle):
    """The same machine with the lifecycle options on: a resolved notice while silenced for the
    channels that ask for it, silences that end with their alert, and inhibition of a table's
    alerts while its source is down."""

    resolved_when_silenced = {"chat": True, "quiet": True, "pager": False}
    end_silences_on_resolve = True
    inhibit_when_source_down = True


LifecycleOptions.TestCase.settings = AlertLifecycle.TestCase.settings
test_lifecycle_options = LifecycleOptions.TestCase


class GroupedLifecycle(AlertLifecycle):
    """The same machine on a tree that groups by table (group_wait 20m, group_interval 40m, runs
    15m apart or more): every run's notices wait in their groups and are told exactly as without
    grouping; a flusher at each run's time sends each due group as one message, and every waiting
    notice is sent once, in time, never more often than group_interval per group."""

    WAIT, GROUP_INTERVAL = timedelta(minutes=20), timedelta(minutes=40)

    @initialize(pending_runs=st.integers(1, 3), error_after_failures=st.integers(1, 3))
    def setup(self, pending_runs: int, error_after_failures: int) -> None:
        super().setup(pending_runs, error_after_failures)
        grouped_route = {**ROUTE, "group_by": ["table"], "group_wait": "20m", "group_interval": "40m"}
        self.runner.config = make_config(
            channels=CHANNELS,
            route=grouped_route,
            alerting={"pending_runs": pending_runs, "error_after_failures": error_after_failures},
        )
        self.waiting: dict[str, list[GroupedNotice]] = {}
        self.last_window: dict[str, datetime] = {}
        self.sent_parts: set[str] = set()

    def _told(self, decision: Decision) -> list[Notification]:
        assert decision.notifications == [], "every route groups: nothing goes at once"
        by_channel: dict[str, list[GroupedNotice]] = {}
        for part in decision.grouped:
            table = {a.key.table for a in part.notification.alerts}
            assert table == {part.group.labels["table"]}, "a group holds the alerts of its labels only"
            assert part.not_before == self.now + self.WAIT
            by_channel.setdefault(part.group.channel, []).append(part)
            self.waiting.setdefault(part.group.key, []).append(part)
        self._flush()
        return [  # one run's notices per channel, as the lifecycle invariants read them
            parts[0].notification.model_copy(
                update={
                    "id": stable_hash(*(p.id for p in parts)),
                    "alerts": [a for p in parts for a in p.notification.alerts],
                }
            )
            for parts in by_channel.values()
        ]

    def _flush(self) -> None:
        for key, parts in list(self.waiting.items()):
            window = group_due(parts, self.last_window.get(key))
            if window > self.now:
                continue
            message = merge(parts, window)
            assert {p.id for p in parts}.isdisjoint(self.sent_parts), "a notice was sent twice"
            self.sent_parts |= {p.id for p in parts}
            assert message.id not in self.notification_ids, "a group's message id was reused"
            self.notification_ids.add(message.id)
            fingerprints = [a.key.fingerprint for a in message.alerts]
            assert len(fingerprints) == len(set(fingerprints)), "an alert twice in one message"
            oldest = min(p.created_at for p in parts)
            assert window >= oldest, "a message before its notices"
            if key in self.last_window:
                assert window - self.last_window[key] >= self.GROUP_INTERVAL, "a group told too often"
            else:
                assert window == oldest + self.WAIT, "a new group waits group_wait, no more, no less"
            assert self.now - oldest <= self.GROUP_INTERVAL + 8 * RUN, "a notice waited too long"
            self.last_window[key] = window
            del self.waiting[key]


GroupedLifecycle.TestCase.settings = AlertLifecycle.TestCase.settings
test_grouped_lifecycle = GroupedLifecycle.TestCase
