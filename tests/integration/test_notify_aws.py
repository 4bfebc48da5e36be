"""SNS and SES channels against moto: what subscribers and recipients actually receive."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from email import message_from_string
from email.message import Message
from typing import Any

import boto3
import pytest
from moto import mock_aws
from moto.core import DEFAULT_ACCOUNT_ID
from moto.ses.models import ses_backends

from driftguard.errors import DeliveryError
from driftguard.model import DeliveryStatus
from driftguard.notify import deliver
from driftguard.notify.aws import SesAdapter, SnsAdapter
from driftguard.notify.sample import sample_notification

REGION = "eu-west-1"
NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for var, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": REGION,
    }.items():
        monkeypatch.setenv(var, value)
    with mock_aws():
        yield


def _queue(
    sqs: Any, name: str, topic_arn: str, sns: Any, filter_policy: dict[str, list[str]] | None = None
) -> str:
    attributes = {"FifoQueue": "true", "ContentBasedDeduplication": "false"} if name.endswith(".fifo") else {}
    url: str = sqs.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sub_attributes = {"FilterPolicy": json.dumps(filter_policy)} if filter_policy else {}
    sns.subscribe(TopicArn=topic_arn, Protocol="sqs", Endpoint=arn, Attributes=sub_attributes)
    return url


def _received(sqs: Any, url: str) -> list[dict[str, Any]]:
    messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
    return [json.loads(m["Body"]) for m in messages]


def test_sns_publishes_subject_text_and_filterable_attributes(aws: None) -> None:
    sns, sqs = boto3.client("sns", region_name=REGION), boto3.client("sqs", region_name=REGION)
    topic = sns.create_topic(Name="driftguard-alerts")["TopicArn"]
    everything = _queue(sqs, "all", topic, sns)
    critical_only = _queue(sqs, "critical", topic, sns, {"severity": ["critical"]})
    resolved_only = _queue(sqs, "resolved", topic, sns, {"state": ["RESOLVED"]})
    n = sample_notification("sns", now=NOW)

    record = deliver(n, SnsAdapter("sns", topic, client=sns), max_attempts=3, sleep=lambda s: None)

    assert record.status == DeliveryStatus.DELIVERED and record.attempts == 1
    [envelope] = _received(sqs, everything)
    assert envelope["Subject"] == "[CRITICAL] orders-db: 1 alert(s) firing, 1 resolved"
    assert "Expected  1,040 (normal range 820 to 1,260)" in envelope["Message"]
    assert "To silence: driftguard silence --source" in envelope["Message"]
    attributes = {k: (v["Type"], v["Value"]) for k, v in envelope["MessageAttributes"].items()}
    assert attributes == {
        "severity": ("String", "critical"),
        "source": ("String", "orders-db"),
        "state": ("String", "FIRING"),
    }
    assert len(_received(sqs, critical_only)) == 1  # the filter policy matched our attribute
    assert _received(sqs, resolved_only) == []  # and this one did not


def test_sns_fifo_topic_gets_group_and_deduplication_ids(aws: None) -> None:
    sns, sqs = boto3.client("sns", region_name=REGION), boto3.client("sqs", region_name=REGION)
    topic = sns.create_topic(
        Name="driftguard-alerts.fifo", Attributes={"FifoTopic": "true", "ContentBasedDeduplication": "false"}
    )["TopicArn"]
    url = _queue(sqs, "all.fifo", topic, sns)
    n = sample_notification("sns", now=NOW)

    SnsAdapter("sns", topic, client=sns).send(n, idempotency_key=n.id)

    messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, AttributeNames=["All"])["Messages"]
    assert len(messages) == 1
    assert messages[0]["Attributes"]["MessageGroupId"] == "orders-db"
    assert messages[0]["Attributes"]["MessageDeduplicationId"] == n.id


def test_sns_fifo_topic_refuses_a_publish_without_group_id(aws: None) -> None:
    """Why the adapter sets MessageGroupId: without it a FIFO publish is rejected, permanently."""
    sns = boto3.client("sns", region_name=REGION)
    topic = sns.create_topic(Name="t.fifo", Attributes={"FifoTopic": "true"})["TopicArn"]
    n = sample_notification("sns", now=NOW)
    with pytest.raises(DeliveryError) as err:
        SnsAdapter("sns", topic, client=_Spy(sns, _without_fifo_ids)).send(n, idempotency_key=n.id)
    assert err.value.retryable is False
    SnsAdapter("sns", topic, client=sns).send(n, idempotency_key=n.id)  # with them it is accepted


class _Spy:
    """Records each call's parameters after an optional edit, then makes the real call."""

    def __init__(self, client: Any, edit: Callable[[dict[str, Any]], dict[str, Any]] = lambda r: r) -> None:
        self._client = client
        self._edit = edit
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def __getattr__(self, name: str) -> Callable[..., Any]:
        real = getattr(self._client, name)

        def call(**request: Any) -> Any:
            edited = self._edit(dict(request))
            self.calls.append((name, edited))
            return real(**edited)

        return call


