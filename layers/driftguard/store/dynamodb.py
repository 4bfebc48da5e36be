"""The AWS state store: one DynamoDB table through PynamoDB (single-table design, docs/dynamodb.md).

Every item has string keys `pk`/`sk`; what else it carries depends on its type (see `_Item`). Models
are stored whole as zlib-compressed JSON in the binary `body` attribute, next to the few attributes
that keys, conditions and filters need. Times in sort keys are fixed-width ISO-8601 UTC strings with
microseconds, so string order is time order.

What a check reads lives in one partition per source (`SRC#<source>`): a head item (the partition's
version, and each series' newest points), the alert states, the schema baselines, each series'
latest fit (`RunCommit.fits`) and the recent segments of every series (up to 512 points an item;
every segment is also in the series' history partition). `load_source` is one Query of it. A
commit is one TransactWriteItems that moves the head's version on condition that it is still the
version last read, so the series and states it rewrites from that read cannot have moved; if
anything moved (or the run was committed), the transaction writes nothing and the commit re-reads
and tries again or gives up, as the port says.
Above the transaction limits (100 items, 4 MB) the writes are split into several transactions,
each moving the head and the last holding the run item; see docs/dynamodb.md.
"""

from __future__ import annotations

import bisect
import functools
import json
import logging
import operator
import os
import secrets
import threading
import zlib
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, TypeVar

from botocore.client import BaseClient
from pydantic import BaseModel
from pynamodb.attributes import BinaryAttribute, NumberAttribute, TTLAttribute, UnicodeAttribute
from pynamodb.exceptions import DeleteError, DoesNotExist, PutError, TransactWriteError, UpdateError
from pynamodb.expressions.condition import Condition
from pynamodb.models import Model
from pynamodb.transactions import TransactWrite

from driftguard import ledger
from driftguard.errors import ConfigError, DriftGuardError, StateConflict
from driftguard.model import (
    AlertState,
    CheckKey,
    DeliveryRecord,
    DeliveryStatus,
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
from driftguard.store.base import (
    DeliveryBacklog,
    PendingDelivery,
    PendingGroup,
    SeriesTail,
    SourceContext,
    Store,
    fit_of,
    fit_text,
)

__all__ = ["LAYOUT", "SILENCE_GRACE", "DynamoStore", "ItemTooLarge"]

# The version of the item layout, kept on every source's head item. 2: per-source partitions with
# series tails and a versioned head (1, with a LOCK item per source, was never deployed).
LAYOUT = 2

# DynamoDB limits: 100 items and 4 MB per TransactWriteItems, 400 KB per item. Bodies stay well
# under the item limit; a snapshot above it is split into parts.
_TRANSACTION_ITEMS = 100
_TRANSACTION_BYTES = 3_500_000
_BODY_BYTES = 350_000
_ITEM_OVERHEAD = 300  # keys and small attributes, for the transaction size estimate

SILENCE_GRACE = timedelta(days=7)  # an ended silence stays listable this long before TTL removes it
_NOTE_SK = "NOTE"
_GROUPED = "GROUPED"  # notices waiting for their group, sort key <group>#<id>
_GROUP = "GROUP"  # each group's last message and version, sort key <group>
# A seal is one transaction: the merged message (2 items), the group, and this many notices at most.
_SEALED_PARTS = _TRANSACTION_ITEMS - 3
_HEAD_SK = "HEAD"
_STATE = "STATE#"
_SCHEMA = "SCHEMA#"
_TAIL = "TAIL#"
_FIT = "FIT#"  # a series' latest fit (RunCommit.fits), sort key FIT#<fingerprint>
# A series is stored in segments: items of up to this many consecutive points (under 30 KB even
# uncompressed), each in the series' history partition and, while among its newest TAIL_POINTS, in
# its source's partition too. Its newest points, up to _OPEN_POINTS, wait in the source's head item
# instead, so a steady commit rewrites the head (a few bytes a series) and no segment; the open
# points are sealed into the last segment when they reach _OPEN_POINTS (one rewrite in 32 runs).
_SEGMENT_POINTS = 512
_OPEN_POINTS = 32
_HEAD_BYTES = 100_000  # above this, compressed, a commit seals every series' open points
# How many points a tail keeps (at least; whole items are dropped): what detection asks for with the
# default 56-day window at 15-minute runs (5,377 points); a longer ask reads the series' history.
TAIL_POINTS = 6000
_COMMIT_ATTEMPTS = 5
_LEDGER_ATTEMPTS = 10  # claims or marks of one notification that lost a race, read again and retried
_REMEMBERED_SOURCES = 16  # partitions a store remembers (beyond them: one more Query per check)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)

_Model = TypeVar("_Model", bound=BaseModel)

logger = logging.getLogger(__name__)


class ItemTooLarge(DriftGuardError):
    """A model does not fit one DynamoDB item (400 KB) even compressed."""


class _Item(Model):
    """One item of the table. Which attributes are set depends on the item type (docs/dynamodb.md).

    Not bound to a table: `DynamoStore` binds a subclass per instance (`_bind`).
    """

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)
    body = BinaryAttribute(null=True, legacy_encoding=False)  # zlib-compressed JSON of the model
    version = NumberAttribute(null=True)  # alert state, source head, notification: optimistic lock
    layout = NumberAttribute(null=True)  # source head: LAYOUT
    source = UnicodeAttribute(null=True)  # outbox entry: filter by source
    table_name = UnicodeAttribute(null=True, attr_name="table")  # transition: filter by table
    fingerprint = UnicodeAttribute(null=True)  # transition: filter by fingerprint
    parts = NumberAttribute(null=True)  # snapshot: how many parts its body was split into
    ref = UnicodeAttribute(null=True)  # notification: sort key of its outbox entry
    claimer = UnicodeAttribute(null=True)  # notification: who holds the delivery claim
    claimed_until = NumberAttribute(null=True)  # notification: the claim's expiry, epoch microseconds
    last_notified = NumberAttribute(null=True)  # group: the window of its last message, epoch microseconds
    since = UnicodeAttribute(null=True)  # watched source: when the watchdog began watching it
    expires_at = TTLAttribute(null=True)


