"""Generic webhook: the notification as JSON, signed per the Standard Webhooks specification."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING

from driftguard.errors import SecretError
from driftguard.model import Notification, utcnow
from driftguard.notify import render
from driftguard.notify.base import ChannelAdapter
from driftguard.notify.web import AddressGuard, post, raise_for_status

if TYPE_CHECKING:
    from standardwebhooks import Webhook


def signer(secret: str, *, what: str) -> Webhook:
    """A Standard Webhooks signer for a `whsec_<base64>` secret (the prefix is optional)."""
    from standardwebhooks import Webhook
    from standardwebhooks.webhooks import EmptyWebhookSecretError

    try:
        return Webhook(secret)
    except (ValueError, EmptyWebhookSecretError) as e:
        raise SecretError(f"{what}: the signing secret must be 'whsec_' followed by base64 ({e})") from None


class WebhookAdapter(ChannelAdapter):
    """POSTs the notification JSON with `webhook-id` (the idempotency key), `webhook-timestamp` and,
    when a secret is configured, `webhook-signature: v1,<base64 HMAC-SHA256>`. Redirects are refused
    and every target passes the SSRF guard."""

    def __init__(
        self,
        name: str,
        url: str,
        *,
        signer: Webhook | None,
        timeout: float,
        guard: AddressGuard,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        super().__init__(name)
        self.url = url
        self._signer = signer
        self._timeout = timeout
        self._guard = guard
        self._clock = clock

    def send(self, notification: Notification, *, idempotency_key: str) -> None:
        body = json.dumps(render.json_payload(notification), ensure_ascii=False, separators=(",", ":"))
        sent_at = self._clock()
        headers = {
            "Content-Type": "application/json",
            "webhook-id": idempotency_key,
            "webhook-timestamp": str(int(sent_at.timestamp())),
        }
        if self._signer is not None:
            headers["webhook-signature"] = self._signer.sign(
                msg_id=idempotency_key, timestamp=sent_at, data=body
            )
        response = post(self.url, body.encode(), headers, timeout=self._timeout, guard=self._guard)
        raise_for_status(response.status, response.headers, response.body, what=f"webhook {self.name!r}")
