"""Slack with Block Kit: an incoming webhook (slack_sdk's WebhookClient), or the Web API with a bot
token (WebClient), which can update a message in place when its alerts resolve."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from driftguard.errors import DeliveryError
from driftguard.model import NoticeKind, Notification
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


EVENT_TYPE = "driftguard_alerts"  # message metadata naming the alerts a message announced
HISTORY_LIMIT = 200  # how far back in the channel an original message is looked for
_GONE = frozenset({"message_not_found", "cant_update_message", "edit_window_closed", "msg_too_long"})


class SlackBotAdapter(ChannelAdapter):
    """Posts through the Web API with a bot token (`chat.postMessage` into `channel`), naming the
    alerts of each message in its metadata. With `update_in_place`, a notification whose alerts
    all resolved edits the messages that announced them (`chat.update`): each message whose
    alerts are all among the resolved ones, found in the channel's recent history
    (`conversations.history`, metadata included). Resolved alerts whose message cannot be found
    or edited (deleted, too old, never posted by this bot) are posted as a new message.

    slack_sdk's retries are off: `deliver` owns retrying. The token needs chat:write and, for
    update_in_place, channels:history (groups:history for a private channel).
    """

    def __init__(
        self,
        name: str,
        token: str,
        channel: str,
        *,
        update_in_place: bool,
        base_url: str = "https://slack.com/api/",
        timeout: int = 10,
    ) -> None:
        from slack_sdk import WebClient

        super().__init__(name)
        self._channel = channel
        self._update_in_place = update_in_place
        self._client = WebClient(token=token, base_url=base_url, timeout=timeout, retry_handlers=[])

    def send(self, notification: Notification, *, idempotency_key: str) -> None:
        resolved = all(a.kind == NoticeKind.RESOLVED for a in notification.alerts)
        remaining = {a.key.fingerprint for a in notification.alerts}
        if self._update_in_place and resolved:
            for ts, announced in self._originals(remaining):
                part = _only(notification, announced)
                blocks = render.slack_blocks(part)
                edited = self._call(
                    self._client.chat_update, ts=ts, text=part.title, blocks=blocks, tolerate=_GONE
                )
                if edited is not None:
                    remaining -= announced
            if not remaining:
                return
        rest = _only(notification, remaining)
        metadata = {"event_type": EVENT_TYPE, "event_payload": {"fingerprints": sorted(remaining)}}
        self._call(
            self._client.chat_postMessage,
            text=rest.title,
            blocks=render.slack_blocks(rest),
            metadata=metadata,
        )

    def _originals(self, resolved: set[str]) -> list[tuple[str, set[str]]]:
        """(ts, fingerprints) of recent messages of this channel that announced only alerts in
        `resolved`, newest first, each alert claimed by one message."""
        response = self._call(
            self._client.conversations_history, limit=HISTORY_LIMIT, include_all_metadata=True
        )
        found: list[tuple[str, set[str]]] = []
        left = set(resolved)
        for message in response.get("messages", []):
            metadata = message.get("metadata") or {}
            announced = set((metadata.get("event_payload") or {}).get("fingerprints") or [])
            if metadata.get("event_type") == EVENT_TYPE and announced and announced <= left:
                found.append((str(message["ts"]), announced))
                left -= announced
        return found

    def _call(
        self, method: Callable[..., Any], *, tolerate: frozenset[str] = frozenset(), **kwargs: Any
    ) -> Any:
        """`method(channel=..., **kwargs)`'s answer; None when Slack refused with a `tolerate` error."""
        from slack_sdk.errors import SlackApiError

        what = f"Slack channel {self.name!r}"
        try:
            return method(channel=self._channel, **kwargs)
        except SlackApiError as e:
            error = str(e.response.get("error", ""))
            if error in tolerate:
                return None
            raise_for_status(
                e.response.status_code, dict(e.response.headers), str(e.response.data), what=what
            )
            raise DeliveryError(f"{what}: Slack refused the request ({error})", retryable=False) from e
        except TimeoutError as e:
            raise DeliveryError(f"{what}: no answer in time", retryable=True) from e
        except OSError as e:
            raise DeliveryError(f"{what}: cannot reach Slack: {e}", retryable=True) from e


def _only(notification: Notification, fingerprints: set[str]) -> Notification:
    """The notification with only the alerts of `fingerprints`."""
    alerts = [a for a in notification.alerts if a.key.fingerprint in fingerprints]
    return notification.model_copy(update={"alerts": alerts})