def _bind(table_name: str, region: str, host: str | None) -> type[_Item]:
    """A model class of its own per store, so stores of different tables share no connection."""
    meta = type("Meta", (), {"table_name": table_name, "region": region, "host": host})
    return type(f"_Item[{table_name}]", (_Item,), {"Meta": meta})


# --------------------------------------------------------------------------- encoding


def _at(at: datetime) -> str:
    """A sort-key time: fixed-width ISO-8601 UTC with microseconds, so string order is time order."""
    return utc(at).replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


def _parse_at(key: str) -> datetime:
    """Back from `_at`."""
    return datetime.fromisoformat(key.removesuffix("Z")).replace(tzinfo=UTC)


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


def _read_fit(body: bytes | None) -> dict[str, Any] | None:
    """A stored fit, or None for one that cannot be read (the series is then fitted again)."""
    try:
        text = zlib.decompress(body or b"")
    except zlib.error as error:
        logger.warning("a stored fit cannot be read and is ignored: %s", error)
        return None
    return fit_of(text)


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


# --------------------------------------------------------------------------- series segments

_Point = tuple[int, float, str]  # (epoch microseconds, value, label)
_Updates = Mapping[int, tuple[float, str]]  # new or replaced points of one series, by time


def _micros(at: datetime) -> int:
    return (utc(at) - _EPOCH) // _MICROSECOND


def _from_micros(micros: int) -> datetime:
    return _EPOCH + micros * _MICROSECOND


def _packed(points: Sequence[_Point]) -> dict[str, Any]:
    """Points as JSON: times as deltas (regular runs compress to almost nothing), values written by
    json.dumps (exact, and inf/NaN survive), labels only where set."""
    times = [t for t, _, _ in points]
    return {
        "t": [b - a for a, b in zip([0, *times], times, strict=False)],
        "v": [v for _, v, _ in points],
        "l": {str(i): label for i, (_, _, label) in enumerate(points) if label},
    }


def _unpacked(packed: Mapping[str, Any]) -> tuple[_Point, ...]:
    labels: Mapping[str, str] = packed["l"]
    times, at = [], 0
    for delta in packed["t"]:
        at += delta
        times.append(at)
    values = packed["v"]
    return tuple(
        (t, float(v), labels.get(str(i), "")) for i, (t, v) in enumerate(zip(times, values, strict=True))
    )


def _pack(points: Sequence[_Point]) -> bytes:
    return zlib.compress(json.dumps(_packed(points), separators=(",", ":")).encode(), 6)


def _unpack(body: bytes | None) -> tuple[_Point, ...]:
    return _unpacked(json.loads(zlib.decompress(body or b"")))


def _updates(points: Iterable[MetricPoint]) -> dict[str, dict[int, tuple[float, str]]]:
    """Points by series and time (a later point at the same time replaces an earlier one)."""
    updates: dict[str, dict[int, tuple[float, str]]] = {}
    for p in points:
        updates.setdefault(p.key.fingerprint, {})[_micros(p.ts)] = (p.value, p.label.value)
    return updates


@dataclass(frozen=True)
class _Segment:
    """Consecutive points of one series; `start` (its first point when created) keys it for good."""

    start: int
    points: tuple[_Point, ...]


def _merge(segments: Sequence[_Segment], updates: _Updates) -> list[_Segment]:
    """Segments holding their points and `updates`, keeping the existing boundaries so that a new
    point rewrites one segment: a point goes to the last segment starting at or before it (points
    older than all start a new first segment, so no point is older than its segment's key); a segment
    above _SEGMENT_POINTS is split, each new part keyed by its first point."""
    if not updates:
        return list(segments)
    bounds = [s.start for s in segments]
    merged = [{t: (v, lab) for t, v, lab in s.points} for s in segments]
    if not bounds or min(updates) < bounds[0]:
        bounds.insert(0, min(updates))
        merged.insert(0, {})
    for at, point in updates.items():
        merged[bisect.bisect_right(bounds, at) - 1][at] = point
    out: list[_Segment] = []
    for start, points in zip(bounds, merged, strict=True):
        ordered = [(t, v, lab) for t, (v, lab) in sorted(points.items())]
        for n in range(0, len(ordered), _SEGMENT_POINTS):
            part = tuple(ordered[n : n + _SEGMENT_POINTS])
            out.append(_Segment(start if n == 0 else part[0][0], part))
    return out


@dataclass(frozen=True)
class _Tail:
    """What a source's partition holds of one series: the newest sealed segments (older ones, if
    `trimmed`, only in the history partition) and the open points, all newer than any sealed one."""

    sealed: tuple[_Segment, ...] = ()
    open: tuple[_Point, ...] = ()
    trimmed: bool = False

    def points(self) -> list[tuple[datetime, float, PointLabel]]:
        everything = [p for s in self.sealed for p in s.points] + list(self.open)
        return [(_from_micros(t), v, PointLabel(label)) for t, v, label in everything]


