"""Payloads by reference: a run with 500 alerts on three channels goes through the state machine.

State carries notification ids, never bodies (the notify function reads each body from the store
when it claims it), so no state reaches the 256 KB Step Functions limit, where
States.DataLimitExceeded would fail the execution with nothing sent."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from aws_world import T1, World, asl_template, state_store, world

pytestmark = [pytest.mark.postgres, pytest.mark.slow]
__all__ = ["asl_template", "world"]  # fixtures this module uses, by name

TABLES = 500
STATE_LIMIT_BYTES = 256 * 1024


def test_a_run_with_500_alerts_on_three_channels_passes_ids_and_sends_each_channel_once(
    world: tuple[World, Any], pg: Any, tmp_path: Any
) -> None:
    w, configure = world
    names = [f"t{i:03d}" for i in range(TABLES)]
    pg.execute(*(f"create table {n} (id integer, note text)" for n in names))
    configure(
        tables=[{"name": n, "schema": pg.schema, "checks": {"schema": True}} for n in names],
        extra_channels=[{"name": "archive", "type": "file", "path": str(tmp_path / "archive.jsonl")}],
    )
    w.execute(T1)  # learns every table's schema
    pg.execute(*(f"alter table {n} drop column note" for n in names))  # 500 schema changes
    w.payload_bytes.clear()

    done = w.execute(T1 + timedelta(hours=1))

    store = state_store()
    (run,) = [r for r in store.runs("shop", limit=5) if r.scheduled_time == T1 + timedelta(hours=1)]
    firing = [
        s for s in store.alert_states("shop") if s.key.check.value == "schema" and s.state.value == "FIRING"
    ]
    assert len(firing) == TABLES
    assert run.notifications == 3  # one grouped notification per channel
    (sns,) = w.sns_messages()
    for channel in ("audit.jsonl", "archive.jsonl"):
        (line,) = (tmp_path / channel).read_text().splitlines()
        assert len(json.loads(line)["alerts"]) == TABLES
    assert "500" in sns["Subject"] or "500" in sns["Message"]
    assert store.pending_notifications() == [] and store.failed_deliveries() == []
    largest = max([*w.payload_bytes, len(done.get("output", "")), len(done.get("input", ""))])
    assert largest < STATE_LIMIT_BYTES // 10, largest
    print(f"\n{TABLES} alerts x 3 channels: largest task input/output or execution state {largest} bytes")
