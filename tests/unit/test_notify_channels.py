"""Console and file channels, the SSRF guard, status mapping and build_channel."""

from __future__ import annotations

import importlib.util
import io
import json
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError, NoCredentialsError

from driftguard.config import parse_config
from driftguard.errors import ConfigError, DeliveryError, SecretError
from driftguard.notify import AddressGuard, ChannelConfig, build_channel, local
from driftguard.notify.aws import SNS_MESSAGE_MAX_BYTES, SnsAdapter, aws_errors, sns_publish_request
from driftguard.notify.local import ConsoleAdapter, FileAdapter
from driftguard.notify.sample import sample_notification
from driftguard.notify.web import host_and_port, is_public_address, parse_retry_after, raise_for_status
from driftguard.notify.webhook import WebhookAdapter
from driftguard.secrets import SecretResolver

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
WHSEC = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


def _channel(yaml_channel: str) -> ChannelConfig:
    return parse_config(f"channels:\n  - {yaml_channel}\nroute:\n  receivers: [c]\n").channels[0]


# --------------------------------------------------------------------------- console and file


def test_console_writes_the_plain_text_to_its_stream() -> None:
    stream = io.StringIO()
    ConsoleAdapter("console", stream).send(sample_notification("console", now=NOW), idempotency_key="k")
    out = stream.getvalue()
    assert out.startswith("─" * 72 + "\n[CRITICAL] orders-db")
    assert "Observed  112" in out


def test_console_degrades_characters_its_terminal_cannot_encode() -> None:
    raw = io.BytesIO()
    stream = io.TextIOWrapper(raw, encoding="ascii")
    ConsoleAdapter("console", stream).send(sample_notification("console", now=NOW), idempotency_key="k")
    assert b"[CRITICAL] orders-db" in raw.getvalue() and b"?" in raw.getvalue()


def test_file_appends_one_json_object_per_notification_and_skips_known_keys(tmp_path: Path) -> None:
    path = tmp_path / "out" / "alerts.jsonl"
    adapter = FileAdapter("file", path)
    first = sample_notification("file", now=NOW)
    second = sample_notification("file", now=NOW + timedelta(hours=1))
    adapter.send(first, idempotency_key=first.id)
    adapter.send(first, idempotency_key=first.id)  # a retry: written once
    adapter.send(second, idempotency_key=second.id)
    records = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    assert [r["idempotency_key"] for r in records] == [first.id, second.id]
    assert records[0]["source"] == "orders-db" and records[0]["alerts"][0]["kind"] == "firing"


def test_file_recovers_from_a_torn_last_line(tmp_path: Path) -> None:
    path = tmp_path / "alerts.jsonl"
    path.write_text('{"idempotency_key": "torn', encoding="utf-8")
    n = sample_notification("file", now=NOW)
    FileAdapter("file", path).send(n, idempotency_key=n.id)
    lines = path.read_text(encoding="utf-8").splitlines()
    assert lines[0] == '{"idempotency_key": "torn'
    assert json.loads(lines[1])["idempotency_key"] == n.id


def test_concurrent_writers_of_the_same_notification_write_it_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    scan = local._keys_in

    def slow_scan(content: str) -> set[str]:
        time.sleep(0.05)  # widen the gap between the duplicate scan and the append
        return scan(content)

    monkeypatch.setattr(local, "_keys_in", slow_scan)
    path = tmp_path / "alerts.jsonl"
    n = sample_notification("file", now=NOW)
    threads = [
        threading.Thread(target=FileAdapter("file", path).send, args=(n,), kwargs={"idempotency_key": n.id})
        for _ in range(8)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(path.read_text(encoding="utf-8").splitlines()) == 1


def test_file_that_cannot_be_written_is_a_permanent_failure(tmp_path: Path) -> None:
    n = sample_notification("file", now=NOW)
    with pytest.raises(DeliveryError) as err:
        FileAdapter("file", tmp_path).send(n, idempotency_key=n.id)  # a directory
    assert err.value.retryable is False


# --------------------------------------------------------------------------- SSRF guard


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "10.1.2.3",
        "172.16.0.1",
        "192.168.1.1",
        "169.254.169.254",
        "100.64.0.1",
        "0.0.0.0",
        "224.0.0.1",
        "240.0.0.1",
        "255.255.255.255",
        "::1",
        "::",
        "fd00::1",
        "fe80::1",
        "ff02::1",
        "::ffff:127.0.0.1",
        "::ffff:169.254.169.254",
        "2002:7f00:1::",
        "not-an-address",
    ],
)
def test_non_public_addresses_are_refused(address: str) -> None:
    assert not is_public_address(address)
    guard = AddressGuard(resolve=lambda host, port: [address])
    with pytest.raises(DeliveryError, match="non-public") as err:
        guard.vet("https://hooks.example.com/x")
    assert err.value.retryable is False


@pytest.mark.parametrize("address", ["93.184.216.34", "8.8.8.8", "2606:4700:4700::1111"])
def test_public_addresses_pass(address: str) -> None:
    assert is_public_address(address)
    assert AddressGuard(resolve=lambda host, port: [address]).vet("https://hooks.example.com/x") == [address]


