"""The AWS state store: one DynamoDB table through PynamoDB (single-table design, docs/dynamodb.md).

Every item has string keys `pk`/`sk`; what else it carries depends on its type (see `_Item`). Models
are stored whole as zlib-compressed JSON in the binary `body` attribute, next to the few attributes
that keys, conditions and filters need. Times in sort keys are fixed-width ISO-8601 UTC strings with
microseconds, so string order is time order.

Commits of one source are serialised by a per-source lock item with a lease (the SQLite store's
BEGIN IMMEDIATE, for one source). Holding it, a commit reads the run, the state versions and the
insert-once items with consistent reads (a conflict or a committed run stops it here, having written
nothing), puts its points in BatchWriteItem requests (idempotent by key, at half the price of
transactional writes), then writes the rest in one TransactWriteItems that re-checks every state
version and releases the lock. Above the transaction limits (100 items, 4 MB) the rest is split into
several transactions, the last one holding the run item; see docs/dynamodb.md.
"""

from __future__ import annotations

import functools
import json
import operator
import os
import secrets
import time
import zlib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, TypeVar

from botocore.client import BaseClient
from pydantic import BaseModel
from pynamodb.attributes import BinaryAttribute, NumberAttribute, TTLAttribute, UnicodeAttribute
from pynamodb.exceptions import DeleteError, DoesNotExist, PutError, TransactWriteError
from pynamodb.expressions.condition import Condition
from pynamodb.models import Model
from pynamodb.transactions import TransactWrite

from driftguard.errors import ConfigError, DriftGuardError, StateConflict
from driftguard.model import (
    AlertState,
    CheckKey,
    DeliveryRecord,
    DeliveryStatus,
    MetricPoint,
    Notification,
    PointLabel,
    RunCommit,
    RunRecord,
    SchemaBaseline,
    Silence,
    Snapshot,
    Transition,
    utc,
)
from driftguard.store.base import Store

__all__ = ["SILENCE_GRACE", "DynamoStore", "ItemTooLarge"]

# DynamoDB limits: 100 items and 4 MB per TransactWriteItems, 400 KB per item. Bodies stay well
# under the item limit; a snapshot above it is split into parts.
_TRANSACTION_ITEMS = 100
_TRANSACTION_BYTES = 3_500_000
_BODY_BYTES = 350_000
_ITEM_OVERHEAD = 300  # keys and small attributes, for the transaction size estimate

SILENCE_GRACE = timedelta(days=7)  # an ended silence stays listable this long before TTL removes it
_LOCK_SK = "LOCK"
_NOTE_SK = "NOTE"

_Model = TypeVar("_Model", bound=BaseModel)


class ItemTooLarge(DriftGuardError):
    """A model does not fit one DynamoDB item (400 KB) even compressed."""


class _Item(Model):
    """One item of the table. Which attributes are set depends on the item type (docs/dynamodb.md).

    Not bound to a table: `DynamoStore` binds a subclass per instance (`_bind`).
    """

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)
    body = BinaryAttribute(null=True, legacy_encoding=False)  # zlib-compressed JSON of the model
    version = NumberAttribute(null=True)  # alert state: optimistic lock
    token = UnicodeAttribute(null=True)  # lock: who holds it
    lease_until = NumberAttribute(null=True)  # lock: epoch seconds after which others may take it
    value = UnicodeAttribute(null=True)  # point: repr(float), since DynamoDB numbers have no NaN/inf
    label = UnicodeAttribute(null=True)  # point: PointLabel, absent for NONE
    source = UnicodeAttribute(null=True)  # outbox entry: filter by source
    table_name = UnicodeAttribute(null=True, attr_name="table")  # transition: filter by table
    fingerprint = UnicodeAttribute(null=True)  # transition: filter by fingerprint
    parts = NumberAttribute(null=True)  # snapshot: how many parts its body was split into
    ref = UnicodeAttribute(null=True)  # notification: sort key of its outbox entry
    expires_at = TTLAttribute(null=True)


def _bind(table_name: str, region: str, host: str | None) -> type[_Item]:
    """A model class of its own per store, so stores of different tables share no connection."""
    meta = type("Meta", (), {"table_name": table_name, "region": region, "host": host})
    return type(f"_Item[{table_name}]", (_Item,), {"Meta": meta})


# --------------------------------------------------------------------------- encoding