def _without_fifo_ids(request: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in request.items() if k not in ("MessageGroupId", "MessageDeduplicationId")}


def test_sns_unknown_topic_is_a_permanent_failure(aws: None) -> None:
    sns = boto3.client("sns", region_name=REGION)
    n = sample_notification("sns", now=NOW)
    record = deliver(
        n, SnsAdapter("sns", f"arn:aws:sns:{REGION}:{DEFAULT_ACCOUNT_ID}:missing", client=sns), max_attempts=5
    )
    assert record.status == DeliveryStatus.FAILED and record.attempts == 1
    assert record.notification == n and "NotFound" in (record.error or "")


def test_sns_client_is_created_lazily_in_the_topic_region(aws: None) -> None:
    """The default region is eu-west-1; publishing there to a us-west-2 topic would be NotFound."""
    sns, sqs = boto3.client("sns", region_name="us-west-2"), boto3.client("sqs", region_name="us-west-2")
    topic = sns.create_topic(Name="west")["TopicArn"]
    url = _queue(sqs, "west", topic, sns)
    n = sample_notification("sns", now=NOW)
    record = deliver(n, SnsAdapter("sns", topic), max_attempts=1)
    assert record.status == DeliveryStatus.DELIVERED, record.error
    assert len(_received(sqs, url)) == 1


def _sent_email() -> Message:
    [raw] = ses_backends[DEFAULT_ACCOUNT_ID][REGION].sent_messages
    return message_from_string(raw.raw_data)


def test_ses_sends_text_and_html_alternatives_from_a_verified_sender(aws: None) -> None:
    ses = boto3.client("sesv2", region_name=REGION)
    ses.create_email_identity(EmailIdentity="alerts@example.com")  # moto, like SES, requires it
    ses.create_configuration_set(ConfigurationSetName="driftguard")
    spy = _Spy(ses)
    n = sample_notification("email", now=NOW)
    adapter = SesAdapter(
        "email",
        sender="alerts@example.com",
        to=["oncall@example.com", "b@example.org"],
        configuration_set="driftguard",
        client=spy,
    )

    record = deliver(n, adapter, max_attempts=3, sleep=lambda s: None)

    assert record.status == DeliveryStatus.DELIVERED
    [(operation, request)] = spy.calls
    assert operation == "send_email" and request["ConfigurationSetName"] == "driftguard"
    email = _sent_email()
    assert email["Subject"] == "[CRITICAL] orders-db: 1 alert(s) firing, 1 resolved"
    assert email["From"] == "alerts@example.com" and email["To"] == "oncall@example.com, b@example.org"
    assert email["X-DriftGuard-Notification-Id"] == n.id
    assert email.get_content_type() == "multipart/alternative"
    parts = {p.get_content_type(): p.get_payload(decode=True).decode() for p in email.get_payload()}  # type: ignore[union-attr]
    assert "Observed  112" in parts["text/plain"]
    assert "max-width:600px" in parts["text/html"] and "normal range 820 to 1,260" in parts["text/html"]


def test_ses_unverified_sender_is_a_permanent_failure(aws: None) -> None:
    ses = boto3.client("sesv2", region_name=REGION)
    n = sample_notification("email", now=NOW)
    adapter = SesAdapter("email", sender="nobody@example.com", to=["oncall@example.com"], client=ses)
    record = deliver(n, adapter, max_attempts=5, sleep=lambda s: None)
    assert record.status == DeliveryStatus.FAILED and record.attempts == 1
    assert "MessageRejected" in (record.error or "")
