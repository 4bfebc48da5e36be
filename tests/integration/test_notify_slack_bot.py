"""The Slack bot-token channel against pytest-httpserver as the Slack Web API: messages name their
alerts in metadata, and with update_in_place a resolved notification edits the message that
announced its alerts, or posts a new one when that message cannot be found or edited."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from driftguard.config import parse_config
from driftguard.errors import ConfigError, DeliveryError
from driftguard.model import NoticeKind, Notification
from driftguard.notify import build_channel
from driftguard.notify.sample import sample_notification
from driftguard.notify.slack import EVENT_TYPE, SlackBotAdapter
from driftguard.secrets import SecretResolver

CHANNEL = "C0123456789"


class SlackApi:
    """A scripted Slack Web API: records every call, keeps posted messages as channel history."""

    def __init__(self, httpserver: HTTPServer) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.history: list[dict[str, Any]] = []  # newest first, as conversations.history answers
        self.update_error: str | None = None
        self.post_status = 200
        for method in ("chat.postMessage", "chat.update", "conversations.history"):
            httpserver.expect_request(f"/{method}").respond_with_handler(self._handler(method))

    def _handler(self, method: str) -> Any:
        def handle(request: Request) -> Response:
            body = request.get_json(silent=True) or dict(request.values)
            assert request.headers["Authorization"] == "Bearer xoxb-test"
            self.calls.append((method, body))
            if method == "conversations.history":
                return _json({"ok": True, "messages": self.history})
            if method == "chat.update":
                if self.update_error:
                    return _json({"ok": False, "error": self.update_error})
                return _json({"ok": True, "ts": body["ts"], "channel": CHANNEL})
            if self.post_status != 200:
                return Response("slow down", status=self.post_status, headers={"Retry-After": "7"})
            ts = f"1700000000.{len(self.history):06d}"
            self.history.insert(0, {"ts": ts, "text": body["text"], "metadata": body.get("metadata")})
            return _json({"ok": True, "ts": ts, "channel": CHANNEL})

        return handle

    def methods(self) -> list[str]:
        return [m for m, _ in self.calls]


def _json(payload: dict[str, Any]) -> Response:
    return Response(json.dumps(payload), status=200, content_type="application/json")


@pytest.fixture
def api(httpserver: HTTPServer) -> SlackApi:
    return SlackApi(httpserver)


def adapter(httpserver: HTTPServer, *, update_in_place: bool = True) -> SlackBotAdapter:
    return SlackBotAdapter(
        "oncall", "xoxb-test", CHANNEL, update_in_place=update_in_place, base_url=httpserver.url_for("/")
    )


def firing() -> Notification:
    n = sample_notification("oncall", now=datetime(2026, 3, 2, 9, 0, tzinfo=UTC))
    return n.model_copy(update={"alerts": [a for a in n.alerts if a.kind != NoticeKind.RESOLVED]})


def resolved(n: Notification) -> Notification:
    alerts = [a.model_copy(update={"kind": NoticeKind.RESOLVED}) for a in n.alerts]
    return n.model_copy(update={"id": n.id + "-resolved", "alerts": alerts})


def test_a_resolved_notification_edits_the_message_that_announced_it(
    httpserver: HTTPServer, api: SlackApi
) -> None:
    slack = adapter(httpserver)
    fired = firing()
    slack.send(fired, idempotency_key=fired.id)
    ((_, posted),) = api.calls
    assert posted["metadata"]["event_type"] == EVENT_TYPE
    assert sorted(posted["metadata"]["event_payload"]["fingerprints"]) == sorted(
        a.key.fingerprint for a in fired.alerts
    )
    slack.send(resolved(fired), idempotency_key="r")
    assert api.methods() == ["chat.postMessage", "conversations.history", "chat.update"]
    edit = api.calls[-1][1]
    assert edit["ts"] == api.history[0]["ts"] and edit["channel"] == CHANNEL
    assert "resolved" in edit["text"].lower()
    assert len(api.history) == 1  # no second message


def test_without_the_original_message_a_resolved_notification_is_a_new_message(
    httpserver: HTTPServer, api: SlackApi
) -> None:
    slack = adapter(httpserver)
    slack.send(resolved(firing()), idempotency_key="r")
    assert api.methods() == ["conversations.history", "chat.postMessage"]


def test_a_message_that_can_no_longer_be_edited_falls_back_to_a_new_one(
    httpserver: HTTPServer, api: SlackApi
) -> None:
    slack = adapter(httpserver)
    fired = firing()
    slack.send(fired, idempotency_key=fired.id)
    api.update_error = "message_not_found"  # deleted meanwhile
    slack.send(resolved(fired), idempotency_key="r")
    assert api.methods() == ["chat.postMessage", "conversations.history", "chat.update", "chat.postMessage"]
    assert len(api.history) == 2


def test_without_update_in_place_every_notification_is_a_new_message(
    httpserver: HTTPServer, api: SlackApi
) -> None:
    slack = adapter(httpserver, update_in_place=False)
    fired = firing()
    slack.send(fired, idempotency_key=fired.id)
    slack.send(resolved(fired), idempotency_key="r")
    assert api.methods() == ["chat.postMessage", "chat.postMessage"]


def test_throttling_is_retryable_with_slacks_retry_after(httpserver: HTTPServer, api: SlackApi) -> None:
    api.post_status = 429
    with pytest.raises(DeliveryError) as info:
        adapter(httpserver).send(firing(), idempotency_key="x")
    assert info.value.retryable and info.value.retry_after == 7


def test_update_in_place_needs_a_bot_token_and_a_channel() -> None:
    base = "channels:\n  - {name: s, type: slack, %s}\nroute: {receivers: [s]}\n"
    with pytest.raises(ConfigError, match="update_in_place needs a bot token"):
        parse_config(base % "webhook_url_env: HOOK, update_in_place: true")
    with pytest.raises(ConfigError, match="needs channel"):
        parse_config(base % "token_env: SLACK_BOT_TOKEN")
    config = parse_config(base % "token_env: SLACK_BOT_TOKEN, channel: C1, update_in_place: true")
    built = build_channel(config.channels[0], secrets=SecretResolver(environ={"SLACK_BOT_TOKEN": "xoxb-1"}))
    assert isinstance(built, SlackBotAdapter)