def _at(at: datetime) -> str:
    """A sort-key time: fixed-width ISO-8601 UTC with microseconds, so string order is time order."""
    return utc(at).replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


def _through(at: datetime) -> str:
    """The smallest sort key above every `<_at(at)>#...` key: for "at or before `at`" conditions."""
    return _at(at) + "$"  # '$' follows '#'


def _compress(model: BaseModel) -> bytes:
    # json.dumps, not model_dump_json: the latter writes inf and NaN as null (see store.sqlite).
    text = json.dumps(model.model_dump(mode="json"), separators=(",", ":"))
    return zlib.compress(text.encode(), 6)


def _decompress(model: type[_Model], body: bytes | None) -> _Model:
    if body is None:
        raise ValueError(f"stored {model.__name__} item has no body")
    return model.model_validate_json(zlib.decompress(body))


def _fits(body: bytes, what: str) -> bytes:
    if len(body) > _BODY_BYTES:
        raise ItemTooLarge(
            f"{what} is {len(body):,} bytes compressed, above the {_BODY_BYTES:,} bytes a DynamoDB item "
            "can hold here: split it (fewer alerts per notification, fewer tables per source)"
        )
    return body


def _condition_failed(error: Exception) -> bool:
    return getattr(error, "cause_response_code", None) == "ConditionalCheckFailedException"


# --------------------------------------------------------------------------- writes


@dataclass(frozen=True)
class _Write:
    """One item operation of a transaction."""

    item: _Item
    action: Literal["check", "delete", "put"] = "put"
    condition: Condition | None = None
    # An insert-once put (condition: does not exist): if its condition fails, drop it and write the rest.
    optional: bool = False
    requires: tuple[str, str] | None = None  # dropped along with the insert-once write of this key
    conflict: str = ""  # what a failed condition means, for the StateConflict message

    @property
    def key(self) -> tuple[str, str]:
        return self.item.pk, self.item.sk

    @property
    def size(self) -> int:
        return len(self.item.body or b"") + _ITEM_OVERHEAD


# PynamoDB sends a transaction's items in this order; cancellation reasons follow it.
_ACTION_ORDER = {"check": 0, "delete": 1, "put": 2}


def _chunks(writes: Sequence[_Write], reserved: int) -> Iterator[list[_Write]]:
    """Consecutive groups within the transaction limits, leaving `reserved` items free in each."""
    chunk: list[_Write] = []
    size = 0
    for write in writes:
        if chunk and (len(chunk) + reserved >= _TRANSACTION_ITEMS or size + write.size > _TRANSACTION_BYTES):
            yield chunk
            chunk, size = [], 0
        chunk.append(write)
        size += write.size
    yield chunk


