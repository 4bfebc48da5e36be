"""Grouped delivery in AWS, against the DynamoDB store adapter and SNS (moto): a check of a route that
groups leaves nothing for the state machine to deliver, and the watchdog's tick sends the due group
as one message, once."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aws_world import paged_runtime, sqs_bodies

from driftguard import lambda_runtime

REGION = "eu-west-1"
T0 = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
CONFIG = """
sources:
  - name: orders
    kind: postgres
    connection: {host: orders.internal, database: app, user: ro}
    schedule: {rate: 15m}
    owner: sales
  - name: billing
    kind: postgres
    connection: {host: billing.internal, database: app, user: ro}
    schedule: {rate: 15m}
    owner: sales
channels:
  - {name: ops, type: sns}
route: {receivers: [ops], group_by: [owner], group_wait: 1m, group_interval: 5m}
alerting: {error_after_failures: 1}
"""


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Any]:
    (tmp_path / "driftguard.yaml").write_text(CONFIG)
    with paged_runtime(monkeypatch, tmp_path / "driftguard.yaml", REGION) as paged:
        yield paged


def pages(sqs: Any, queue: str) -> list[str]:
    return [body["Message"] for body in sqs_bodies(sqs, queue)]


def failed_check(rt: lambda_runtime.Runtime, source: str, at: datetime) -> dict[str, Any]:
    """The check function's answer for a check that failed for good (the state machine's Catch)."""
    event = {
        "source": source,
        "scheduled_time": at.isoformat(),
        "error": {"Error": "SourceUnavailable", "Cause": "connection refused"},
    }
    return lambda_runtime.check(rt, event)


def test_sources_failing_within_group_wait_page_once_at_the_watchdogs_tick(aws: Any) -> None:
    sqs, queue = aws
    rt = lambda_runtime.runtime()
    for source, at in (("orders", T0), ("billing", T0 + timedelta(seconds=20))):
        summary = failed_check(rt, source, at)
        assert lambda_runtime.undelivered(rt, summary) == []  # nothing for the state machine to send
    assert pages(sqs, queue) == []

    tick = {"action": "watchdog", "time": (T0 + timedelta(minutes=5)).isoformat()}
    lambda_runtime.watchdog(rt, tick)
    lambda_runtime.watchdog(rt, tick)  # a repeated tick sends nothing more

    (page,) = pages(sqs, queue)
    assert "billing" in page and "orders" in page
    assert rt.store.pending_groups() == [] and rt.store.pending_notifications() == []
