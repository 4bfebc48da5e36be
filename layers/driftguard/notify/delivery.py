"""Reliable delivery, never twice: claim before send and mark after (`deliver_once`, the one place
every sender goes through: the CLI engine, `redeliver` and the AWS notify function), retries with
exponential backoff and full jitter, parking on failure. The rule itself is driftguard.ledger."""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from datetime import datetime

from driftguard.errors import DeliveryError
from driftguard.ledger import Claim, ClaimRequest
from driftguard.model import DeliveryRecord, DeliveryStatus, Notification, utcnow
from driftguard.notify.base import ChannelAdapter
from driftguard.store.base import Store

BACKOFF_BASE_SECONDS = 1.0
BACKOFF_CAP_SECONDS = 60.0

logger = logging.getLogger(__name__)


def backoff_delay(attempt: int, retry_after: float | None, rng: random.Random) -> float:
    """Seconds to wait after failed attempt number `attempt` (1-based).

    The receiver's Retry-After wins when given (capped, so a hostile value cannot stall a
    run); otherwise "full jitter": uniform in [0, min(cap, base * 2^(attempt-1))], which spreads
    retries of many senders apart instead of synchronising them.
    """
    if retry_after is not None:
        return min(max(retry_after, 0.0), BACKOFF_CAP_SECONDS)
    ceiling = min(BACKOFF_CAP_SECONDS, BACKOFF_BASE_SECONDS * 2 ** (attempt - 1))
    return rng.uniform(0.0, ceiling)


def deliver(
    notification: Notification,
    adapter: ChannelAdapter,
    *,
    max_attempts: int,
    sleep: Callable[[float], None] = time.sleep,
    rng: random.Random | None = None,
    now: Callable[[], datetime] = utcnow,
) -> DeliveryRecord:
    """Send `notification` through `adapter`, retrying retryable failures up to `max_attempts`.

    Never raises for a delivery failure: a FAILED record keeps the notification so the caller can
    park it and replay it later. Anything other than DeliveryError is a bug and propagates.
    """
    if max_attempts < 1:
        raise ValueError(f"max_attempts must be at least 1, got {max_attempts}")
    jitter = rng or random.Random()
    attempt = 0
    while True:
        attempt += 1
        try:
            adapter.send(notification, idempotency_key=notification.id)
        except DeliveryError as e:
            final = not e.retryable or attempt >= max_attempts
            logger.warning(
                "delivery of %s to channel %s failed (attempt %d/%d, %s): %s",
                notification.id,
                adapter.name,
                attempt,
                max_attempts,
                "giving up" if final else "will retry",
                e,
            )
            if final:
                return _record(notification, adapter, DeliveryStatus.FAILED, attempt, now(), error=str(e))
            sleep(backoff_delay(attempt, e.retry_after, jitter))
        else:
            return _record(notification, adapter, DeliveryStatus.DELIVERED, attempt, now())


def _record(
    notification: Notification,
    adapter: ChannelAdapter,
    status: DeliveryStatus,
    attempts: int,
    at: datetime,
    error: str | None = None,
) -> DeliveryRecord:
    return DeliveryRecord(
        notification_id=notification.id,
        channel=adapter.name,
        status=status,
        attempts=attempts,
        at=at,
        error=error,
        notification=notification if status == DeliveryStatus.FAILED else None,  # parked for replay
    )


def deliver_once(
    store: Store,
    notification_id: str,
    send: Callable[[Notification], DeliveryRecord],
    request: ClaimRequest,
) -> tuple[Claim, DeliveryRecord | None]:
    """Send one committed notification at most once, whoever else is sending it at the same time.

    Claims it in the store (a conditional write), sends it only if the claim was granted, and
    records the outcome, which drops the claim: DELIVERED for good, FAILED parked for `redeliver`.
    Returns the claim and the record written (None when it was not ours to send; the claim then
    says why: delivered, parked, or in flight with another sender). If `send` raises DeliveryError
    (the channel did not take the message) the claim is released for a retry; anything else keeps
    it, since the message may have gone: it is taken over only when the claim is orphaned."""
    claim = store.claim_delivery(notification_id, request)
    if not claim.granted:
        return claim, None
    assert claim.notification is not None  # a granted claim carries the body it grants
    try:
        record = send(claim.notification)
    except DeliveryError:
        store.release_delivery(notification_id, request.claimer)
        raise
    store.record_delivery(record)
    return claim, record
