"""Webhook and Slack channels against a real HTTP receiver on loopback (pytest-httpserver).

The receiver verifies Standard Webhooks signatures with the `standardwebhooks` library itself.
Loopback is a private address, so these tests opt in the way an operator would: the webhook
channel's `allow_private: true`, or for Slack an injected `AddressGuard(allow_private=True)`.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from pytest_httpserver import HTTPServer
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError
from werkzeug import Request, Response

from driftguard.config import parse_config
from driftguard.errors import DeliveryError
from driftguard.model import DeliveryStatus, Notification
from driftguard.notify import AddressGuard, ChannelAdapter, build_channel, deliver, render
from driftguard.notify.sample import sample_notification
from driftguard.notify.webhook import WebhookAdapter, signer
from driftguard.secrets import SecretResolver

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
OTHER_SECRET = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD"
LOOPBACK = AddressGuard(allow_private=True)


def _notification() -> Notification:
    return sample_notification("hook", now=datetime.now(UTC))  # signatures carry a fresh timestamp


class Receiver:
    """Verifies every request's signature, then answers with the next scripted response."""

    def __init__(self, secret: str, *responses: tuple[int, dict[str, str]]) -> None:
        self.webhook = Webhook(secret)
        self.responses = list(responses)
        self.verified: list[tuple[dict[str, str], Any]] = []

    def __call__(self, request: Request) -> Response:
        headers = dict(request.headers)
        try:
            payload = self.webhook.verify(request.get_data(), headers)
        except WebhookVerificationError as e:
            return Response(f"bad signature: {e}", status=401)
        self.verified.append((headers, payload))
        status, response_headers = self.responses.pop(0) if self.responses else (200, {})
        return Response("ok" if status < 300 else "nope", status=status, headers=response_headers)


def _webhook(httpserver: HTTPServer, *, secret: str = SECRET, timeout: float = 5.0) -> WebhookAdapter:
    return WebhookAdapter(
        "hook",
        httpserver.url_for("/hook"),
        signer=signer(secret, what="test"),
        timeout=timeout,
        guard=LOOPBACK,
    )


def _deliver(n: Notification, adapter: ChannelAdapter, max_attempts: int = 5) -> tuple[Any, list[float]]:
    sleeps: list[float] = []
    record = deliver(n, adapter, max_attempts=max_attempts, sleep=sleeps.append, rng=random.Random(3))
    return record, sleeps


# --------------------------------------------------------------------------- webhook


def test_signed_webhook_survives_500_then_429_then_succeeds(httpserver: HTTPServer) -> None:
    receiver = Receiver(SECRET, (500, {}), (429, {"Retry-After": "2"}), (200, {}))
    httpserver.expect_request("/hook", method="POST").respond_with_handler(receiver)
    n = _notification()

    record, sleeps = _deliver(n, _webhook(httpserver))

    assert record.status == DeliveryStatus.DELIVERED and record.attempts == 3
    assert len(sleeps) == 2 and 0.0 <= sleeps[0] <= 1.0 and sleeps[1] == 2.0
    assert len(receiver.verified) == 3  # every attempt carried a valid signature
    for headers, payload in receiver.verified:
        assert headers["Webhook-Id"] == n.id
        assert headers["Webhook-Signature"].startswith("v1,")
        assert headers["Content-Type"] == "application/json"
        assert payload == render.json_payload(n)


def test_receiver_with_another_secret_rejects_the_signature_permanently(httpserver: HTTPServer) -> None:
    receiver = Receiver(OTHER_SECRET)
    httpserver.expect_request("/hook", method="POST").respond_with_handler(receiver)
    record, sleeps = _deliver(_notification(), _webhook(httpserver))
    assert record.status == DeliveryStatus.FAILED and record.attempts == 1 and sleeps == []
    assert "HTTP 401: bad signature" in record.error
    assert receiver.verified == []


