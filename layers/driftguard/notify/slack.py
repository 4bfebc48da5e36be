"""Slack incoming webhook with Block Kit, through slack_sdk's WebhookClient."""

from __future__ import annotations

from typing import TYPE_CHECKING

from driftguard.errors import DeliveryError
from driftguard.model import Notification
from driftguard.notify import render
from driftguard.notify.base import ChannelAdapter
from driftguard.notify.web import AddressGuard, raise_for_status

if TYPE_CHECKING:
    from slack_sdk.webhook import WebhookClient


class SlackAdapter(ChannelAdapter):
    """Posts `render.slack_blocks` (with the title as the notification text) to an incoming webhook.

    The URL passes the SSRF guard before every send. slack_sdk's own retries are switched off:
    `deliver` owns retrying, so attempts are counted once. Incoming webhooks have no idempotency
    key; a retry after a lost response can post twice.

    Unlike the webhook channel, the connection is made by slack_sdk (urllib): it resolves the host
    again and follows redirects. The URL is an operator-held secret for hooks.slack.com, so the
    guard's check of its host is the protection that matters here.
    """

    def __init__(self, name: str, url: str, *, guard: AddressGuard, timeout: int = 10) -> None:
        from slack_sdk.webhook import WebhookClient

        super().__init__(name)
        self._url = url
        self._guard = guard
        self._client: WebhookClient = WebhookClient(url, timeout=timeout, retry_handlers=[])

    def send(self, notification: Notification, *, idempotency_key: str) -> None:
        self._guard.vet(self._url)
        try:
            response = self._client.send(text=notification.title, blocks=render.slack_blocks(notification))
        except TimeoutError as e:
            raise DeliveryError(f"Slack channel {self.name!r}: no answer in time", retryable=True) from e
        except OSError as e:  # URLError and connection failures
            raise DeliveryError(
                f"Slack channel {self.name!r}: cannot reach Slack: {e}", retryable=True
            ) from e
        raise_for_status(
            response.status_code, dict(response.headers), response.body, what=f"Slack channel {self.name!r}"
        )
