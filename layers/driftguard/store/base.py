"""The Store port: everything DriftGuard remembers. Implemented by store.sqlite (local, the
embedded default) and store.dynamodb (AWS); both pass tests/contract/store_contract.py.

Guarantees every implementation gives:
- `commit_run` is atomic as seen by readers and idempotent: a second commit for the same
  (source, scheduled_time) writes nothing and returns False.
- alert states are optimistically locked: `commit_run` raises StateConflict when a state's stored
  version differs from `RunCommit.expected_versions[fingerprint]` (0 = must not exist yet).
- history reads are "as of": nothing stored after `before`/`as_of` is returned.
- a notification is claimed before it is sent (`claim_delivery`, a conditional write judged by
  driftguard.ledger): of any number of overlapping claims one wins, and a delivered one is never
  claimed again.
- notices of routes that group (`RunCommit.grouped`) wait in the store, not in the outbox, until a
  flush seals a due group (`seal_group`): its merged message joins the outbox and the notices it
  merged leave the waiting list at once, on condition that the group did not move since it was read,
  so of two flushers that read one group one seals it.
- the fits a run commits (`RunCommit.fits`) are written with it, replacing each series' earlier fit,
  and come back with the source (`SourceContext.fits`); a fit never fails a commit: one that cannot
  be stored (not JSON, or beyond a store's item limit) is left out with a warning, and the series
  is simply fitted again.
All datetimes in and out are aware UTC.
"""

from __future__ import annotations

import bisect
import json
import logging
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from driftguard.ledger import Claim, ClaimRequest
from driftguard.model import (
    AlertState,
    CheckKey,
    DeliveryRecord,
    GroupedNotice,
    MetricPoint,
    Notification,
    PointLabel,
    RunCommit,
    RunRecord,
    SchemaBaseline,
    Silence,
    Snapshot,
    Transition,
    stored_point,
    utc,
)

logger = logging.getLogger(__name__)


def fit_text(fingerprint: str, fit: dict[str, Any]) -> str | None:
    """A fit as the JSON text a store keeps (inf and NaN survive, as in the stores' other bodies), or
    None, with a warning, if it is not JSON: the run is committed without it and fits the series again."""
    try:
        return json.dumps(fit, separators=(",", ":"))
    except (TypeError, ValueError) as error:
        logger.warning("fit of series %s left out of the commit: not JSON (%s)", fingerprint, error)
        return None


def fit_of(text: str | bytes) -> dict[str, Any] | None:
    """A stored fit back from its JSON, or None, with a warning, for one that cannot be read (the
    series is then fitted again: a damaged fit never fails a load)."""
    try:
        fit = json.loads(text)
    except ValueError as error:
        logger.warning("a stored fit cannot be read and is ignored: %s", error)
        return None
    return fit if isinstance(fit, dict) else None


@dataclass(frozen=True)
class SeriesTail:
    """The newest points of one series, oldest first, as (ts, value, label): an aware UTC time, a
    float and a PointLabel, as a store read them back (they are not validated again).

    `complete` says these are all of the series' points; otherwise older ones exist that the tail
    no longer holds, and a window reaching past its start must be read with `Store.series`.
    """

    points: list[tuple[datetime, float, PointLabel]]
    complete: bool

    def window(self, key: CheckKey, before: datetime, limit: int) -> list[MetricPoint] | None:
        """What `Store.series(key, before=before, limit=limit)` returns, or None if the tail cannot tell."""
        if limit <= 0:
            return []
        end = bisect.bisect_left(self.points, utc(before), key=lambda p: p[0])
        if end < limit and not self.complete:
            return None
        return [stored_point(key, t, v, lab) for t, v, lab in self.points[max(0, end - limit) : end]]


