"""The watchdog action against the real DynamoDB store adapter and SNS (moto): a source without a
recorded run for two periods gets one missed run and one page, a repeated tick changes nothing,
and a source checked recently is left alone."""

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
from driftguard.engine import Engine
from driftguard.errors import ErrorKind, SourceUnavailable
from driftguard.model import DeliveryStatus
from driftguard.moto_stack import create_stack_resources
from driftguard.notify import delivery
from driftguard.notify.delivery import deliver_once

REGION = "eu-west-1"
T0 = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
CONFIG = """
sources:
  - name: quiet
    kind: postgres
    connection: {host: quiet.internal, database: app, user: ro}
    schedule: {rate: 15m}
  - name: busy
    kind: postgres
    connection: {host: busy.internal, database: app, user: ro}
    schedule: {rate: 15m}
channels:
  - {name: ops, type: sns}
route: {receivers: [ops]}
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


def pages(sqs: Any, queue: str) -> list[dict[str, Any]]:
    messages = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10, WaitTimeSeconds=0).get(
        "Messages", []
    )
    return [json.loads(m["Body"]) for m in messages]


def test_a_silent_source_gets_one_missed_run_and_one_page(aws: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    sqs, queue = aws
    through_ledger: list[str] = []

    def spy(store: Any, notification_id: str, *args: Any) -> Any:
        through_ledger.append(notification_id)
        return deliver_once(store, notification_id, *args)

    monkeypatch.setattr(delivery, "deliver_once", spy)
    rt = lambda_runtime.runtime()
    engine = Engine(rt.config, rt.store, secrets=rt.secrets, deliver_inline=False)
    engine.record_failure("quiet", T0, SourceUnavailable("refused"))  # its last recorded run
    engine.record_failure("busy", T0 + timedelta(minutes=30), SourceUnavailable("refused"))

    tick = {"action": "watchdog", "time": (T0 + timedelta(minutes=35)).isoformat()}
    result = lambda_runtime.watchdog(rt, tick)
    assert result == {"sources": 2, "overdue": ["quiet"], "recorded": 1, "notifications": 1}
    (run,) = rt.store.runs("quiet", limit=1)
    assert run.scheduled_time == T0 + timedelta(minutes=30) and run.error_kind == ErrorKind.MISSED.value
    (page,) = pages(sqs, queue)
    assert "no check recorded" in page["Message"]
    # sent through the delivery ledger, like every notification: claimed, marked, nothing left waiting
    (claimed,) = through_ledger
    delivered = rt.store.delivery(claimed)
    assert delivered is not None and delivered.status == DeliveryStatus.DELIVERED
    assert rt.store.pending_notifications("quiet") == []

    assert lambda_runtime.watchdog(rt, tick)["recorded"] == 0, "a repeated tick records nothing"
    later = {"action": "watchdog", "time": (T0 + timedelta(minutes=50)).isoformat()}
    continuing = {"sources": 2, "overdue": ["quiet"], "recorded": 1, "notifications": 0}
    assert lambda_runtime.watchdog(rt, later) == continuing, "each further period is missed, paged once"
    then = {"action": "watchdog", "time": (T0 + timedelta(minutes=65)).isoformat()}
    assert lambda_runtime.watchdog(rt, then) == {
        "sources": 2,
        "overdue": ["busy", "quiet"],
        "recorded": 2,
        "notifications": 1,  # busy's silence is new and pages; quiet's continues
    }
    assert len(pages(sqs, queue)) == 1