@dataclass(frozen=True)
class _Partition:
    """A source's partition as last read or written: what a commit builds on, and checks is current
    by the head's version."""

    source: str
    version: int = 0  # of the head item; 0: there is none yet
    states: Mapping[str, AlertState] = field(default_factory=dict)  # by fingerprint, with versions
    baselines: Mapping[str, SchemaBaseline] = field(default_factory=dict)  # by table
    tails: Mapping[str, _Tail] = field(default_factory=dict)  # by fingerprint
    # by fingerprint, as a read decodes them; shared with every context handed out: never changed
    fits: Mapping[str, dict[str, Any]] = field(default_factory=dict)

    def context(self) -> SourceContext:
        tails = {fp: SeriesTail(t.points(), complete=not t.trimmed) for fp, t in self.tails.items()}
        return SourceContext(
            self.source,
            dict(self.states),
            dict(self.baselines),
            tails,
            self.version,
            loads_tails=True,
            fits=dict(self.fits),
        )

    def head_body(self) -> bytes:
        """The head's body: each series' open points and whether its tail was trimmed."""
        tails = {fp: {"open": _packed(t.open), "trimmed": t.trimmed} for fp, t in sorted(self.tails.items())}
        return zlib.compress(json.dumps(tails, separators=(",", ":")).encode(), 6)


@dataclass(frozen=True)
class _Memory:
    """What a store remembers of one source's partition."""

    partition: _Partition
    written: bool  # as this store's own write left it, not as read
    # A read found the partition as this store had written it (nobody else wrote in between), and
    # no commit on memory was refused since: `load_source` answers from memory.
    sole_writer: bool = False


@dataclass
class _CommitPlan:
    """A commit's writes in transactions, each moving the head, and the partition they leave."""

    writes_in_transactions: list[list[_Write]]
    after: _Partition
    once: list[tuple[str, str]]  # keys of the insert-once markers: looked up when a retry is needed


class _Cancelled(StateConflict):
    """DynamoDB cancelled a transaction for a reason other than an insert-once item that exists."""