@dataclass(frozen=True)
class SourceContext:
    """Everything a check of one source reads before it decides, as of one moment (`Store.load_source`)."""

    source: str
    states: dict[str, AlertState]  # by fingerprint
    baselines: dict[str, SchemaBaseline]  # by table
    tails: dict[str, SeriesTail] = field(default_factory=dict)  # by fingerprint; may hold none
    # The version of the source's partition this was read at, for `RunCommit.context_version`;
    # None: the store does not version partitions (its commits check the alert states only).
    version: int | None = None
    # The store loads series tails with the source (`tails` then holds every series it has): a
    # caller that must not pay a remote read may take a missing tail as "no points".
    loads_tails: bool = False
    # The latest fit committed for each series of the source (`RunCommit.fits`), by fingerprint, as
    # JSON: detection reads it (`Fitted.from_json`) and fits again where it is missing or unreadable.
    fits: dict[str, dict[str, Any]] = field(default_factory=dict)

    def series(self, key: CheckKey, *, before: datetime, limit: int) -> list[MetricPoint] | None:
        """The series window from the loaded tails, or None: then ask `Store.series`."""
        tail = self.tails.get(key.fingerprint)
        return None if tail is None else tail.window(key, before, limit)

    def series_values(self, key: CheckKey, *, before: datetime, limit: int) -> list[float] | None:
        """`series` as a column of values, or None: then ask `Store.series_values`."""
        window = self.series(key, before=before, limit=limit)
        return None if window is None else [p.value for p in window]


@dataclass(frozen=True)
class PendingDelivery:
    """An outbox entry not delivered yet; `claimer` and `claimed_until` when a sender holds it."""

    notification: Notification
    claimer: str | None = None
    claimed_until: datetime | None = None


@dataclass(frozen=True)
class DeliveryBacklog:
    """Everything not delivered, oldest first: waiting in the outbox, and parked after failing."""

    pending: list[PendingDelivery]
    parked: list[DeliveryRecord]


@dataclass(frozen=True)
class PendingGroup:
    """A group with notices waiting (`Store.pending_groups`), as read: `version` counts its seals
    (0: never sealed), and `seal_group` holds only while it is unchanged."""

    key: str
    parts: list[GroupedNotice]  # oldest first
    last_notified: datetime | None = None  # the window of its last merged message
    version: int = 0


