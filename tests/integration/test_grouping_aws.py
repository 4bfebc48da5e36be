"""Grouped delivery in AWS, against the DynamoDB store adapter and SNS (moto): a check of a route that
groups leaves nothing for the state machine to deliver, and the watchdog's tick sends the due group
as one message, once."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from driftguard import lambda_runtime
from driftguard.moto_stack import create_stack_resources

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
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": REGION,
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    (tmp_path / "driftguard.yaml").write_text(CONFIG)
    with mock_aws():
        stack = create_stack_resources(region=REGION, state_table="state", idempotency_table="idem")
        sqs = boto3.client("sqs", region_name=REGION)
        queue = sqs.create_queue(QueueName="pages")["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        boto3.client("sns", region_name=REGION).subscribe(
            TopicArn=stack.topic_arn, Protocol="sqs", Endpoint=arn
        )
        monkeypatch.setenv("DRIFTGUARD_CONFIG", str(tmp_path / "driftguard.yaml"))
        monkeypatch.setenv("DRIFTGUARD_STATE_TABLE", "state")
        monkeypatch.setenv("POWERTOOLS_SERVICE_NAME", "driftguard")
        monkeypatch.setenv("DRIFTGUARD_ALERTS_TOPIC_ARN", stack.topic_arn)
        lambda_runtime.runtime.cache_clear()
        yield sqs, queue
        lambda_runtime.runtime.cache_clear()


def pages(sqs: Any, queue: str) -> list[str]:
    messages = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10, WaitTimeSeconds=0).get(
        "Messages", []
    )
    return [json.loads(m["Body"])["Message"] for m in messages]


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
