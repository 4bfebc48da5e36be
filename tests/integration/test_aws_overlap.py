"""Never twice, under truly overlapping executions: two or three executions of one firing (one source,
one scheduled time), each check in its own container, run by moto's interpreter of the synthesized
state machine, the later ones started while the first is held at a chosen point. Whatever the
offset, the firing commits one run with its real status, one snapshot, one transition per change,
and every alert reaches every channel in exactly one message.

The interleavings are forced with events, not sleeps: the first execution to reach the point is
held there until the others have reached theirs (waiting for its check, or finding its delivery
claimed), then released.
"""

from __future__ import annotations

import functools
import json
import threading
import time
from collections import Counter
from collections.abc import Callable
from datetime import timedelta
from types import SimpleNamespace
from typing import Any

import pytest
from aws_world import T1, World, asl_template, normal_hour, one_order, seed_orders, state_store, world

pytestmark = [pytest.mark.postgres, pytest.mark.slow]
__all__ = ["asl_template", "world"]  # fixtures this module uses, by name

T2 = T1 + timedelta(hours=1)
HOLD_SECONDS = 60  # a bound on waiting for an interleaving, so a broken one fails instead of hanging


class Interleaving:
    """Holds the first execution at `point` ("collect", "commit", "send") until `others` executions
    have reached theirs; counts what every execution sent, per channel and notification."""

    def __init__(self, point: str, others: int) -> None:
        self.point = point
        self.others = others
        self._changed = threading.Condition()
        self._held = False
        self.held_notification: str | None = None
        self.waiting: set[int] = set()  # threads of checks waiting for the one in progress
        self.in_flight: Counter[str] = Counter()  # notification id -> claims refused as in flight
        self.sent: list[tuple[str, Any]] = []  # (channel, notification) for every send

    def reached(self, what: Callable[[], bool]) -> None:
        with self._changed:
            assert self._changed.wait_for(what, HOLD_SECONDS), f"interleaving at {self.point} never happened"

    def arrivals(self) -> int:
        """How many other executions reached their point: waiting for the held check, or refused the
        held delivery's claim."""
        if self.point == "send":
            return self.in_flight[self.held_notification] if self.held_notification else 0
        return len(self.waiting)

    def arrived(self, count: int) -> bool:
        return self.arrivals() >= count

    def others_arrived(self) -> bool:
        return self.arrived(self.others)

    def at(self, point: str, notification_id: str | None = None) -> None:
        """Called by the hooks; holds the first caller at the chosen point."""
        with self._changed:
            if point != self.point or self._held:
                return
            self._held = True
            self.held_notification = notification_id
            self._changed.notify_all()
            assert self._changed.wait_for(self.others_arrived, HOLD_SECONDS), (
                f"the other executions never reached {self.point}"
            )

    def note(self, update: Callable[[], None]) -> None:
        with self._changed:
            update()
            self._changed.notify_all()

    @property
    def held(self) -> bool:
        return self._held


def _install(monkeypatch: pytest.MonkeyPatch, probe: Interleaving) -> None:
    """Hooks on the real code paths every container runs (class attributes: all containers share them)."""
    from driftguard import lambda_runtime
    from driftguard.collect import Collector
    from driftguard.notify.aws import SnsAdapter
    from driftguard.notify.local import FileAdapter
    from driftguard.store.dynamodb import DynamoStore

    collect, commit, claim = Collector.collect, DynamoStore.commit_run, DynamoStore.claim_delivery

    def held_collect(self: Any, *args: Any, **kwargs: Any) -> Any:
        probe.at("collect")
        return collect(self, *args, **kwargs)

    def held_commit(self: Any, run_commit: Any) -> Any:
        probe.at("commit")
        return commit(self, run_commit)

    def counted_claim(self: Any, notification_id: str, request: Any) -> Any:
        answer = claim(self, notification_id, request)
        if answer.verdict.value == "in_flight":
            probe.note(lambda: probe.in_flight.update([notification_id]))
        return answer

    monkeypatch.setattr(Collector, "collect", held_collect)
    monkeypatch.setattr(DynamoStore, "commit_run", held_commit)
    monkeypatch.setattr(DynamoStore, "claim_delivery", counted_claim)
    for adapter in (SnsAdapter, FileAdapter):
        send = adapter.send

        def held_send(self: Any, notification: Any, *, idempotency_key: str, send: Any = send) -> None:
            probe.at("send", notification.id)
            probe.note(lambda: probe.sent.append((self.name, notification)))
            send(self, notification, idempotency_key=idempotency_key)

        monkeypatch.setattr(adapter, "send", held_send)

    def waiting_sleep(seconds: float) -> None:
        probe.note(lambda: probe.waiting.add(threading.get_ident()))
        time.sleep(seconds)

    clock = SimpleNamespace(sleep=waiting_sleep, monotonic=time.monotonic, perf_counter=time.perf_counter)
    monkeypatch.setattr(lambda_runtime, "time", clock)


