"""The AWS flow end to end, with no AWS: the state machine synthesized by the CDK stack runs in
moto's Step Functions interpreter (real ASL: Map, Choice, Retry with jitter, Catch), its Lambda
tasks are dispatched in-process to the real handlers, against a real PostgreSQL source and moto's
DynamoDB, SNS, SQS and Secrets Manager.
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from aws_world import (
    T1,
    World,
    asl_template,
    normal_hour,
    one_order,
    seed_orders,
    state_store,
    world,
)

pytestmark = [pytest.mark.postgres, pytest.mark.slow]
__all__ = ["asl_template", "world"]  # fixtures this module uses, by name


def _state_of(source: str) -> tuple[Any, ...]:
    """Everything a run can change for a source: snapshots, the audit trail, state versions."""
    store = state_store()
    return (
        [s.model_dump() for s in store.snapshots(source, limit=10)],
        [t.id for t in store.transitions(source, limit=100)],
        sorted((s.fingerprint, s.version) for s in store.alert_states(source)),
    )


def test_healthy_run_stores_a_snapshot_and_sends_nothing(world: tuple[World, Any], pg: Any) -> None:
    w, _ = world
    seed_orders(pg, T1)
    w.execute(T1)
    store = state_store()
    snaps = store.snapshots("shop", limit=10)
    assert [s.scheduled_time for s in snaps] == [T1]
    assert snaps[0].table("orders") is not None and snaps[0].table("orders").period_counts[-1].count == 40
    assert w.sns_messages() == []
    assert store.get_run("shop", T1) is not None


def _healthy_then_broken(w: World, pg: Any) -> None:
    """A healthy hour at T1, then a load of one row where 40 are normal, checked at T1 + 1h."""
    seed_orders(pg, T1)
    w.execute(T1)
    one_order(pg, T1 + timedelta(minutes=7))
    w.execute(T1 + timedelta(hours=1))


def test_broken_load_fires_one_alert_and_one_sns_message(world: tuple[World, Any], pg: Any) -> None:
    w, _ = world
    _healthy_then_broken(w, pg)
    messages = w.sns_messages()
    assert len(messages) == 1, messages
    attributes = {k: v["Value"] for k, v in messages[0]["MessageAttributes"].items()}
    assert attributes["source"] == "shop" and attributes["severity"] in ("warning", "critical")
    assert "orders" in messages[0]["Message"] and "1 row" in messages[0]["Message"]
    firing = [s for s in state_store().alert_states("shop") if s.state.value == "FIRING"]
    assert [s.key.metric for s in firing] == ["rows_per_period"]
    # The file channel went through the notify function, and both deliveries were recorded.
    audit = [json.loads(line) for line in (w.config_path.parent / "audit.jsonl").read_text().splitlines()]
    assert len(audit) == 1 and audit[0]["source"] == "shop"
    assert state_store().pending_notifications("shop") == []


def test_a_source_that_fails_twice_is_retried_and_stores_one_snapshot(
    world: tuple[World, Any], pg: Any
) -> None:
    from driftguard.errors import SourceUnavailable

    w, _ = world
    seed_orders(pg, T1)
    w.faults["shop"] = [SourceUnavailable("connection reset"), SourceUnavailable("connection reset")]
    w.execute(T1)
    assert len(w.checks_of("shop")) == 3  # two failures retried by the state machine, then success
    assert [s.scheduled_time for s in state_store().snapshots("shop", limit=10)] == [T1]
    assert not [e for fn, e in w.invocations if e.get("action") == "record_failure"]
    assert w.sns_messages() == []


def test_a_source_that_stays_down_raises_one_error_alert(world: tuple[World, Any], pg: Any) -> None:
    w, configure = world
    seed_orders(pg, T1)
    down = {
        "name": "ledger",
        "kind": "postgres",
        "schedule": {"rate": "1h"},
        "connection": {
            "host": "127.0.0.1",
            "port": 1,
            "database": "test",
            "user": "postgres",
            "connect_timeout": "2s",
        },
        "tables": [{"name": "entries"}],
    }
    configure(extra_sources=[down])
    w.execute(T1)
    assert (
        len(w.checks_of("ledger")) == 4
    )  # the real SourceUnavailable, retried 3 times (MaxAttempts), caught
    failures = [e for fn, e in w.invocations if e.get("action") == "record_failure"]
    assert [f["error"]["Error"] for f in failures] == ["SourceUnavailable"]
    first = w.sns_messages()
    assert len(first) == 1 and "ledger" in first[0]["Subject"]
    normal_hour(pg, T1)  # shop stays healthy, so any message now would be about ledger
    w.execute(T1 + timedelta(hours=1))
    assert w.sns_messages() == []  # still down: no second page
    states = {
        s.key.source: s.state.value for s in state_store().alert_states() if s.key.check.value == "source"
    }
    assert states["ledger"] == "ERROR" and states["shop"] == "OK"


def test_a_duplicate_execution_changes_nothing(world: tuple[World, Any], pg: Any) -> None:
    w, _ = world
    _healthy_then_broken(w, pg)
    assert len(w.sns_messages()) == 1
    before = _state_of("shop")
    w.execute(T1 + timedelta(hours=1))  # the same firing again (Express is at-least-once)
    after = _state_of("shop")
    assert after == before
    assert w.sns_messages() == []
