"""The delivery ledger: the one rule that decides whether a committed notification may be sent now.

Every sender (the CLI engine, `redeliver`, the AWS notify function) goes through the same steps,
driven by `driftguard.notify.delivery.deliver_once`:

1. claim: the store reads the notification's ledger entry, asks `decide` what to do, and writes a
   claim (claimer, lease expiry) with a conditional write on the entry being unchanged since that
   read; a lost race reads again and decides again. Only the winner of the claim may send.
2. send, then mark: the outcome is recorded (`Store.record_delivery`): DELIVERED is final, FAILED
   parks the notification for `redeliver`. `may_record` keeps a late FAILED from overwriting a
   DELIVERED written by another sender.

So no interleaving of senders sends a notification twice: two claims cannot both win, and a
delivered entry is never claimed again. The one window left is a crash after the channel
accepted the message and before the mark: the claim then outlives its holder, and once its lease
expires (or, locally, its process is gone) the next sender takes it over and sends again. The
channels narrow that window where they can: the notification id is the FIFO SNS deduplication id
and the webhook `webhook-id`, so those receivers drop the repeat.

Pure: no I/O. Stores call `decide` inside their read-check-write; the caller says which claims
are orphaned (a local process that no longer exists), since only it can look.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from driftguard.model import DeliveryRecord, DeliveryStatus, Notification


class Verdict(StrEnum):
    SEND = "send"  # claimed by this sender: send, then mark
    DELIVERED = "delivered"  # sent already: never again
    PARKED = "parked"  # failed for good: only an explicit redeliver sends it again
    IN_FLIGHT = "in_flight"  # another sender holds a live claim: it sends (or its claim expires)
    UNKNOWN = "unknown"  # no such notification in the outbox


@dataclass(frozen=True)
class Entry:
    """What the store holds for one notification id."""

    exists: bool
    status: DeliveryStatus | None = None  # None: committed, not delivered nor parked yet
    claimer: str | None = None
    claimed_until: datetime | None = None


@dataclass(frozen=True)
class ClaimRequest:
    """Who wants to send, when, for how long, and whether parked notifications are wanted."""

    claimer: str
    now: datetime
    lease: timedelta
    retry_parked: bool = False
    # True for a claimer known to be dead (a local process that exited): its claim is taken over
    # at once instead of at lease expiry.
    orphaned: Callable[[str], bool] = lambda _claimer: False

    @property
    def until(self) -> datetime:
        return self.now + self.lease


@dataclass(frozen=True)
class Claim:
    """The store's answer: the verdict, and with SEND the notification body to send (read from the
    store, so callers pass ids, never bodies); otherwise the record that explains why not."""

    verdict: Verdict
    notification: Notification | None = None
    record: DeliveryRecord | None = None
    holder: str | None = None  # IN_FLIGHT: who holds the claim

    @property
    def granted(self) -> bool:
        return self.verdict is Verdict.SEND


def decide(entry: Entry, request: ClaimRequest) -> Verdict:
    """May `request.claimer` claim this entry now? A delivered entry never; a live claim blocks
    every sender, its holder's other threads too, until it expires or its holder is known to be
    gone; a parked entry only when the caller asks for parked ones (an operator's redeliver)."""
    if not entry.exists:
        return Verdict.UNKNOWN
    if entry.status is DeliveryStatus.DELIVERED:
        return Verdict.DELIVERED
    if (
        entry.claimer is not None
        and entry.claimed_until is not None
        and entry.claimed_until > request.now
        and not request.orphaned(entry.claimer or "")
    ):
        return Verdict.IN_FLIGHT
    if entry.status is DeliveryStatus.FAILED and not request.retry_parked:
        return Verdict.PARKED
    return Verdict.SEND


def may_record(previous: DeliveryStatus | None, new: DeliveryStatus) -> bool:
    """Whether a delivery outcome may be written over the stored one: DELIVERED is final."""
    return previous is not DeliveryStatus.DELIVERED or new is DeliveryStatus.DELIVERED