def _overlap(w: World, probe: Interleaving, executions: int) -> None:
    """The first execution, held at the probe's point; the others started one after another once it
    is held, each once the previous one reached its point."""
    if probe.point == "after":
        w.execute(T2)
        for arn in [w.start(T2) for _ in range(executions - 1)]:
            w.wait(arn)
        return
    first = w.start(T2)
    probe.reached(lambda: probe.held)
    others = []
    for started in range(1, executions):
        others.append(w.start(T2))
        if started < executions - 1:
            probe.reached(functools.partial(probe.arrived, started))
    for arn in [first, *others]:
        w.wait(arn)


OFFSETS = {
    "before collect": "collect",
    "during commit": "commit",
    "during delivery": "send",
    "after": "after",
}


@pytest.mark.parametrize("executions", [2, 3])
@pytest.mark.parametrize("offset", list(OFFSETS))
def test_overlapping_executions_commit_once_and_send_each_alert_once_per_channel(
    world: tuple[World, Any], pg: Any, monkeypatch: pytest.MonkeyPatch, offset: str, executions: int
) -> None:
    w, _ = world
    seed_orders(pg, T1)
    w.execute(T1)  # a healthy hour
    one_order(pg, T1 + timedelta(minutes=7))  # then a load of one row where 40 are normal
    w.sns_messages()
    probe = Interleaving(OFFSETS[offset], others=executions - 1)
    _install(monkeypatch, probe)

    _overlap(w, probe, executions)

    store = state_store()
    runs = [r for r in store.runs("shop", limit=10) if r.scheduled_time == T2]
    assert [r.status.value for r in runs] == ["ok"]  # one run, the real outcome
    assert not [e for fn, e in w.invocations if e.get("action") == "record_failure"]
    assert [s.scheduled_time for s in store.snapshots("shop", limit=10)] == [T2, T1]
    changes = [t.fingerprint for t in store.transitions("shop", limit=100) if t.at == T2]
    assert changes and len(changes) == len(set(changes))  # one transition per change
    # The held step and the later executions' same step really ran side by side, in containers of their own.
    # (A later execution's step may reuse the container an earlier one's finished with.)
    overlapped = {"collect": "check", "commit": "check", "send": "notify"}.get(probe.point)
    if overlapped:
        assert w.containers.started[overlapped] >= 2

    # Every alert of the run in exactly one message on each channel, and nothing left waiting.
    (run,) = runs
    sent_ids = Counter(n.id for _, n in probe.sent)
    assert len(sent_ids) == run.notifications and set(sent_ids.values()) == {1}, (sent_ids, w.errors)
    per_alert = Counter((channel, a.key.fingerprint) for channel, n in probe.sent for a in n.alerts)
    assert per_alert and set(per_alert.values()) == {1}
    assert {channel for channel, _ in per_alert} == {"alerts", "audit"}
    assert len(w.sns_messages()) == 1
    audit = (w.config_path.parent / "audit.jsonl").read_text().splitlines()
    assert len(audit) == 1 and json.loads(audit[0])["source"] == "shop"
    assert store.pending_notifications("shop") == [] and store.failed_deliveries() == []
    counts = sorted(set(per_alert.values()))
    print(f"\n{offset}, {executions} executions: messages per alert per channel {counts}")


def test_a_failure_recorded_while_the_check_runs_elsewhere_reuses_the_real_outcome(
    world: tuple[World, Any], pg: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One execution's check fails for good (its retries exhausted) while another execution's check
    of the same firing is committing: the failure is not recorded, the real outcome stands, and no
    one is paged about a healthy source."""
    from driftguard.errors import SourceUnavailable

    w, _ = world
    seed_orders(pg, T1)
    w.execute(T1)
    normal_hour(pg, T1)
    w.sns_messages()
    probe = Interleaving("commit", others=1)
    _install(monkeypatch, probe)

    healthy = w.start(T2)
    probe.reached(lambda: probe.held)
    w.faults["shop"] = [SourceUnavailable("connection reset")] * 4  # every attempt of the next check
    failing = w.start(T2)
    for arn in (healthy, failing):
        w.wait(arn)

    assert len([e for fn, e in w.invocations if e.get("action") == "record_failure"]) == 1
    store = state_store()
    assert [r.status.value for r in store.runs("shop", limit=10) if r.scheduled_time == T2] == ["ok"]
    assert [s.scheduled_time for s in store.snapshots("shop", limit=10)] == [T2, T1]
    source = [s for s in store.alert_states("shop") if s.key.check.value == "source"]
    assert [s.state.value for s in source] == ["OK"]
    assert w.sns_messages() == [] and probe.sent == []