class DynamoStore(Store):
    def __init__(
        self,
        table_name: str,
        region: str | None = None,
        *,
        retention_days: int = 400,
        host: str | None = None,
        tail_points: int = TAIL_POINTS,
    ) -> None:
        """A store on the DynamoDB table `table_name` (create it with `create_table` or the CDK stack).

        `region` defaults to AWS_REGION, then AWS_DEFAULT_REGION; `host` is an endpoint URL (DynamoDB
        Local). History items expire `retention_days` after their time. Each series keeps at least its
        newest `tail_points` points in its source's partition, where `load_source` reads them.
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
        self.tail_points = tail_points
        self._model = _bind(table_name, region, host)
        # Transactions go through the model's own connection: one client per store.
        self._connection = self._model._get_connection().connection
        # Each source's partition as this store last read or wrote it: a commit builds on it without
        # reading again, and its transaction's condition on the head version proves it still current.
        # The most recent few only: a Lambda container checks thousands of sources in its life.
        self._partitions: OrderedDict[str, _Memory] = OrderedDict()
        self._partitions_lock = threading.Lock()

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

    def _scan(self, prefix: str, where: Condition | None = None) -> list[_Item]:
        """Operator listings across sources only: reads the whole table (docs/dynamodb.md)."""
        condition = self._model.pk.startswith(prefix)
        if where is not None:
            condition &= where
        return list(self._model.scan(condition, consistent_read=True))

    def _transact(self, writes: Sequence[_Write]) -> None:
        """One TransactWriteItems. Insert-once puts that find their item dropped and the rest retried;
        any other failed condition (or a cancellation for another reason) raises _Cancelled, with
        nothing written."""
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
                    raise _Cancelled(
                        f"DynamoDB cancelled the commit ({', '.join(codes)}); run it again"
                    ) from error
                if not all(w.optional for w in failed):
                    raise _Cancelled("; ".join(w.conflict for w in failed if not w.optional)) from error
                dropped = {w.key for w in failed}
                pending = [w for w in pending if w.key not in dropped and w.requires not in dropped]

    # ------------------------------------------------------------------ the source partition
    @staticmethod
    def _source_pk(source: str) -> str:
        return f"SRC#{source}"

    def _read_partition(self, source: str) -> _Partition:
        """One consistent Query of the source's partition (PynamoDB follows pages above 1 MB)."""
        version = 0
        states: dict[str, AlertState] = {}
        baselines: dict[str, SchemaBaseline] = {}
        heads: dict[str, Any] = {}
        sealed: dict[str, list[_Segment]] = {}
        fits: dict[str, dict[str, Any]] = {}
        for item in self._query(self._source_pk(source), consistent=True):
            if item.sk == _HEAD_SK:
                if item.layout != LAYOUT:
                    raise ConfigError(
                        f"DynamoDB table {self.table_name!r} holds source {source!r} in item layout "
                        f"{item.layout}, but this DriftGuard reads layout {LAYOUT}: use a new table"
                    )
                version = int(item.version or 0)
                heads = json.loads(zlib.decompress(item.body or b""))
            elif item.sk.startswith(_STATE):
                # The attribute, which transactions' conditions test, is the version of record.
                state = _decompress(AlertState, item.body).model_copy(
                    update={"version": int(item.version or 0)}
                )
                states[state.fingerprint] = state
            elif item.sk.startswith(_SCHEMA):
                schema = _decompress(SchemaBaseline, item.body)
                baselines[schema.table] = schema
            elif item.sk.startswith(_TAIL):
                _, fingerprint, start = item.sk.split("#")
                segment = _Segment(_micros(datetime.fromisoformat(start)), _unpack(item.body))
                sealed.setdefault(fingerprint, []).append(segment)
            elif item.sk.startswith(_FIT):
                fit = _read_fit(item.body)
                if fit is not None:
                    fits[item.sk.removeprefix(_FIT)] = fit
        tails = {
            fp: _Tail(
                tuple(sealed.get(fp, ())),
                _unpacked(heads[fp]["open"]) if fp in heads else (),
                bool(heads.get(fp, {}).get("trimmed")),
            )
            for fp in {*heads, *sealed}
        }
        partition = _Partition(source, version, states, baselines, tails, fits)
        self._remember(partition)
        return partition

    def _remember(self, partition: _Partition, *, written: bool = False) -> None:
        """Keep `partition` as read (`written` False) or as this store's own write left it; whether
        this store is the source's only writer is kept as it was."""
        with self._partitions_lock:
            previous = self._partitions.get(partition.source)
            sole = previous is not None and previous.sole_writer
            self._partitions[partition.source] = _Memory(partition, written, sole)
            self._partitions.move_to_end(partition.source)
            while len(self._partitions) > _REMEMBERED_SOURCES:
                self._partitions.popitem(last=False)

    def _remembered(self, source: str) -> _Partition | None:
        with self._partitions_lock:
            memory = self._partitions.get(source)
        return None if memory is None else memory.partition

    def _forget(self, source: str) -> None:
        """Someone else moved the source: drop what this store remembers of it, and read it from now on."""
        with self._partitions_lock:
            self._partitions.pop(source, None)

    def load_source(self, source: str) -> SourceContext:
        """One consistent Query of the partition, or none where this store appears to be its only
        writer: then the partition as this store last wrote it.

        Serving memory is always safe: every writer moves the head's version (commits, series
        updates, accepted schemas) and a commit judged on an older version is refused, so the run is
        judged again. It only pays where the container that checks a source is the one that checked
        it last (one container, or a source's checks landing on the same one); where checks of a
        source move between containers, a refused commit would cost more than the read saves. So a
        store serves memory only after a read found the partition exactly as the store's own last
        write had left it (nobody wrote it in between), and goes back to reading when a commit on
        memory is refused."""
        with self._partitions_lock:
            memory = self._partitions.get(source)
        if memory is not None and memory.sole_writer:
            return memory.partition.context()
        partition = self._read_partition(source)
        if memory is not None and memory.written and memory.partition.version == partition.version:
            with self._partitions_lock:
                current = self._partitions.get(source)
                if current is not None and current.partition is partition:
                    self._partitions[source] = replace(current, sole_writer=True)
        return partition.context()

    def _head_writes(
        self, partition: _Partition, body: bytes, writes: list[_Write], *, reserved: int
    ) -> list[list[_Write]]:
        """`writes` in transactions within the limits, each also moving the head of `partition` one
        version on condition that nothing else moved it since (so whoever read a version read what
        every writer up to it wrote); `reserved` more items are left free in each."""
        _fits(body, f"head of source {partition.source!r} (its series' newest points)")
        out = []
        for n, chunk in enumerate(_chunks(writes, reserved=reserved + 1)):
            before = partition.version + n
            head = self._item(
                self._source_pk(partition.source), _HEAD_SK, version=before + 1, layout=LAYOUT, body=body
            )
            condition = self._model.pk.does_not_exist() if before == 0 else self._model.version == before
            moved = f"another writer changed source {partition.source!r} meanwhile"
            out.append([_Write(head, "put", condition, conflict=moved), *chunk])
        return out

    def _history(self, fingerprint: str) -> list[_Segment]:
        """Every stored segment of a series, oldest first (one consistent Query, paged)."""
        return [
            _Segment(_micros(datetime.fromisoformat(i.sk)), _unpack(i.body))
            for i in self._query(f"SERIES#{fingerprint}", consistent=True)
        ]

    def _tail_writes(
        self, partition: _Partition, updates: Mapping[str, _Updates], *, seal_all: bool = False
    ) -> tuple[list[_Write], _Partition]:
        """Apply point updates (by fingerprint) to the series: the segment writes, and the partition
        after them (its version unchanged: the caller writes the head, which carries the open points)."""
        tails = dict(partition.tails)
        writes: list[_Write] = []
        for fingerprint in sorted(set(updates) | (set(tails) if seal_all else set())):
            tail = tails.get(fingerprint, _Tail())
            changed = dict(updates.get(fingerprint, {}))
            newest = tail.sealed[-1].points[-1][0] if tail.sealed else None
            opened = {t: (v, lab) for t, v, lab in tail.open}
            for at in [at for at in changed if newest is None or at > newest]:
                opened[at] = changed.pop(at)
            if seal_all or len(opened) >= _OPEN_POINTS:
                changed.update(opened)
                opened = {}
            segments = list(tail.sealed)
            whole = not tail.trimmed
            if changed and tail.trimmed and min(changed) < segments[0].start:
                segments, whole = self._history(fingerprint), True  # older than the tail holds
            after = _merge(segments, changed)
            open_points = tuple((t, v, lab) for t, (v, lab) in sorted(opened.items()))
            hot = self._hot(after, len(open_points))
            writes += self._segment_writes(partition.source, fingerprint, tail.sealed, segments, after, hot)
            tails[fingerprint] = _Tail(tuple(hot), open_points, len(hot) < len(after) or not whole)
        return writes, replace(partition, tails=tails)

    def _hot(self, segments: list[_Segment], open_points: int) -> list[_Segment]:
        """The newest segments that, with the open points, hold at least `tail_points` points (and
        at least the newest segment, which decides where a new point goes)."""
        held, first = open_points, len(segments)
        while first > 0 and (held < self.tail_points or first == len(segments)):
            first -= 1
            held += len(segments[first].points)
        return segments[first:]

    def _segment_writes(
        self,
        source: str,
        fingerprint: str,
        hot_before: Sequence[_Segment],
        before: Sequence[_Segment],
        after: Sequence[_Segment],
        hot: Sequence[_Segment],
    ) -> list[_Write]:
        """Puts of the new or changed segments (history, and the source partition while they are hot);
        deletes of the segments that left the source partition."""
        pk = self._source_pk(source)
        previous = {s.start: s for s in before}
        was_hot = {s.start: s for s in hot_before}
        is_hot = {s.start for s in hot}
        writes = [
            _Write(self._item(pk, self._tail_sk(fingerprint, s.start)), "delete")
            for s in hot_before
            if s.start not in is_hot
        ]
        for segment in after:
            body, expires = _pack(segment.points), self._expires(_from_micros(segment.points[-1][0]))
            if previous.get(segment.start) != segment:
                at = _at(_from_micros(segment.start))
                writes.append(_Write(self._item(f"SERIES#{fingerprint}", at, body=body, expires_at=expires)))
            if segment.start in is_hot and was_hot.get(segment.start) != segment:
                sk = self._tail_sk(fingerprint, segment.start)
                writes.append(_Write(self._item(pk, sk, body=body, expires_at=expires)))
        return writes

    @staticmethod
    def _tail_sk(fingerprint: str, start: int) -> str:
        return f"{_TAIL}{fingerprint}#{_at(_from_micros(start))}"

    def _update_partition(
        self,
        source: str,
        updates: Mapping[str, _Updates],
        writes: Sequence[_Write] = (),
        baselines: Mapping[str, SchemaBaseline] | None = None,
    ) -> None:
        """Change a source's partition outside a run (backfill, labels, an accepted schema) on a
        fresh read of it, moving its head, again if another writer moved it meanwhile."""
        for _ in range(_COMMIT_ATTEMPTS):
            partition = self._read_partition(source)
            tail_writes, after = self._tail_writes(partition, updates)
            if len(after.head_body()) > _HEAD_BYTES:
                tail_writes, after = self._tail_writes(partition, updates, seal_all=True)
            transactions = self._head_writes(
                partition, after.head_body(), [*writes, *tail_writes], reserved=0
            )
            after = replace(
                after,
                version=partition.version + len(transactions),
                baselines={**partition.baselines, **(baselines or {})},
            )
            try:
                for transaction in transactions:
                    self._transact(transaction)
            except _Cancelled:
                self._forget(source)
                continue
            self._remember(after, written=True)
            return
        raise StateConflict(f"source {source!r} kept changing while it was updated; try again")

    # ------------------------------------------------------------------ runs
    def commit_run(self, commit: RunCommit) -> bool:
        run = commit.run
        foreign = sorted({p.key.source for p in commit.points} - {run.source})
        if foreign:
            raise ValueError(
                f"a run of {run.source!r} commits points of its own source only, not of {foreign}"
            )
        partition = self._remembered(run.source)
        fresh = partition is None
        if partition is None:
            partition = self._read_partition(run.source)
        existing: set[tuple[str, str]] = set()
        for _ in range(_COMMIT_ATTEMPTS):
            stale = self._stale_state(commit, partition)
            if stale and not fresh:  # what this store remembers may be old: judge on a fresh read
                self._forget(run.source)
                partition, fresh = self._read_partition(run.source), True
                stale = self._stale_state(commit, partition)
            if stale:
                if self.get_run(run.source, run.scheduled_time) is not None:
                    return False
                raise StateConflict(stale)
            plan = self._plan(commit, partition, existing)
            try:
                for transaction in plan.writes_in_transactions:
                    self._transact(transaction)
            except _Cancelled as cancelled:
                # Something moved since the read: the run was committed, a state or the tails
                # changed, or an insert-once item exists. Nothing of this attempt was written
                # (unless a commit above the transaction limits crashed or lost a race halfway).
                self._forget(run.source)
                if self.get_run(run.source, run.scheduled_time) is not None:
                    return False
                partition, fresh = self._read_partition(run.source), True
                stale = self._stale_state(commit, partition)
                if stale:  # judged on what is no longer there (the run is not committed: just read)
                    raise StateConflict(stale) from cancelled
                existing = self._existing(plan.once)
                continue
            self._remember(plan.after, written=True)
            return True
        raise StateConflict(f"source {run.source!r} kept changing during the commit; run the check again")

    def _stale_state(self, commit: RunCommit, partition: _Partition) -> str:
        """Why the commit is not based on the partition (the version it was judged on, or its states'
        versions), or "" if it is."""
        judged_on = commit.context_version
        if judged_on is not None and judged_on != partition.version:
            return (
                f"source {partition.source!r} changed since the run read it (version {judged_on}, now "
                f"{partition.version}): the run is judged again on what is current"
            )
        for state in commit.states:
            stored = partition.states.get(state.fingerprint)
            version = stored.version if stored is not None else 0
            expected = commit.expected_versions.get(state.fingerprint, 0)
            if version != expected:
                return self._state_conflict(state, expected, f"is at version {version}")
        return ""

    def _existing(self, keys: Sequence[tuple[str, str]]) -> set[tuple[str, str]]:
        """Which of these keys exist (one consistent BatchGetItem, 100 keys a request)."""
        if not keys:
            return set()
        return {(i.pk, i.sk) for i in self._model.batch_get(set(keys), consistent_read=True)}

    def _plan(self, commit: RunCommit, partition: _Partition, existing: set[tuple[str, str]]) -> _CommitPlan:
        """The commit's writes on top of `partition`, in transactions. Insert-once items known to
        exist are left out; the others carry their conditions (transitions, notifications and
        learned baselines are written once, so a retry that decided differently never rewrites them)."""
        run = commit.run
        once = [[self._once(self._transition_item(t))] for t in commit.transitions]
        once += [self._outbox_writes(n) for n in commit.notifications]
        once += [self._grouped_writes(g) for g in commit.grouped]
        markers = [group[0].key for group in once]
        once += [
            [self._once(self._baseline_item(b))]
            for b in commit.schema_baselines
            if b.table not in partition.baselines
        ]
        writes = [self._state_write(s, commit.expected_versions.get(s.fingerprint, 0)) for s in commit.states]
        writes += [w for group in once if group[0].key not in existing for w in group]
        if commit.snapshot is not None:
            writes += [_Write(item) for item in self._snapshot_items(commit.snapshot)]
        updates = _updates(commit.points)
        tail_writes, after = self._tail_writes(partition, updates)
        if len(after.head_body()) > _HEAD_BYTES:  # a source of very many series: seal them all now
            tail_writes, after = self._tail_writes(partition, updates, seal_all=True)
        writes += tail_writes
        fit_writes, fits = self._fit_writes(commit)
        writes += fit_writes  # after the rest: with the run in the last transaction where they can be
        run_item = self._item(
            f"RUN#{run.source}",
            _at(run.scheduled_time),
            body=_compress(run),
            expires_at=self._expires(run.scheduled_time),
        )
        conflict = f"run of {run.source} at {run.scheduled_time} was committed meanwhile"
        writes.append(_Write(run_item, "put", self._model.pk.does_not_exist(), conflict=conflict))
        # Each transaction before the last re-checks that the run is not committed, so a retry of a
        # committed run above the transaction limits writes nothing either.
        transactions = self._head_writes(partition, after.head_body(), writes, reserved=1)
        after = replace(
            after,
            version=partition.version + len(transactions),
            states={
                **partition.states,
                **{
                    s.fingerprint: s.model_copy(
                        update={"version": commit.expected_versions.get(s.fingerprint, 0) + 1}
                    )
                    for s in commit.states
                },
            },
            baselines={**{b.table: b for b in commit.schema_baselines}, **partition.baselines},
            fits={**partition.fits, **fits},
        )
        not_committed = _Write(run_item, "check", self._model.pk.does_not_exist(), conflict=conflict)
        for transaction in transactions[:-1]:
            transaction.append(not_committed)
        return _CommitPlan(transactions, after, markers)

    def _fit_writes(self, commit: RunCommit) -> tuple[list[_Write], dict[str, dict[str, Any]]]:
        """A put of each fit (replacing the series' earlier one) and the fits as a read will decode
        them. A fit that is not JSON or, compressed, above an item's limit is left out with a warning:
        the run goes through and the series is fitted again (a fit is a few KB: it never is)."""
        run = commit.run
        writes, fits = [], {}
        for fingerprint, fit in commit.fits.items():
            text = fit_text(fingerprint, fit)
            if text is None:
                continue
            body = zlib.compress(text.encode(), 6)
            if len(body) > _BODY_BYTES:
                logger.warning(
                    "fit of series %s left out of the commit: %s bytes compressed, above the %s "
                    "bytes an item holds here",
                    fingerprint,
                    f"{len(body):,}",
                    f"{_BODY_BYTES:,}",
                )
                continue
            item = self._item(
                self._source_pk(run.source),
                _FIT + fingerprint,
                body=body,
                expires_at=self._expires(run.scheduled_time),
            )
            writes.append(_Write(item))
            fits[fingerprint] = json.loads(text)
        return writes, fits

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
            self._source_pk(state.key.source),
            _STATE + state.fingerprint,
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

    def _grouped_writes(self, part: GroupedNotice) -> list[_Write]:
        """A once-per-id marker (kept after the notice is sealed, so it is never queued again) and the
        notice waiting in its group."""
        expires = self._expires(part.created_at)
        marker = self._item(f"PART#{part.id}", _NOTE_SK, expires_at=expires)
        waiting = self._item(
            _GROUPED,
            f"{part.group.key}#{part.id}",
            body=_fits(_compress(part), f"grouped notice {part.id}"),
            source=part.notification.source,
            expires_at=expires,
        )
        return [self._once(marker), _Write(waiting, requires=(marker.pk, marker.sk))]

    def _baseline_item(self, baseline: SchemaBaseline) -> _Item:
        what = f"schema of {baseline.source}.{baseline.table}"
        return self._item(
            self._source_pk(baseline.source), _SCHEMA + baseline.table, body=_fits(_compress(baseline), what)
        )

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
        """The open points from the source's head, then the series' segments newest first, as far
        back as `limit` needs. Consistent reads, head first: points sealed in between are then in
        both, and the segment's copy is kept."""
        if limit <= 0:
            return []
        end = _micros(before)
        head = self._get(self._source_pk(key.source), _HEAD_SK)
        heads = json.loads(zlib.decompress(head.body or b"")) if head is not None else {}
        opened = _unpacked(heads[key.fingerprint]["open"]) if key.fingerprint in heads else ()
        found = {t: (v, label) for t, v, label in opened if t < end}
        older = self._model.query(
            f"SERIES#{key.fingerprint}",
            self._model.sk < _at(before),
            scan_index_forward=False,
            consistent_read=True,
        )
        for item in older:
            if len(found) >= limit:
                break
            found.update((t, (v, label)) for t, v, label in _unpack(item.body) if t < end)
        return [
            stored_point(key, _from_micros(t), v, PointLabel(label))
            for t, (v, label) in sorted(found.items())[-limit:]
        ]

    def put_points(self, points: list[MetricPoint]) -> None:
        """Each source's series in one transaction (more above its limits), on a fresh read of its
        partition."""
        by_source: dict[str, list[MetricPoint]] = {}
        for p in points:
            by_source.setdefault(p.key.source, []).append(p)
        for source, some in by_source.items():
            self._update_partition(source, _updates(some))

    def label_points(self, key: CheckKey, start: datetime, end: datetime, label: PointLabel) -> int:
        first, last = _micros(start), _micros(end)
        tail = self._read_partition(key.source).tails.get(key.fingerprint, _Tail())
        points = [p for s in self._history(key.fingerprint) for p in s.points] + list(tail.open)
        relabelled = {t: (v, label.value) for t, v, _ in points if first <= t <= last}
        if relabelled:
            self._update_partition(key.source, {key.fingerprint: relabelled})
        return len(relabelled)

    # ------------------------------------------------------------------ alert state
    def alert_states(self, source: str | None = None) -> list[AlertState]:
        items = (
            self._scan("SRC#", self._model.sk.startswith(_STATE))
            if source is None
            else self._query(self._source_pk(source), self._model.sk.startswith(_STATE), consistent=True)
        )
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
        items = self._query(self._source_pk(source), self._model.sk.startswith(_SCHEMA), consistent=True)
        baselines = (_decompress(SchemaBaseline, i.body) for i in items)
        return {b.table: b for b in baselines}

    def put_schema_baseline(self, baseline: SchemaBaseline) -> None:
        """Replace the baseline and move the source's head, so a run judged on the old one (a warm
        container's remembered partition, a check in flight) is refused at commit and judged again."""
        self._update_partition(
            baseline.source, {}, [_Write(self._baseline_item(baseline))], {baseline.table: baseline}
        )

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

    # ------------------------------------------------------------------ the watchdog's registry
    def watched_since(self, sources: Sequence[str], at: datetime) -> dict[str, datetime]:
        """One partition (`WATCHED`, an item a source): read in batches, missing ones written once."""
        wanted = sorted(set(sources))
        found = {
            i.sk: i.since
            for i in self._model.batch_get({("WATCHED", name) for name in wanted}, consistent_read=True)
        }
        for name in wanted:
            if name in found:
                continue
            try:
                self._item("WATCHED", name, since=_at(at)).save(condition=self._model.pk.does_not_exist())
                found[name] = _at(at)
            except PutError as error:
                if not _condition_failed(error):
                    raise
                item = self._get("WATCHED", name)  # another watchdog wrote it first: its time stands
                found[name] = item.since if item is not None else _at(at)
        return {name: _parse_at(str(since)) for name, since in found.items()}

    # ------------------------------------------------------------------ notifications
    def pending_notifications(self, source: str | None = None) -> list[Notification]:
        where = None if source is None else self._model.source == source
        return [
            _decompress(Notification, i.body) for i in self._query("OUTBOX", where=where, consistent=True)
        ]

    def _marker(self, notification_id: str) -> _Item | None:
        return self._get(f"NOTE#{notification_id}", _NOTE_SK)

    def _unchanged(self, marker: _Item) -> Condition:
        """The notification's marker is still as read: every ledger write moves its version."""
        if marker.version is None:
            return self._model.version.does_not_exist()
        return self._model.version == marker.version

    def record_delivery(self, record: DeliveryRecord) -> None:
        for _ in range(_LEDGER_ATTEMPTS):
            marker = self._marker(record.notification_id)
            previous = _decompress(DeliveryRecord, marker.body) if marker and marker.body else None
            if not ledger.may_record(previous.status if previous else None, record.status):
                return
            entry = marker.ref if marker else None
            kept = record
            if record.status is DeliveryStatus.FAILED and record.notification is None:
                # A parked delivery must be replayable, so keep the message even if the caller did not.
                pending = self._get("OUTBOX", entry) if entry else None
                notification = previous.notification if previous else None
                if pending is not None:
                    notification = _decompress(Notification, pending.body)
                kept = record.model_copy(update={"notification": notification})
            body = _fits(_compress(kept), f"delivery record of {record.notification_id}")
            expires = self._expires(record.at)
            # The marker keeps the record (and drops the claim); the outbox entry goes, and a FAILED
            # record also gets an item of the FAILED listing.
            version = (marker.version or 0) + 1 if marker else 1
            item = self._item(
                f"NOTE#{record.notification_id}",
                _NOTE_SK,
                body=body,
                ref=entry,
                version=version,
                expires_at=expires,
            )
            writes = [
                _Write(
                    item,
                    condition=self._unchanged(marker) if marker else self._model.pk.does_not_exist(),
                    conflict=f"delivery ledger entry of {record.notification_id} moved",
                )
            ]
            if entry:
                writes.append(_Write(self._item("OUTBOX", entry), "delete"))
            if previous is not None and previous.status is DeliveryStatus.FAILED:
                writes.append(_Write(self._item("FAILED", self._failed_sk(previous)), "delete"))
            if record.status is DeliveryStatus.FAILED:
                writes.append(
                    _Write(self._item("FAILED", self._failed_sk(record), body=body, expires_at=expires))
                )
            try:
                self._transact(writes)
            except _Cancelled:
                continue  # another sender moved the entry since the read: read it again
            return
        raise StateConflict(f"delivery of {record.notification_id} kept changing; record it again")

    def claim_delivery(self, notification_id: str, request: ledger.ClaimRequest) -> ledger.Claim:
        for _ in range(_LEDGER_ATTEMPTS):
            marker = self._marker(notification_id)
            record = _decompress(DeliveryRecord, marker.body) if marker and marker.body else None
            claimed_until = marker.claimed_until if marker else None
            entry = ledger.Entry(
                exists=marker is not None,
                status=record.status if record else None,
                claimer=marker.claimer if marker else None,
                claimed_until=_from_micros(int(claimed_until)) if claimed_until is not None else None,
            )
            verdict = ledger.decide(entry, request)
            if verdict is not ledger.Verdict.SEND or marker is None:
                return ledger.Claim(verdict, record=record, holder=entry.claimer)
            pending = self._get("OUTBOX", marker.ref) if marker.ref and record is None else None
            notification = _decompress(Notification, pending.body) if pending else None
            if notification is None and record is not None:
                notification = record.notification  # parked: the record keeps the notification
            if notification is None:
                return ledger.Claim(ledger.Verdict.UNKNOWN, record=record)
            try:
                marker.update(
                    actions=[
                        self._model.claimer.set(request.claimer),
                        self._model.claimed_until.set(_micros(request.until)),
                        self._model.version.set((marker.version or 0) + 1),
                    ],
                    condition=self._unchanged(marker),
                )
            except UpdateError as error:
                if not _condition_failed(error):
                    raise
                continue  # another sender claimed or marked it since the read: judge again
            return ledger.Claim(verdict, notification=notification, record=record)
        raise StateConflict(f"delivery claim of {notification_id} kept changing; claim it again")

    def release_delivery(self, notification_id: str, claimer: str) -> None:
        marker = self._item(f"NOTE#{notification_id}", _NOTE_SK)
        try:
            marker.update(
                actions=[
                    self._model.claimer.remove(),
                    self._model.claimed_until.remove(),
                    self._model.version.add(1),
                ],
                condition=self._model.claimer == claimer,
            )
        except UpdateError as error:
            if not _condition_failed(error):  # no longer its claim: nothing to release
                raise

    def delivery_backlog(self) -> DeliveryBacklog:
        notes = self.pending_notifications()
        keys = {(f"NOTE#{n.id}", _NOTE_SK) for n in notes}
        markers = {i.pk: i for i in self._model.batch_get(keys, consistent_read=True)} if keys else {}
        pending = []
        for n in notes:
            marker = markers.get(f"NOTE#{n.id}")
            until = marker.claimed_until if marker is not None else None
            pending.append(
                PendingDelivery(
                    n,
                    marker.claimer if marker is not None else None,
                    _from_micros(int(until)) if until is not None else None,
                )
            )
        return DeliveryBacklog(pending=pending, parked=self.failed_deliveries())

    @staticmethod
    def _failed_sk(record: DeliveryRecord) -> str:
        return f"{_at(record.at)}#{record.notification_id}"

    def delivery(self, notification_id: str) -> DeliveryRecord | None:
        marker = self._get(f"NOTE#{notification_id}", _NOTE_SK)
        return _decompress(DeliveryRecord, marker.body) if marker and marker.body else None

    def failed_deliveries(self) -> list[DeliveryRecord]:
        return [_decompress(DeliveryRecord, i.body) for i in self._query("FAILED", consistent=True)]

    # ------------------------------------------------------------------ grouped notices
    max_sealed_parts = _SEALED_PARTS

    def pending_groups(self) -> list[PendingGroup]:
        parts: dict[str, list[GroupedNotice]] = {}
        for item in self._query(_GROUPED, consistent=True):  # sorted by group
            part = _decompress(GroupedNotice, item.body)
            parts.setdefault(part.group.key, []).append(part)
        for waiting in parts.values():
            waiting.sort(key=lambda p: (p.created_at, p.id))
        if not parts:
            return []
        keys = {(_GROUP, k) for k in parts}
        states = {i.sk: i for i in self._model.batch_get(keys, consistent_read=True)}
        out = []
        for key, waiting in parts.items():
            state = states.get(key)
            last = state.last_notified if state is not None else None
            out.append(
                PendingGroup(
                    key,
                    waiting,
                    _from_micros(int(last)) if last is not None else None,
                    int(state.version or 0) if state is not None else 0,
                )
            )
        return out

    def seal_group(self, group: PendingGroup, merged: Notification) -> bool:
        if len(group.parts) > self.max_sealed_parts:
            raise ValueError(f"a seal merges at most {self.max_sealed_parts} notices (one transaction)")
        entry = f"{_at(merged.created_at)}#{merged.id}"
        expires = self._expires(merged.created_at)
        moved = f"group {group.key} was sealed by another flusher"
        writes = [
            _Write(
                self._item(f"NOTE#{merged.id}", _NOTE_SK, ref=entry, expires_at=expires),
                condition=self._model.pk.does_not_exist(),
                conflict=moved,
            ),
            _Write(
                self._item(
                    "OUTBOX",
                    entry,
                    body=_fits(_compress(merged), f"notification {merged.id}"),
                    source=merged.source,
                    expires_at=expires,
                )
            ),
            _Write(
                self._item(
                    _GROUP,
                    group.key,
                    version=group.version + 1,
                    last_notified=_micros(merged.run_time),
                    expires_at=expires,
                ),
                condition=(
                    self._model.pk.does_not_exist()
                    if group.version == 0
                    else self._model.version == group.version
                ),
                conflict=moved,
            ),
        ]
        writes += [
            _Write(
                self._item(_GROUPED, f"{group.key}#{p.id}"),
                "delete",
                self._model.pk.exists(),
                conflict=moved,
            )
            for p in group.parts
        ]
        try:
            self._transact(writes)
        except _Cancelled:
            return False
        return True