class Store(ABC):
    # ------------------------------------------------------------------ one check's reads
    def load_source(self, source: str) -> SourceContext:
        """The alert states and schema baselines of `source`, and whatever recent series points the
        store can hand over in the same read (none here: the default composes the single-purpose reads;
        store.dynamodb answers everything with one Query, or from its memory of the partition as it
        last read or wrote it: a versioned context may be old, and `commit_run` then refuses a run
        judged on it, so the run is judged again on a fresh load)."""
        return SourceContext(
            source,
            states={s.fingerprint: s for s in self.alert_states(source)},
            baselines=self.schema_baselines(source),
            fits=self.fits(source),
        )

    def fits(self, source: str) -> dict[str, dict[str, Any]]:
        """The latest committed fit of each series of `source`, by fingerprint (none here: a store
        that keeps no fits still works, detection then fits every series in full)."""
        return {}

    # ------------------------------------------------------------------ runs
    @abstractmethod
    def commit_run(self, commit: RunCommit) -> bool:
        """Write a run's snapshot, points, states, transitions, outbox and run record at once.
        Returns False, writing nothing, if (source, scheduled_time) was already committed.
        Raises StateConflict, writing nothing, if `commit.context_version` is set and the source's
        partition has moved since that version (the caller loads the source again and re-judges).
        The store, not the caller, bumps versions: each state is stored at `expected + 1`.
        Transitions and notifications already stored under their id are kept as they are;
        schema baselines are written only where (source, table) has none yet; each fit replaces
        the series' earlier one (a fit that cannot be stored is left out, never failing the run)."""

    @abstractmethod
    def get_run(self, source: str, scheduled_time: datetime) -> RunRecord | None: ...

    @abstractmethod
    def runs(self, source: str | None = None, *, limit: int = 50) -> list[RunRecord]:
        """Newest first."""

    # ------------------------------------------------------------------ snapshots and series
    @abstractmethod
    def snapshots(self, source: str, *, as_of: datetime | None = None, limit: int = 1) -> list[Snapshot]:
        """Snapshots with scheduled_time <= as_of (default: all), newest first."""

    @abstractmethod
    def series(self, key: CheckKey, *, before: datetime, limit: int = 5000) -> list[MetricPoint]:
        """The latest `limit` points of a series with ts < before, oldest first."""

    def series_values(self, key: CheckKey, *, before: datetime, limit: int = 5000) -> list[float]:
        """The values of `series(key, before=before, limit=limit)`, oldest first: history as a
        column. A store that can read values without building points says so by overriding this."""
        return [p.value for p in self.series(key, before=before, limit=limit)]

    @abstractmethod
    def put_points(self, points: list[MetricPoint]) -> None:
        """Insert or replace points (backfill from the table itself). Same (key, ts) overwrites."""

    @abstractmethod
    def label_points(self, key: CheckKey, start: datetime, end: datetime, label: PointLabel) -> int:
        """Mark points in [start, end] (e.g. incident, maintenance) so training leaves them out.
        Returns how many points were labelled."""

    # ------------------------------------------------------------------ alert state
    @abstractmethod
    def alert_states(self, source: str | None = None) -> list[AlertState]: ...

    @abstractmethod
    def transitions(
        self,
        source: str,
        *,
        table: str | None = None,
        fingerprint: str | None = None,
        as_of: datetime | None = None,
        limit: int = 100,
    ) -> list[Transition]:
        """Audit trail, newest first."""

    # ------------------------------------------------------------------ schema baselines
    @abstractmethod
    def schema_baselines(self, source: str) -> dict[str, SchemaBaseline]:
        """The accepted schema of every table of a source that has one, by table name (one read)."""

    @abstractmethod
    def put_schema_baseline(self, baseline: SchemaBaseline) -> None:
        """An operator accepts a new schema (replaces the baseline)."""

    # ------------------------------------------------------------------ silences
    @abstractmethod
    def put_silence(self, silence: Silence) -> None:
        """Create or replace (extend) a silence by id."""

    @abstractmethod
    def delete_silence(self, silence_id: str) -> bool: ...

    @abstractmethod
    def silences(self, *, active_at: datetime | None = None) -> list[Silence]:
        """All silences, or only those active at `active_at`."""

    # ------------------------------------------------------------------ notifications
    @abstractmethod
    def pending_notifications(self, source: str | None = None) -> list[Notification]:
        """Outbox entries not yet delivered or parked, oldest first."""

    @abstractmethod
    def record_delivery(self, record: DeliveryRecord) -> None:
        """Mark an outbox entry delivered, or park it as failed (kept with its notification); drops
        its claim. A DELIVERED record is final: a FAILED one never replaces it (`ledger.may_record`)."""

    @abstractmethod
    def claim_delivery(self, notification_id: str, request: ClaimRequest) -> Claim:
        """Claim an outbox entry for sending: read its ledger entry, let `ledger.decide` judge, and
        store the claim (`request.claimer` until `request.until`) with a write that holds only if
        the entry did not change since the read, so of two overlapping claims one wins. With SEND
        the claim carries the notification read from the store (callers pass ids, not bodies)."""

    @abstractmethod
    def release_delivery(self, notification_id: str, claimer: str) -> None:
        """Drop `claimer`'s claim if it still holds it (its send failed and will be retried)."""

    @abstractmethod
    def delivery_backlog(self) -> DeliveryBacklog:
        """What is not delivered: outbox entries waiting (with their claims) and parked failures."""

    @abstractmethod
    def delivery(self, notification_id: str) -> DeliveryRecord | None: ...

    @abstractmethod
    def failed_deliveries(self) -> list[DeliveryRecord]: ...

    # ------------------------------------------------------------------ grouped notices
    # The most waiting notices one seal may merge (a store's transaction limit); the rest wait for
    # the group's next message.
    max_sealed_parts: int = 10_000

    @abstractmethod
    def pending_groups(self) -> list[PendingGroup]:
        """Every group with notices waiting, by key, each with its notices oldest first."""

    @abstractmethod
    def seal_group(self, group: PendingGroup, merged: Notification) -> bool:
        """Put `merged` (the group's message for a window) in the outbox, drop the group's waiting
        notices that `group` lists and record `merged.run_time` as the group's last message, all at
        once, if the group is still at `group.version` and `merged.id` is not in the outbox yet.
        False, writing nothing, otherwise (another flusher sealed it: read the groups again)."""

    # ------------------------------------------------------------------ the watchdog's registry
    @abstractmethod
    def watched_since(self, sources: Sequence[str], at: datetime) -> dict[str, datetime]:
        """When the watchdog began watching each of `sources`: `at` for a source it is asked about
        for the first time (written so that of two concurrent first writes one stands), else the
        time stored then. It lets the watchdog count the periods of a source that never ran."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections."""
