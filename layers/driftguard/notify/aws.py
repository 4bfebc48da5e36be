"""AWS channels: an SNS topic (fan-out to email, SQS, Lambda, HTTPS) and SES email (sesv2 API).

Clients are created on first use (boto3 is only needed when one of these channels is used) with
botocore's own retries off, because `deliver` owns retrying and counts attempts.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from email.message import EmailMessage
from typing import Any

from driftguard.errors import DeliveryError
from driftguard.model import Notification, stable_hash
from driftguard.notify import render
from driftguard.notify.base import ChannelAdapter

SNS_MESSAGE_MAX_BYTES = 262_144
_THROTTLING_CODES = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "TooManyRequestsException",
        "RequestLimitExceeded",
        "KMSThrottlingException",
        "ServiceUnavailable",
        "InternalError",
        "InternalFailure",
    }
)
_FIFO_TOKEN = re.compile(r"^[A-Za-z0-9!\"#$%&'()*+,\-./:;<=>?@\[\\\]^_`{|}~]{1,128}$")


@contextmanager
def aws_errors(what: str) -> Iterator[None]:
    """Map botocore failures to DeliveryError: throttling, 5xx and network trouble are retryable,
    everything else (validation, access denied, unverified sender, no credentials) is permanent."""
    from botocore.exceptions import BotoCoreError, ClientError, HTTPClientError
    from botocore.exceptions import ConnectionError as BotoConnectionError

    try:
        yield
    except ClientError as e:
        error = e.response.get("Error", {})
        code = str(error.get("Code", ""))
        status = int(e.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0))
        retryable = code in _THROTTLING_CODES or status == 429 or status >= 500
        raise DeliveryError(
            f"{what}: {code or status}: {error.get('Message', e)}", retryable=retryable
        ) from e
    except (BotoConnectionError, HTTPClientError) as e:
        raise DeliveryError(f"{what}: cannot reach AWS: {e}", retryable=True) from e
    except BotoCoreError as e:
        raise DeliveryError(f"{what}: {e}", retryable=False) from e


def _client(service: str, region: str | None) -> Any:
    import boto3
    from botocore.config import Config

    return boto3.client(service, region_name=region, config=Config(retries={"total_max_attempts": 1}))


def _fifo_token(value: str) -> str:
    """`value` if FIFO SNS accepts it as a deduplication/group id, else a stable hash of it."""
    return value if _FIFO_TOKEN.match(value) else stable_hash(value, length=64)


def _truncate_utf8(text: str, max_bytes: int) -> str:
    data = text.encode()
    if len(data) <= max_bytes:
        return text
    return data[: max_bytes - len("…".encode())].decode(errors="ignore") + "…"


def sns_publish_request(
    notification: Notification, *, topic_arn: str, idempotency_key: str
) -> dict[str, Any]:
    """The SNS Publish parameters for a notification: the same for boto3 and for the Step Functions
    `sns:publish` service integration. A Subject, the plain-text rendering, and String
    MessageAttributes `severity`, `source` and `state` that subscription filter policies can match;
    FIFO topics (`.fifo`) also get MessageGroupId = source and MessageDeduplicationId = the key."""
    request: dict[str, Any] = {
        "TopicArn": topic_arn,
        "Subject": render.subject(notification),
        "Message": _truncate_utf8(render.plain_text(notification), SNS_MESSAGE_MAX_BYTES - 8 * 1024),
        "MessageAttributes": {
            key: {"DataType": "String", "StringValue": value}
            for key, value in render.sns_attributes(notification).items()
            if value  # SNS rejects empty attribute values
        },
    }
    if topic_arn.endswith(".fifo"):
        request["MessageGroupId"] = _fifo_token(notification.source)
        request["MessageDeduplicationId"] = _fifo_token(idempotency_key)
    return request


class SnsAdapter(ChannelAdapter):
    """Publishes `sns_publish_request` to a topic."""

    def __init__(self, name: str, topic_arn: str, *, client: Any | None = None) -> None:
        super().__init__(name)
        self.topic_arn = topic_arn
        self._client = client

    def send(self, notification: Notification, *, idempotency_key: str) -> None:
        request = sns_publish_request(notification, topic_arn=self.topic_arn, idempotency_key=idempotency_key)
        with aws_errors(f"SNS channel {self.name!r}"):
            if self._client is None:
                arn = self.topic_arn.split(":")  # arn:aws:sns:REGION:ACCOUNT:NAME; publish in its region
                self._client = _client("sns", arn[3] if len(arn) > 3 and arn[3] else None)
            self._client.publish(**request)


class SesAdapter(ChannelAdapter):
    """Sends a multipart/alternative email (plain text and phone-friendly HTML) with sesv2
    SendEmail and Raw content; the idempotency key travels in X-DriftGuard-Notification-Id.
    SES cannot deduplicate: a retry after a lost response can send twice."""

    def __init__(
        self,
        name: str,
        *,
        sender: str,
        to: list[str],
        configuration_set: str | None = None,
        client: Any | None = None,
    ) -> None:
        super().__init__(name)
        self.sender = sender
        self.to = list(to)
        self.configuration_set = configuration_set
        self._client = client

    def message(self, notification: Notification, idempotency_key: str) -> EmailMessage:
        msg = EmailMessage()
        msg["Subject"] = render.subject(notification)
        msg["From"] = self.sender
        msg["To"] = ", ".join(self.to)
        msg["X-DriftGuard-Notification-Id"] = idempotency_key
        msg.set_content(render.plain_text(notification))
        msg.add_alternative(render.html(notification), subtype="html")
        return msg

    def send(self, notification: Notification, *, idempotency_key: str) -> None:
        request: dict[str, Any] = {
            "FromEmailAddress": self.sender,
            "Destination": {"ToAddresses": self.to},
            "Content": {"Raw": {"Data": self.message(notification, idempotency_key).as_bytes()}},
        }
        if self.configuration_set:
            request["ConfigurationSetName"] = self.configuration_set
        with aws_errors(f"SES channel {self.name!r}"):
            if self._client is None:
                self._client = _client("sesv2", None)
            self._client.send_email(**request)
