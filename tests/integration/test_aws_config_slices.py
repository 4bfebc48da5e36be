"""The check function as the stack ships it reads only the slice of the source it checks: a broken
slice fails its own source, clearly, and no other (the synthesized state machine in moto, the real
handlers, a real PostgreSQL source; see aws_world)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from aws_world import T1, World, asl_template, seed_orders, state_store, world

pytestmark = [pytest.mark.postgres, pytest.mark.slow]
__all__ = ["asl_template", "world"]  # fixtures this module uses, by name


def test_a_broken_slice_fails_only_its_source_and_says_which_file(world: tuple[World, Any], pg: Any) -> None:
    w, configure = world
    seed_orders(pg, T1)
    ledger = {
        "name": "ledger",
        "kind": "postgres",
        "schedule": {"rate": "1h"},
        "connection": {"host": "127.0.0.1", "port": 1, "database": "test", "user": "postgres"},
        "tables": [{"name": "entries"}],
    }
    configure(extra_sources=[ledger])
    broken = Path(os.environ["DRIFTGUARD_CONFIG_SLICES"]) / "ledger.json"
    broken.write_text(broken.read_text()[:40], encoding="utf-8")  # cut short, as a bad copy would
    w.execute(T1)

    store = state_store()
    run = store.get_run("shop", T1)
    assert run is not None and run.status.value == "ok", "shop's check never read ledger's slice"
    assert [s.scheduled_time for s in store.snapshots("shop", limit=10)] == [T1]
    assert store.get_run("ledger", T1) is None  # nothing recorded against a config it cannot read

    assert {event.get("source") for _, event, _ in w.errors} == {"ledger"}
    for _, _, raised in w.errors:
        assert raised.startswith("ConfigError(") and f"{broken}: invalid compiled config" in raised
        assert "Invalid JSON" in raised
    # the failure could not be recorded either: parked for an operator, with the same clear cause
    got = w.sqs.receive_message(QueueUrl=w.dlq_url, MaxNumberOfMessages=10).get("Messages", [])
    parked = [json.loads(m["Body"]) for m in got]
    assert [(p["kind"], p["source"]) for p in parked] == [("unrecorded_check_failure", "ledger")]
    assert parked[0]["error"]["Error"] == "ConfigError"
    assert f"{broken}: invalid compiled config" in parked[0]["error"]["Cause"]