class DynamoStore(Store):
    def __init__(
        self,
        table_name: str,
        region: str | None = None,
        *,
        retention_days: int = 400,
        host: str | None = None,
        lock_lease_seconds: float = 60.0,
    ) -> None:
        """A store on the DynamoDB table `table_name` (create it with `create_table` or the CDK stack).

        `region` defaults to AWS_REGION, then AWS_DEFAULT_REGION; `host` is an endpoint URL (DynamoDB
        Local). History items expire `retention_days` after their time. `lock_lease_seconds` is how long
        a commit may hold its source's lock before another commit may take it over (a crashed writer).
        """
        region = region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
        if not region:
            raise ConfigError(
                f"no AWS region for DynamoDB table {table_name!r}: write dynamodb://{table_name}?region=REGION"
                " or set AWS_REGION"
            )
        self.table_name = table_name
        self.region = region
        self.retention = timedelta(days=retention_days)
        self.lock_lease = lock_lease_seconds
        self._model = _bind(table_name, region, host)
        # Transactions go through the model's own connection: one client per store.
        self._connection = self._model._get_connection().connection

    @property
    def client(self) -> BaseClient:
        """The botocore DynamoDB client every request of this store goes through (metrics, hooks)."""
        return self._connection.client

    def create_table(self) -> None:
        """Create the table (on-demand capacity, TTL on `expires_at`) if it does not exist, and wait."""
        self._model.create_table(wait=True, billing_mode="PAY_PER_REQUEST")

    # ------------------------------------------------------------------ plumbing
    def _item(self, pk: str, sk: str, **attributes: Any) -> _Item:
        return self._model(pk=pk, sk=sk, **attributes)

    def _expires(self, at: datetime) -> datetime:
        return utc(at) + self.retention

    def _get(self, pk: str, sk: str) -> _Item | None:
        try:
            return self._model.get(pk, sk, consistent_read=True)
        except DoesNotExist:
            return None

    def _query(
        self,
        pk: str,
        condition: Condition | None = None,
        *,
        newest_first: bool = False,
        limit: int | None = None,
        where: Condition | None = None,
        consistent: bool = False,
    ) -> list[_Item]:
        if limit is not None and limit <= 0:
            return []
        return list(
            self._model.query(
                pk,
                condition,
                filter_condition=where,
                scan_index_forward=not newest_first,
                limit=limit,
                # Limit applies before the filter: read full pages when filtering.
                page_size=None if where is None else 1000,
                consistent_read=consistent,
            )
        )

    def _scan(self, prefix: str) -> list[_Item]:
        """Operator listings across sources only: reads the whole table (docs/dynamodb.md)."""
        return list(self._model.scan(self._model.pk.startswith(prefix), consistent_read=True))

    def _put_all(self, items: Iterable[_Item]) -> None:
        """Idempotent puts in BatchWriteItem requests (25 items each, unprocessed items retried)."""
        with self._model.batch_write() as batch:
            for item in items:
                batch.save(item)

    def _transact(self, writes: Sequence[_Write]) -> None:
        """One TransactWriteItems. Insert-once puts that find their item dropped and the rest retried;
        any other failed condition raises StateConflict, with nothing written."""
        by_key = {w.key: w for w in writes}  # one operation per item: the last one wins
        pending = sorted(by_key.values(), key=lambda w: _ACTION_ORDER[w.action])
        while pending:
            try:
                # The request token makes botocore's own retries of this request idempotent.
                with TransactWrite(
                    connection=self._connection, client_request_token=secrets.token_hex(16)
                ) as transaction:
                    for write in pending:
                        if write.action == "check":
                            transaction.condition_check(self._model, *write.key, condition=write.condition)
                        elif write.action == "delete":
                            transaction.delete(write.item, write.condition)
                        else:
                            transaction.save(write.item, write.condition)
                return
            except TransactWriteError as error:
                if error.cause_response_code != "TransactionCanceledException":
                    raise
                reasons = error.cancellation_reasons
                failed = [
                    w
                    for w, r in zip(pending, reasons, strict=True)
                    if r and r.code == "ConditionalCheckFailed"
                ]
                if not failed:  # e.g. TransactionConflict: another transaction held one of the items
                    codes = sorted({r.code for r in reasons if r})
                    raise StateConflict(
                        f"DynamoDB cancelled the commit ({', '.join(codes)}); run it again"
                    ) from error
                if not all(w.optional for w in failed):
                    why = "; ".join(w.conflict for w in failed if not w.optional)
                    raise StateConflict(why) from error
                dropped = {w.key for w in failed}
                pending = [w for w in pending if w.key not in dropped and w.requires not in dropped]

    # ------------------------------------------------------------------ source lock
    def _lock(self, source: str) -> str:
        """Take the commit lock of `source`, waiting up to one lease for its holder; returns the token."""
        token = secrets.token_hex(16)
        deadline = time.monotonic() + self.lock_lease
        delay = 0.01
        while True:
            now = time.time()
            lock = self._item(
                f"LOCK#{source}",
                _LOCK_SK,
                token=token,
                lease_until=now + self.lock_lease,
                expires_at=datetime.fromtimestamp(now, UTC) + timedelta(days=1),
            )
            try:
                lock.save(condition=self._model.pk.does_not_exist() | (self._model.lease_until < now))
                return token
            except PutError as error:
                if not _condition_failed(error):
                    raise
            if time.monotonic() >= deadline:
                raise StateConflict(
                    f"another commit of source {source!r} has held its lock for over {self.lock_lease:g}s;"
                    " run the check again"
                )
            time.sleep(delay)
            delay = min(delay * 2, 0.25)

    def _unlock(self, source: str, token: str) -> None:
        try:
            self._item(f"LOCK#{source}", _LOCK_SK).delete(condition=self._model.token == token)
        except DeleteError as error:
            if not _condition_failed(error):  # taken over after our lease ran out: not ours to delete
                raise

    def _lock_write(self, source: str, token: str, action: Literal["check", "delete"]) -> _Write:
        return _Write(
            self._item(f"LOCK#{source}", _LOCK_SK),
            action,
            self._model.token == token,
            conflict=f"the commit lock of source {source!r} expired mid-commit; run the check again",
        )

    # ------------------------------------------------------------------ runs
    def commit_run(self, commit: RunCommit) -> bool:
        source = commit.run.source
        token = self._lock(source)
        locked = True
        try:
            plan = self._plan(commit)
            if plan is None:
                return False
            bulk, atomic = plan
            self._put_all(bulk)
            chunks = list(_chunks(atomic, reserved=1))
            for chunk in chunks[:-1]:
                self._transact([*chunk, self._lock_write(source, token, "check")])
            self._transact([*chunks[-1], self._lock_write(source, token, "delete")])
            locked = False
            return True
        finally:
            if locked:
                self._unlock(source, token)

    def _plan(self, commit: RunCommit) -> tuple[list[_Item], list[_Write]] | None:
        """Read what the commit depends on (under the source lock) and turn it into writes:
        idempotent bulk puts, then the items that must appear together. None if already committed."""
        run = commit.run
        run_key = (f"RUN#{run.source}", _at(run.scheduled_time))
        state_keys = [(f"STATE#{s.key.source}", s.fingerprint) for s in commit.states]
        # Transitions, notifications and learned baselines are written once: a later write of the same
        # key (a retry that decided differently) is dropped. Each group's first write is the marker.
        once = [[self._once(self._transition_item(t))] for t in commit.transitions]
        once += [self._outbox_writes(n) for n in commit.notifications]
        once += [[self._once(self._baseline_item(b))] for b in commit.schema_baselines]
        found = {
            (item.pk, item.sk): item
            for item in self._model.batch_get(
                {run_key, *state_keys, *(group[0].key for group in once)}, consistent_read=True
            )
        }
        if run_key in found:
            return None
        for state, key in zip(commit.states, state_keys, strict=True):
            stored = int(found[key].version or 0) if key in found else 0
            expected = commit.expected_versions.get(state.fingerprint, 0)
            if stored != expected:
                raise StateConflict(self._state_conflict(state, expected, f"is at version {stored}"))

        bulk = self._point_items(commit.points)
        atomic = [self._state_write(s, commit.expected_versions.get(s.fingerprint, 0)) for s in commit.states]
        atomic += [write for group in once if group[0].key not in found for write in group]
        if commit.snapshot is not None:
            main, *parts = self._snapshot_items(commit.snapshot)
            bulk += parts
            atomic.append(_Write(main))
        run_item = self._item(*run_key, body=_compress(run), expires_at=self._expires(run.scheduled_time))
        conflict = f"run of {run.source} at {run.scheduled_time} was committed meanwhile"
        atomic.append(_Write(run_item, "put", self._model.pk.does_not_exist(), conflict=conflict))
        return bulk, atomic

    def _once(self, item: _Item) -> _Write:
        return _Write(item, "put", self._model.pk.does_not_exist(), optional=True)

    @staticmethod
    def _state_conflict(state: AlertState, expected: int, stored: str) -> str:
        return (
            f"alert state of {state.key.label} ({state.fingerprint}) {stored} but the run read version "
            f"{expected}: another run changed it meanwhile; run the check again"
        )

    def _state_write(self, state: AlertState, expected: int) -> _Write:
        """Store `state` at version `expected + 1` if the stored version is still `expected`."""
        versioned = state.model_copy(update={"version": expected + 1})
        item = self._item(
            f"STATE#{state.key.source}",
            state.fingerprint,
            body=_fits(_compress(versioned), f"alert state of {state.key.label}"),
            version=expected + 1,
        )
        condition = self._model.pk.does_not_exist() if expected == 0 else self._model.version == expected
        return _Write(item, "put", condition, conflict=self._state_conflict(state, expected, "moved"))

    def _transition_item(self, transition: Transition) -> _Item:
        return self._item(
            f"TRANS#{transition.key.source}",
            f"{_at(transition.at)}#{transition.id}",
            body=_fits(_compress(transition), f"transition {transition.id}"),
            table_name=transition.key.table,
            fingerprint=transition.fingerprint,
            expires_at=self._expires(transition.at),
        )

    def _outbox_writes(self, note: Notification) -> list[_Write]:
        """The once-per-id marker (it also keeps the delivery record) and the pending outbox entry."""
        entry = f"{_at(note.created_at)}#{note.id}"
        expires = self._expires(note.created_at)
        marker = self._item(f"NOTE#{note.id}", _NOTE_SK, ref=entry, expires_at=expires)
        pending = self._item(
            "OUTBOX",
            entry,
            body=_fits(_compress(note), f"notification {note.id}"),
            source=note.source,
            expires_at=expires,
        )
        return [self._once(marker), _Write(pending, requires=(marker.pk, marker.sk))]

    def _baseline_item(self, baseline: SchemaBaseline) -> _Item:
        what = f"schema of {baseline.source}.{baseline.table}"
        return self._item(f"SCHEMA#{baseline.source}", baseline.table, body=_fits(_compress(baseline), what))

    def get_run(self, source: str, scheduled_time: datetime) -> RunRecord | None:
        item = self._get(f"RUN#{source}", _at(scheduled_time))
        return None if item is None else _decompress(RunRecord, item.body)

    def runs(self, source: str | None = None, *, limit: int = 50) -> list[RunRecord]:
        if source is not None:
            items = self._query(f"RUN#{source}", newest_first=True, limit=limit)
            return [_decompress(RunRecord, i.body) for i in items]
        everything = [_decompress(RunRecord, i.body) for i in self._scan("RUN#")]
        everything.sort(key=lambda r: (-r.scheduled_time.timestamp(), r.source))
        return everything[:limit]

    # ------------------------------------------------------------------ snapshots and series
    def _snapshot_items(self, snapshot: Snapshot) -> list[_Item]:
        """The snapshot item, then the parts its compressed body did not fit into (usually none)."""
        body = _compress(snapshot)
        pieces = [body[i : i + _BODY_BYTES] for i in range(0, len(body), _BODY_BYTES)]
        at, expires = _at(snapshot.scheduled_time), self._expires(snapshot.scheduled_time)
        main = self._item(
            f"SNAP#{snapshot.source}", at, body=pieces[0], parts=len(pieces), expires_at=expires
        )
        return [main] + [
            self._item(f"SNAPPART#{snapshot.source}", f"{at}#{n:05d}", body=piece, expires_at=expires)
            for n, piece in enumerate(pieces[1:], start=1)
        ]

    def snapshots(self, source: str, *, as_of: datetime | None = None, limit: int = 1) -> list[Snapshot]:
        upto = None if as_of is None else self._model.sk <= _at(as_of)
        found = []
        for item in self._query(f"SNAP#{source}", upto, newest_first=True, limit=limit):
            body = item.body or b""
            if (item.parts or 1) > 1:
                rest = self._query(f"SNAPPART#{source}", self._model.sk.startswith(f"{item.sk}#"))
                body += b"".join(part.body or b"" for part in rest)
            found.append(_decompress(Snapshot, body))
        return found

    def series(self, key: CheckKey, *, before: datetime, limit: int = 5000) -> list[MetricPoint]:
        items = self._query(
            f"SERIES#{key.fingerprint}", self._model.sk < _at(before), newest_first=True, limit=limit
        )
        return [
            MetricPoint(
                key=key,
                ts=datetime.fromisoformat(i.sk),
                value=float(i.value or "nan"),
                label=PointLabel(i.label or ""),
            )
            for i in reversed(items)
        ]

    def _point_items(self, points: Iterable[MetricPoint]) -> list[_Item]:
        # One put per (series, time): a batch may not hold two, and the last one is the one to keep.
        latest = {(p.key.fingerprint, _at(p.ts)): p for p in points}
        return [
            self._item(
                f"SERIES#{fingerprint}",
                at,
                value=repr(p.value),
                label=p.label.value or None,
                expires_at=self._expires(p.ts),
            )
            for (fingerprint, at), p in latest.items()
        ]

    def put_points(self, points: list[MetricPoint]) -> None:
        self._put_all(self._point_items(points))

    def label_points(self, key: CheckKey, start: datetime, end: datetime, label: PointLabel) -> int:
        items = self._query(
            f"SERIES#{key.fingerprint}", self._model.sk.between(_at(start), _at(end)), consistent=True
        )
        for item in items:
            item.label = label.value or None
        self._put_all(items)
        return len(items)

    # ------------------------------------------------------------------ alert state
    def alert_states(self, source: str | None = None) -> list[AlertState]:
        items = self._scan("STATE#") if source is None else self._query(f"STATE#{source}", consistent=True)
        states = [_decompress(AlertState, i.body) for i in items]
        return sorted(states, key=lambda s: (s.key.source, s.fingerprint))

    def transitions(
        self,
        source: str,
        *,
        table: str | None = None,
        fingerprint: str | None = None,
        as_of: datetime | None = None,
        limit: int = 100,
    ) -> list[Transition]:
        filters = [self._model.table_name == table] if table is not None else []
        if fingerprint is not None:
            filters.append(self._model.fingerprint == fingerprint)
        where = functools.reduce(operator.and_, filters) if filters else None
        upto = None if as_of is None else self._model.sk < _through(as_of)
        items = self._query(f"TRANS#{source}", upto, newest_first=True, limit=limit, where=where)
        return [_decompress(Transition, i.body) for i in items]

    # ------------------------------------------------------------------ schema baselines
    def schema_baselines(self, source: str) -> dict[str, SchemaBaseline]:
        items = self._query(f"SCHEMA#{source}", consistent=True)
        baselines = (_decompress(SchemaBaseline, i.body) for i in items)
        return {b.table: b for b in baselines}

    def put_schema_baseline(self, baseline: SchemaBaseline) -> None:
        self._baseline_item(baseline).save()

    # ------------------------------------------------------------------ silences
    def put_silence(self, silence: Silence) -> None:
        self._item(
            "SILENCE",
            silence.id,
            body=_fits(_compress(silence), f"silence {silence.id}"),
            expires_at=utc(silence.ends_at) + SILENCE_GRACE,
        ).save()

    def delete_silence(self, silence_id: str) -> bool:
        try:
            self._item("SILENCE", silence_id).delete(condition=self._model.pk.exists())
        except DeleteError as error:
            if _condition_failed(error):
                return False
            raise
        return True

    def silences(self, *, active_at: datetime | None = None) -> list[Silence]:
        found = [_decompress(Silence, i.body) for i in self._query("SILENCE", consistent=True)]
        if active_at is not None:
            found = [s for s in found if s.active(active_at)]
        return sorted(found, key=lambda s: (s.starts_at, s.id))

    # ------------------------------------------------------------------ notifications
    def pending_notifications(self, source: str | None = None) -> list[Notification]:
        where = None if source is None else self._model.source == source
        return [
            _decompress(Notification, i.body) for i in self._query("OUTBOX", where=where, consistent=True)
        ]

    def record_delivery(self, record: DeliveryRecord) -> None:
        marker = self._get(f"NOTE#{record.notification_id}", _NOTE_SK)
        entry = marker.ref if marker else None
        previous = _decompress(DeliveryRecord, marker.body) if marker and marker.body else None
        if record.status is DeliveryStatus.FAILED and record.notification is None:
            # A parked delivery must be replayable, so keep the message even if the caller did not.
            pending = self._get("OUTBOX", entry) if entry else None
            kept = previous.notification if previous else None
            if pending is not None:
                kept = _decompress(Notification, pending.body)
            record = record.model_copy(update={"notification": kept})
        body = _fits(_compress(record), f"delivery record of {record.notification_id}")
        expires = self._expires(record.at)
        # The outbox entry goes: the marker keeps the record, and a FAILED entry keeps the notification.
        marker = self._item(f"NOTE#{record.notification_id}", _NOTE_SK, body=body, expires_at=expires)
        writes = [_Write(marker)]
        if entry:
            writes.append(_Write(self._item("OUTBOX", entry), "delete"))
        if previous is not None and previous.status is DeliveryStatus.FAILED:
            writes.append(_Write(self._item("FAILED", self._failed_sk(previous)), "delete"))
        if record.status is DeliveryStatus.FAILED:
            writes.append(
                _Write(self._item("FAILED", self._failed_sk(record), body=body, expires_at=expires))
            )
        self._transact(writes)

    @staticmethod
    def _failed_sk(record: DeliveryRecord) -> str:
        return f"{_at(record.at)}#{record.notification_id}"

    def delivery(self, notification_id: str) -> DeliveryRecord | None:
        marker = self._get(f"NOTE#{notification_id}", _NOTE_SK)
        return _decompress(DeliveryRecord, marker.body) if marker and marker.body else None

    def failed_deliveries(self) -> list[DeliveryRecord]:
        return [_decompress(DeliveryRecord, i.body) for i in self._query("FAILED", consistent=True)]