def test_400_is_permanent_after_one_attempt(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/hook", method="POST").respond_with_handler(Receiver(SECRET, (400, {})))
    n = _notification()
    record, sleeps = _deliver(n, _webhook(httpserver))
    assert record.status == DeliveryStatus.FAILED and record.attempts == 1 and sleeps == []
    assert record.notification == n
    assert len(httpserver.log) == 1


def test_a_receiver_slower_than_the_timeout_is_a_retryable_failure(httpserver: HTTPServer) -> None:
    def slow(request: Request) -> Response:
        time.sleep(2.0)
        return Response("late", status=200)

    httpserver.expect_request("/hook", method="POST").respond_with_handler(slow)
    started = time.monotonic()
    with pytest.raises(DeliveryError, match=r"did not answer within 0\.2s") as err:
        _webhook(httpserver, timeout=0.2).send(_notification(), idempotency_key="k")
    assert err.value.retryable is True
    assert time.monotonic() - started < 1.8  # well short of the receiver's 2 s
    deadline = time.monotonic() + 5  # let the late answer land in this test's log, not the next one's
    while not httpserver.log and time.monotonic() < deadline:
        time.sleep(0.05)


def test_redirects_are_not_followed(httpserver: HTTPServer) -> None:
    receiver = Receiver(SECRET, (302, {"Location": "http://169.254.169.254/latest/meta-data/"}))
    httpserver.expect_request("/hook", method="POST").respond_with_handler(receiver)
    record, _ = _deliver(_notification(), _webhook(httpserver))
    assert record.status == DeliveryStatus.FAILED and record.attempts == 1
    assert "redirects are not followed" in record.error
    assert len(receiver.verified) == 1


def _configured_webhook(url: str, *, allow_private: bool) -> ChannelAdapter:
    config = parse_config(
        "channels:\n"
        f"  - {{name: hook, type: webhook, url: '{url}', secret_env: HOOK_SECRET, "
        f"allow_private: {str(allow_private).lower()}, timeout: 5s}}\n"
        "route: {receivers: [hook]}\n"
    )
    return build_channel(config.channels[0], secrets=SecretResolver(environ={"HOOK_SECRET": SECRET}))


def test_loopback_is_refused_unless_the_channel_allows_private_targets(httpserver: HTTPServer) -> None:
    receiver = Receiver(SECRET)
    httpserver.expect_request("/hook", method="POST").respond_with_handler(receiver)
    n = _notification()
    url = httpserver.url_for("/hook").replace("localhost", "127.0.0.1")

    refused, _ = _deliver(n, _configured_webhook(url, allow_private=False))
    assert refused.status == DeliveryStatus.FAILED and refused.attempts == 1
    assert "non-public address(es) 127.0.0.1" in refused.error
    assert httpserver.log == []  # nothing left the process

    accepted, _ = _deliver(n, _configured_webhook(url, allow_private=True))
    assert accepted.status == DeliveryStatus.DELIVERED
    assert len(receiver.verified) == 1


@pytest.mark.parametrize("address", ["169.254.169.254", "10.0.0.7", "::1", "fd00::1", "::ffff:127.0.0.1"])
def test_hosts_resolving_to_internal_addresses_are_refused_before_connecting(address: str) -> None:
    resolved: list[str] = []

    def resolve(host: str, port: int) -> list[str]:
        resolved.append(host)
        return [address]

    adapter = WebhookAdapter(
        "hook", "https://hooks.example.com/x", signer=None, timeout=1.0, guard=AddressGuard(resolve=resolve)
    )
    with pytest.raises(DeliveryError, match="non-public") as err:
        adapter.send(_notification(), idempotency_key="k")
    assert err.value.retryable is False and resolved == ["hooks.example.com"]


def test_the_connection_goes_to_the_vetted_address_not_a_second_lookup(httpserver: HTTPServer) -> None:
    """rebind.invalid never resolves in DNS: the request arrives only because the adapter connects
    to the address the guard vetted, while Host still names the URL's host."""
    receiver = Receiver(SECRET)
    httpserver.expect_request("/hook", method="POST").respond_with_handler(receiver)
    guard = AddressGuard(resolve=lambda host, port: ["127.0.0.1"], allow_private=True)
    url = f"http://rebind.invalid:{httpserver.port}/hook"
    adapter = WebhookAdapter("hook", url, signer=signer(SECRET, what="t"), timeout=5.0, guard=guard)
    adapter.send(_notification(), idempotency_key="k")
    [(headers, _)] = receiver.verified
    assert headers["Host"] == f"rebind.invalid:{httpserver.port}"


def test_unsigned_webhook_still_carries_id_and_timestamp(httpserver: HTTPServer) -> None:
    captured: list[Request] = []

    def capture(request: Request) -> Response:
        captured.append(request)
        return Response("", status=204)

    httpserver.expect_request("/hook", method="POST").respond_with_handler(capture)
    n = _notification()
    WebhookAdapter("hook", httpserver.url_for("/hook"), signer=None, timeout=5.0, guard=LOOPBACK).send(
        n, idempotency_key=n.id
    )
    [request] = captured
    assert request.headers["webhook-id"] == n.id
    assert abs(int(request.headers["webhook-timestamp"]) - time.time()) < 60
    assert "webhook-signature" not in request.headers
    assert json.loads(request.get_data()) == render.json_payload(n)


# --------------------------------------------------------------------------- Slack


def _slack(httpserver: HTTPServer, guard: AddressGuard = LOOPBACK) -> ChannelAdapter:
    config = parse_config(
        "channels:\n  - {name: team, type: slack, webhook_url_env: SLACK_URL}\nroute: {receivers: [team]}\n"
    )
    secrets = SecretResolver(environ={"SLACK_URL": httpserver.url_for("/services/T000/B000/XXXX")})
    return build_channel(config.channels[0], secrets=secrets, guard=guard)


def _slack_responses(
    *responses: tuple[int, dict[str, str], str],
) -> tuple[Callable[[Request], Response], list[Any]]:
    bodies: list[Any] = []
    queue = list(responses)

    def handler(request: Request) -> Response:
        bodies.append(json.loads(request.get_data()))
        status, headers, text = queue.pop(0) if queue else (200, {}, "ok")
        return Response(text, status=status, headers=headers)

    return handler, bodies


def test_slack_posts_block_kit_to_the_incoming_webhook(httpserver: HTTPServer) -> None:
    handler, bodies = _slack_responses()
    httpserver.expect_request("/services/T000/B000/XXXX", method="POST").respond_with_handler(handler)
    n = _notification()
    record, _ = _deliver(n, _slack(httpserver))
    assert record.status == DeliveryStatus.DELIVERED and record.attempts == 1
    [body] = bodies
    assert body["text"] == n.title
    assert body["blocks"] == render.slack_blocks(n)


def test_slack_rate_limit_and_server_errors_are_retried(httpserver: HTTPServer) -> None:
    handler, bodies = _slack_responses(
        (429, {"Retry-After": "3"}, "rate_limited"), (503, {}, "unavailable"), (200, {}, "ok")
    )
    httpserver.expect_request("/services/T000/B000/XXXX", method="POST").respond_with_handler(handler)
    record, sleeps = _deliver(_notification(), _slack(httpserver))
    assert record.status == DeliveryStatus.DELIVERED and record.attempts == 3
    assert sleeps[0] == 3.0 and 0.0 <= sleeps[1] <= 2.0
    assert len(bodies) == 3


def test_slack_client_errors_are_permanent(httpserver: HTTPServer) -> None:
    handler, bodies = _slack_responses((404, {}, "no_service"))
    httpserver.expect_request("/services/T000/B000/XXXX", method="POST").respond_with_handler(handler)
    record, sleeps = _deliver(_notification(), _slack(httpserver))
    assert record.status == DeliveryStatus.FAILED and record.attempts == 1 and sleeps == []
    assert "HTTP 404: no_service" in record.error and len(bodies) == 1


def test_slack_to_a_loopback_url_is_refused_by_the_default_guard(httpserver: HTTPServer) -> None:
    record, _ = _deliver(_notification(), _slack(httpserver, guard=AddressGuard()))
    assert record.status == DeliveryStatus.FAILED and "non-public" in record.error
    assert httpserver.log == []
