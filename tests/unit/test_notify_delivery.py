"""deliver(): retries with full-jitter backoff, Retry-After, permanent errors, parking."""

from __future__ import annotations

import random
from datetime import UTC, datetime

import pytest

from driftguard.errors import DeliveryError
from driftguard.model import DeliveryRecord, DeliveryStatus, Notification
from driftguard.notify import ChannelAdapter, backoff_delay, deliver
from driftguard.notify.delivery import BACKOFF_CAP_SECONDS
from driftguard.notify.sample import sample_notification

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


class Scripted(ChannelAdapter):
    """Raises the scripted errors in order, then succeeds; records every idempotency key."""

    def __init__(self, *outcomes: Exception) -> None:
        super().__init__("scripted")
        self.outcomes = list(outcomes)
        self.keys: list[str] = []

    def send(self, notification: Notification, *, idempotency_key: str) -> None:
        self.keys.append(idempotency_key)
        if self.outcomes:
            raise self.outcomes.pop(0)


def _deliver(adapter: ChannelAdapter, max_attempts: int = 5) -> tuple[DeliveryRecord, list[float]]:
    sleeps: list[float] = []
    record = deliver(
        sample_notification("scripted", now=NOW),
        adapter,
        max_attempts=max_attempts,
        sleep=sleeps.append,
        rng=random.Random(7),
        now=lambda: NOW,
    )
    return record, sleeps


def test_first_attempt_success_is_delivered_without_sleeping() -> None:
    adapter = Scripted()
    record, sleeps = _deliver(adapter)
    assert record.status == DeliveryStatus.DELIVERED
    assert record.attempts == 1 and record.notification is None and record.error is None
    assert sleeps == []


def test_retryable_errors_are_retried_with_the_same_idempotency_key() -> None:
    n = sample_notification("scripted", now=NOW)
    adapter = Scripted(DeliveryError("503", retryable=True), DeliveryError("timeout", retryable=True))
    record, sleeps = _deliver(adapter)
    assert record.status == DeliveryStatus.DELIVERED
    assert record.attempts == 3
    assert adapter.keys == [n.id] * 3
    assert len(sleeps) == 2
    assert 0 <= sleeps[0] <= 1.0 and 0 <= sleeps[1] <= 2.0  # full jitter under base * 2^(n-1)


def test_retry_after_is_honoured_and_capped() -> None:
    adapter = Scripted(
        DeliveryError("429", retryable=True, retry_after=7.0),
        DeliveryError("429", retryable=True, retry_after=3600.0),
    )
    record, sleeps = _deliver(adapter)
    assert record.status == DeliveryStatus.DELIVERED
    assert sleeps == [7.0, BACKOFF_CAP_SECONDS]


def test_permanent_error_stops_at_once_and_parks_the_notification() -> None:
    adapter = Scripted(DeliveryError("HTTP 400: bad payload", retryable=False))
    record, sleeps = _deliver(adapter)
    assert record.status == DeliveryStatus.FAILED
    assert record.attempts == 1 and sleeps == []
    assert record.error == "HTTP 400: bad payload"
    assert record.notification == sample_notification("scripted", now=NOW)
    assert record.at == NOW and record.channel == "scripted"


def test_exhausted_retries_fail_after_max_attempts() -> None:
    adapter = Scripted(*(DeliveryError(f"down {i}", retryable=True) for i in range(10)))
    record, sleeps = _deliver(adapter, max_attempts=4)
    assert record.status == DeliveryStatus.FAILED
    assert record.attempts == 4 and len(sleeps) == 3
    assert record.error == "down 3"
    assert record.notification is not None


def test_programming_errors_propagate() -> None:
    with pytest.raises(KeyError):
        _deliver(Scripted(KeyError("bug")))


def test_max_attempts_must_be_positive() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        _deliver(Scripted(), max_attempts=0)


def test_backoff_grows_exponentially_with_full_jitter_up_to_the_cap() -> None:
    rng = random.Random(1)
    for attempt, ceiling in [(1, 1.0), (2, 2.0), (3, 4.0), (6, 32.0), (7, 60.0), (30, 60.0)]:
        delays = [backoff_delay(attempt, None, rng) for _ in range(300)]
        assert all(0.0 <= d <= ceiling for d in delays)
        assert max(delays) > ceiling * 0.8 and min(delays) < ceiling * 0.2  # spread over the whole range
    assert backoff_delay(3, -5.0, rng) == 0.0