def test_one_private_address_among_public_ones_is_refused() -> None:
    guard = AddressGuard(resolve=lambda host, port: ["93.184.216.34", "10.0.0.5"])
    with pytest.raises(DeliveryError, match=r"10\.0\.0\.5"):
        guard.vet("https://hooks.example.com/x")


def test_allow_private_lets_internal_targets_through() -> None:
    guard = AddressGuard(resolve=lambda host, port: ["10.0.0.5"], allow_private=True)
    assert guard.vet("http://internal.example:8080/hook") == ["10.0.0.5"]


def test_guard_passes_host_and_default_port_to_the_resolver() -> None:
    seen: list[tuple[str, int]] = []

    def resolve(host: str, port: int) -> list[str]:
        seen.append((host, port))
        return ["8.8.8.8"]

    guard = AddressGuard(resolve=resolve)
    guard.vet("https://a.example/x")
    guard.vet("http://[2606:4700::1]:8443/x")
    assert seen == [("a.example", 443), ("2606:4700::1", 8443)]


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://h.example/x", ("h.example", 443)),
        ("http://h.example/x", ("h.example", 80)),
        ("http://[2606:4700::1]/x", ("2606:4700::1", 80)),
        ("https://[::ffff:127.0.0.1]:8443/x", ("::ffff:127.0.0.1", 8443)),
    ],
)
def test_host_and_port_of_a_url(url: str, expected: tuple[str, int]) -> None:
    assert host_and_port(url) == expected


@pytest.mark.parametrize(
    "url", ["ftp://h.example/", "https:///path", "http://h.example:99999/", "gopher://x"]
)
def test_urls_that_are_not_http_with_a_host_are_refused(url: str) -> None:
    with pytest.raises(DeliveryError, match="only http"):
        host_and_port(url)


def test_resolution_failure_is_retryable_and_bad_schemes_are_permanent() -> None:
    def fail(host: str, port: int) -> list[str]:
        raise OSError("Name or service not known")

    with pytest.raises(DeliveryError) as err:
        AddressGuard(resolve=fail).vet("https://nowhere.example/")
    assert err.value.retryable is True
    with pytest.raises(DeliveryError) as err:
        AddressGuard().vet("file:///etc/passwd")
    assert err.value.retryable is False


# --------------------------------------------------------------------------- status mapping


def test_retry_after_seconds_and_http_dates() -> None:
    now = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
    assert parse_retry_after("30") == 30.0
    assert parse_retry_after("Mon, 02 Mar 2026 09:01:30 GMT", now) == 90.0
    assert parse_retry_after("Mon, 02 Mar 2026 08:00:00 GMT", now) == 0.0
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None


@pytest.mark.parametrize(
    ("status", "retryable"),
    [
        (500, True),
        (502, True),
        (503, True),
        (408, True),
        (429, True),
        (400, False),
        (401, False),
        (403, False),
        (404, False),
        (410, False),
        (301, False),
        (302, False),
    ],
)
def test_status_codes_map_to_retryable_or_permanent(status: int, retryable: bool) -> None:
    with pytest.raises(DeliveryError) as err:
        raise_for_status(status, {"Retry-After": "12"}, "body text", what="hook")
    assert err.value.retryable is retryable
    assert err.value.retry_after == (12.0 if retryable else None)
    assert f"HTTP {status}: body text" in str(err.value)


def test_success_statuses_pass() -> None:
    for status in (200, 201, 202, 204):
        raise_for_status(status, {}, "", what="hook")


def _client_error(code: str, status: int) -> ClientError:
    return ClientError(
        {"Error": {"Code": code, "Message": "m"}, "ResponseMetadata": {"HTTPStatusCode": status}}, "Op"
    )


@pytest.mark.parametrize(
    ("error", "retryable"),
    [
        (_client_error("Throttling", 400), True),
        (_client_error("TooManyRequestsException", 429), True),
        (_client_error("InternalError", 500), True),
        (_client_error("Whatever", 503), True),
        (_client_error("MessageRejected", 400), False),
        (_client_error("AuthorizationError", 403), False),
        (_client_error("NotFound", 404), False),
        (EndpointConnectionError(endpoint_url="https://sns.example"), True),
        (NoCredentialsError(), False),
    ],
)
def test_aws_errors_map_to_retryable_or_permanent(error: Exception, retryable: bool) -> None:
    with pytest.raises(DeliveryError) as err, aws_errors("SNS channel 'x'"):
        raise error
    assert err.value.retryable is retryable
    assert err.value.__cause__ is error


# --------------------------------------------------------------------------- build_channel


