"""The delivery ledger's rule (pure): who may send a committed notification now."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from driftguard.ledger import ClaimRequest, Entry, Verdict, decide, may_record
from driftguard.model import DeliveryStatus

NOW = datetime(2026, 11, 17, 12, 0, tzinfo=UTC)
LEASE = timedelta(minutes=5)


def request(
    claimer: str = "me", *, retry_parked: bool = False, gone: frozenset[str] = frozenset()
) -> ClaimRequest:
    return ClaimRequest(claimer, NOW, LEASE, retry_parked=retry_parked, orphaned=lambda c: c in gone)


def claimed(by: str, until: datetime, status: DeliveryStatus | None = None) -> Entry:
    return Entry(exists=True, status=status, claimer=by, claimed_until=until)


@pytest.mark.parametrize(
    ("entry", "req", "verdict"),
    [
        (Entry(exists=False), request(), Verdict.UNKNOWN),
        (Entry(exists=True), request(), Verdict.SEND),
        (Entry(exists=True, status=DeliveryStatus.DELIVERED), request(retry_parked=True), Verdict.DELIVERED),
        (Entry(exists=True, status=DeliveryStatus.FAILED), request(), Verdict.PARKED),
        (Entry(exists=True, status=DeliveryStatus.FAILED), request(retry_parked=True), Verdict.SEND),
        # a live claim blocks everyone, its own holder's other threads too
        (claimed("other", NOW + LEASE), request(), Verdict.IN_FLIGHT),
        (claimed("me", NOW + LEASE), request(), Verdict.IN_FLIGHT),
        (claimed("other", NOW + LEASE, DeliveryStatus.FAILED), request(retry_parked=True), Verdict.IN_FLIGHT),
        # an expired claim, or one whose holder is gone, is taken over
        (claimed("other", NOW), request(), Verdict.SEND),
        (claimed("other", NOW - LEASE), request(), Verdict.SEND),
        (claimed("dead", NOW + LEASE), request(gone=frozenset({"dead"})), Verdict.SEND),
        # delivered wins over any claim
        (claimed("other", NOW + LEASE, DeliveryStatus.DELIVERED), request(), Verdict.DELIVERED),
    ],
)
def test_decide(entry: Entry, req: ClaimRequest, verdict: Verdict) -> None:
    assert decide(entry, req) is verdict


def test_delivered_is_final() -> None:
    assert may_record(None, DeliveryStatus.FAILED) and may_record(None, DeliveryStatus.DELIVERED)
    assert may_record(DeliveryStatus.FAILED, DeliveryStatus.DELIVERED)
    assert may_record(DeliveryStatus.FAILED, DeliveryStatus.FAILED)
    assert not may_record(DeliveryStatus.DELIVERED, DeliveryStatus.FAILED)
    assert may_record(DeliveryStatus.DELIVERED, DeliveryStatus.DELIVERED)


def test_a_claim_lasts_its_lease() -> None:
    assert request().until == NOW + LEASE