def test_build_channel_builds_each_kind(tmp_path: Path) -> None:
    secrets = SecretResolver(environ={"SLACK_URL": "https://hooks.slack.com/services/T/B/X", "WH": WHSEC})
    built = [
        build_channel(
            _channel(text), secrets=secrets, default_topic_arn="arn:aws:sns:eu-west-1:123456789012:t"
        )
        for text in [
            "{name: c, type: console}",
            f"{{name: c, type: file, path: {tmp_path / 'a.jsonl'}}}",
            "{name: c, type: sns}",
            "{name: c, type: ses, from: a@example.com, to: [b@example.com]}",
            "{name: c, type: slack, webhook_url_env: SLACK_URL}",
            "{name: c, type: webhook, url: 'https://h.example/x', secret_env: WH}",
        ]
    ]
    assert [type(a).__name__ for a in built] == [
        "ConsoleAdapter",
        "FileAdapter",
        "SnsAdapter",
        "SesAdapter",
        "SlackAdapter",
        "WebhookAdapter",
    ]
    assert isinstance(built[2], SnsAdapter) and built[2].topic_arn == "arn:aws:sns:eu-west-1:123456789012:t"
    assert isinstance(built[5], WebhookAdapter) and built[5].url == "https://h.example/x"


def test_sns_without_any_topic_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="no topic_arn"):
        build_channel(_channel("{name: c, type: sns}"), secrets=SecretResolver(environ={}))


def test_missing_or_malformed_secrets_fail_at_build_time() -> None:
    with pytest.raises(SecretError, match="SLACK_URL is not set"):
        build_channel(
            _channel("{name: c, type: slack, webhook_url_env: SLACK_URL}"), secrets=SecretResolver(environ={})
        )
    with pytest.raises(ConfigError, match=r"must be https://hooks\.slack\.com/services/"):
        build_channel(
            _channel("{name: c, type: slack, webhook_url_env: SLACK_URL}"),
            secrets=SecretResolver(environ={"SLACK_URL": "hooks.slack.com/x"}),
        )
    with pytest.raises(SecretError, match="whsec_"):
        build_channel(
            _channel("{name: c, type: webhook, url: 'https://h.example/x', secret_env: WH}"),
            secrets=SecretResolver(environ={"WH": "whsec_"}),
        )


def test_a_channel_whose_optional_package_is_missing_says_which_extra_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "slack_sdk" else object()
    )
    with pytest.raises(ConfigError, match=r"pip install 'driftguard\[channels\]'"):
        build_channel(
            _channel("{name: c, type: slack, webhook_url_env: U}"),
            secrets=SecretResolver(environ={"U": "https://hooks.slack.com/services/T/B/X"}),
        )


# ------------------------------------------------------------ SNS request (boto3 and Step Functions)


def test_sns_publish_request_for_a_standard_topic_has_no_fifo_fields() -> None:
    n = sample_notification("sns", now=NOW)
    request = sns_publish_request(n, topic_arn="arn:aws:sns:eu-west-1:1:alerts", idempotency_key=n.id)
    assert set(request) == {"TopicArn", "Subject", "Message", "MessageAttributes"}
    assert request["MessageAttributes"]["severity"] == {"DataType": "String", "StringValue": "critical"}


def test_sns_publish_request_for_a_fifo_topic_uses_source_and_a_valid_deduplication_id() -> None:
    n = sample_notification("sns", now=NOW)
    request = sns_publish_request(n, topic_arn="arn:aws:sns:eu-west-1:1:alerts.fifo", idempotency_key=n.id)
    assert (request["MessageGroupId"], request["MessageDeduplicationId"]) == ("orders-db", n.id)
    odd = sns_publish_request(n, topic_arn="t.fifo", idempotency_key="ключ " * 40)
    assert len(odd["MessageDeduplicationId"]) == 64 and odd["MessageDeduplicationId"].isalnum()


def test_sns_publish_request_drops_empty_attributes_and_fits_the_message_size_limit() -> None:
    n = sample_notification("sns", now=NOW)
    huge = n.model_copy(update={"source": "", "silence_hint": "é" * 300_000})
    request = sns_publish_request(huge, topic_arn="arn:aws:sns:eu-west-1:1:alerts", idempotency_key="k")
    assert "source" not in request["MessageAttributes"]
    assert len(request["Message"].encode()) <= SNS_MESSAGE_MAX_BYTES and request["Message"].endswith("…")


def test_ses_sends_through_the_stacks_configuration_set_unless_the_channel_names_one() -> None:
    """The deployed stack's configuration set suppresses bounces and publishes delivery metrics: an
    `ses` channel without its own set must use it (it used to be set in the environment and ignored)."""

    class Recorder:
        def __init__(self) -> None:
            self.requests: list[dict[str, object]] = []

        def send_email(self, **request: object) -> None:
            self.requests.append(request)

    for own, expected in ((None, "stack-set"), ("team-set", "team-set")):
        extra = f", configuration_set: {own}" if own else ""
        cfg = _channel(f"{{name: c, type: ses, from: dg@example.com, to: [a@example.com]{extra}}}")
        client = Recorder()
        adapter = build_channel(
            cfg, secrets=SecretResolver(environ={}), ses_client=client, ses_configuration_set="stack-set"
        )
        adapter.send(sample_notification("c", now=NOW), idempotency_key="k")
        (request,) = client.requests
        assert request["ConfigurationSetName"] == expected
