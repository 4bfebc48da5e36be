"""The local state store: one SQLite file through the standard library (the embedded default).

Each model is stored whole as JSON, next to the columns that queries filter and sort on. Times in
those columns are integer microseconds since the Unix epoch (UTC), so ordering and range queries are
plain integer comparisons; the JSON keeps the exact value.

Concurrency: one connection per store, guarded by a lock, serves all of a process's threads (store
calls are short next to the source queries the CLI's threads wait on). WAL lets other processes read
while one writes, and the busy timeout makes writers in different processes wait for each other
instead of failing. Every write runs in a BEGIN IMMEDIATE transaction, so a read-check-write such as
the run-already-committed test or the optimistic version check cannot interleave with another writer.

Faults: a file that cannot be written, is corrupt or truncated, a full disk, or a file deleted or
replaced while a run used it each raise one StateError naming the file and what to do; the write
that met the fault is rolled back, so nothing is half-written.

Retention: with `retention`, each commit also deletes that source's runs, snapshots, transitions,
fits, points of the committed series, delivered notifications and grouped notices already merged, older
than the run's time minus `retention` (the local counterpart of DynamoDB's TTL). Pending and parked
notifications, and notices waiting for their group, are kept.
"""

from __future__ import annotations

import json
import math
import os
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager, suppress
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel

from driftguard import ledger
from driftguard.errors import ConfigError, StateConflict, StateError, StateMissing
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
from driftguard.store.base import DeliveryBacklog, PendingDelivery, PendingGroup, Store, fit_of, fit_text

__all__ = ["SCHEMA_VERSION", "SqliteStore"]

# Each entry migrates the file from version i to i + 1 (PRAGMA user_version). Append, never edit.
_MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        """CREATE TABLE runs (
            source TEXT NOT NULL, scheduled_us INTEGER NOT NULL, body TEXT NOT NULL,
            PRIMARY KEY (source, scheduled_us)) WITHOUT ROWID""",
        "CREATE INDEX runs_by_time ON runs (scheduled_us)",
        """CREATE TABLE snapshots (
            source TEXT NOT NULL, scheduled_us INTEGER NOT NULL, body TEXT NOT NULL,
            PRIMARY KEY (source, scheduled_us)) WITHOUT ROWID""",
        # `value` is nullable because SQLite stores NaN as NULL; it reads back as NaN.
        """CREATE TABLE points (
            fingerprint TEXT NOT NULL, ts_us INTEGER NOT NULL, value REAL, label TEXT NOT NULL,
            PRIMARY KEY (fingerprint, ts_us)) WITHOUT ROWID""",
        """CREATE TABLE alert_states (
            fingerprint TEXT PRIMARY KEY, source TEXT NOT NULL, version INTEGER NOT NULL,
            body TEXT NOT NULL)""",
        "CREATE INDEX alert_states_by_source ON alert_states (source)",
        """CREATE TABLE transitions (
            id TEXT PRIMARY KEY, source TEXT NOT NULL, table_name TEXT NOT NULL,
            fingerprint TEXT NOT NULL, at_us INTEGER NOT NULL, body TEXT NOT NULL)""",
        "CREATE INDEX transitions_by_source ON transitions (source, at_us)",
        "CREATE INDEX transitions_by_fingerprint ON transitions (fingerprint, at_us)",
        """CREATE TABLE schema_baselines (
            source TEXT NOT NULL, table_name TEXT NOT NULL, body TEXT NOT NULL,
            PRIMARY KEY (source, table_name)) WITHOUT ROWID""",
        """CREATE TABLE silences (
            id TEXT PRIMARY KEY, starts_us INTEGER NOT NULL, ends_us INTEGER NOT NULL,
            body TEXT NOT NULL)""",
        # `seq` keeps insertion order among notifications created in the same microsecond.
        """CREATE TABLE outbox (
            seq INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, source TEXT NOT NULL,
            created_us INTEGER NOT NULL, body TEXT NOT NULL)""",
        "CREATE INDEX outbox_by_age ON outbox (created_us, seq)",
        """CREATE TABLE deliveries (
            notification_id TEXT PRIMARY KEY, status TEXT NOT NULL, at_us INTEGER NOT NULL,
            body TEXT NOT NULL)""",
        "CREATE INDEX deliveries_by_status ON deliveries (status, at_us)",
    ),
    # The delivery ledger's claims (driftguard.ledger) live on the outbox entry they claim.
    (
        "ALTER TABLE outbox ADD COLUMN claimer TEXT",
        "ALTER TABLE outbox ADD COLUMN claimed_until_us INTEGER",
    ),
    # Notices of routes that group wait here until their group is sealed into one outbox entry;
    # sealed ones stay (sealed = 1), so a run committed again cannot queue them twice.
    (
        """CREATE TABLE grouped (
            id TEXT PRIMARY KEY, group_key TEXT NOT NULL, source TEXT NOT NULL,
            created_us INTEGER NOT NULL, sealed INTEGER NOT NULL DEFAULT 0, body TEXT NOT NULL)""",
        "CREATE INDEX grouped_waiting ON grouped (sealed, group_key, created_us)",
        "CREATE INDEX grouped_by_source ON grouped (source, created_us)",
        """CREATE TABLE groups (
            group_key TEXT PRIMARY KEY, version INTEGER NOT NULL, last_notified_us INTEGER NOT NULL)""",
    ),
    # The watchdog's registry: when it began watching each source (Store.watched_since).
    ("CREATE TABLE watched (source TEXT PRIMARY KEY, since_us INTEGER NOT NULL) WITHOUT ROWID",),
    # The latest fit of each series (RunCommit.fits) as JSON text, and the time of the run that wrote it.
    (
        """CREATE TABLE fits (
            source TEXT NOT NULL, fingerprint TEXT NOT NULL, at_us INTEGER NOT NULL, body TEXT NOT NULL,
            PRIMARY KEY (source, fingerprint)) WITHOUT ROWID""",
    ),
)
SCHEMA_VERSION = len(_MIGRATIONS)

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
_END_OF_TIME = 2**63 - 1  # the largest SQLite integer: "no upper bound" for as-of reads

_Model = TypeVar("_Model", bound=BaseModel)


def _micros(at: datetime) -> int:
    return (utc(at) - _EPOCH) // _MICROSECOND


_LABELS = {label.value: label for label in PointLabel}  # a dict lookup, not an Enum call, per point


def _from_micros(micros: int) -> datetime:
    return _EPOCH + micros * _MICROSECOND


def _fingerprinted(points: list[MetricPoint]) -> Iterator[tuple[str, MetricPoint]]:
    """Each point with its key's fingerprint. A fingerprint is a hash computed on each access, and
    hashing the key (a pydantic model) to look one up costs as much again; a backfill hands over
    thousands of points of one key object in a row, so a key is only looked at when it changes."""
    fingerprints: dict[CheckKey, str] = {}
    key: CheckKey | None = None
    fingerprint = ""
    for point in points:
        if point.key is not key:
            key = point.key
            fingerprint = fingerprints.get(key) or fingerprints.setdefault(key, key.fingerprint)
        yield fingerprint, point


def _upper_bound(at: datetime | None) -> int:
    return _END_OF_TIME if at is None else _micros(at)


def _encode(model: BaseModel) -> str:
    # Not model_dump_json: it writes inf and NaN as null, which then fails validation or reads back as
    # None (an unbounded limit is inf). The json module writes Infinity/NaN, which pydantic parses.
    return json.dumps(model.model_dump(mode="json"), separators=(",", ":"))


def _decode(model: type[_Model], rows: Iterable[tuple[str]]) -> list[_Model]:
    return [model.model_validate_json(body) for (body,) in rows]


def _is_busy(error: sqlite3.Error) -> bool:
    """SQLITE_BUSY or SQLITE_LOCKED: another connection holds a lock we need."""
    message = str(error)
    return isinstance(error, sqlite3.OperationalError) and ("locked" in message or "busy" in message)


# SQLite primary result codes (https://sqlite.org/rescode.html) -> what is wrong, what to do.
_MOVE_ASIDE = "move it aside (DriftGuard then starts a fresh one) or restore it from a backup"
_MAKE_WRITABLE = "make the file and its folder writable by this user, or point --state / state.path elsewhere"
_FAULTS: dict[int, str] = {
    3: f"is not accessible: {_MAKE_WRITABLE}",  # SQLITE_PERM
    8: f"is read-only: {_MAKE_WRITABLE}",  # SQLITE_READONLY
    10: "cannot be read or written (I/O error): check the disk and the file system",  # SQLITE_IOERR
    11: f"is corrupt: {_MOVE_ASIDE}",  # SQLITE_CORRUPT
    13: "cannot grow: the disk (or its quota) is full; free space and run again",  # SQLITE_FULL
    14: f"cannot be opened: {_MAKE_WRITABLE}",  # SQLITE_CANTOPEN
    26: f"is not a DriftGuard state file (or is truncated): {_MOVE_ASIDE}",  # SQLITE_NOTADB
}


def state_fault(path: Path, error: sqlite3.Error | OSError) -> StateError:
    """One clear line for a state file that cannot be used."""
    if isinstance(error, OSError):
        return StateError(f"state file {path} cannot be used ({error.strerror or error}): {_MAKE_WRITABLE}")
    code = getattr(error, "sqlite_errorcode", None)
    what = _FAULTS.get(code & 0xFF) if isinstance(code, int) else None
    return StateError(f"state file {path} {what or 'cannot be used: check the file'} ({error})")


class SqliteStore(Store):
    def __init__(
        self,
        path: str | Path,
        *,
        busy_timeout: float = 30.0,
        retention: timedelta | None = None,
        create: bool = True,
    ) -> None:
        """Open the state file at `path`, creating it and its directory if needed (with `create`;
        otherwise a missing file is StateMissing: a command that only reads never creates one).

        `busy_timeout` is how many seconds a write waits for another process's write to finish;
        `retention` how long history is kept (None: forever).
        """
        self.path = Path(path).expanduser()
        self._busy_timeout = busy_timeout
        self.retention = retention
        in_memory = str(path) == ":memory:"  # a dry run's throw-away state: no file to guard
        if not create and not in_memory and not self.path.exists():
            raise StateMissing(
                f"no state file at {self.path}: nothing has been checked with it yet "
                "(`driftguard run` creates it; --state or state.path may point elsewhere)"
            )
        try:
            if not in_memory:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            # isolation_level=None: the module must not open transactions behind our back; we BEGIN.
            self._conn = sqlite3.connect(
                self.path, timeout=busy_timeout, isolation_level=None, check_same_thread=False
            )
        except (sqlite3.Error, OSError) as e:
            raise state_fault(self.path, e) from None
        self._lock = threading.Lock()
        self._identity: tuple[int, int] | None = None  # known once opening has created the file
        try:
            self._open()
            if in_memory:
                return
            self._identity = self._file_identity()
            if self._identity is None:
                raise StateError(f"state file {self.path} was deleted while it was being opened; run again")
        except BaseException:
            self._conn.close()
            raise

    def _file_identity(self) -> tuple[int, int] | None:
        try:
            stat = os.stat(self.path)
        except FileNotFoundError:
            return None
        return stat.st_dev, stat.st_ino

    def _still_same_file(self) -> None:
        """A state file deleted or replaced under a running process would take every later write
        with it (SQLite keeps writing to the unlinked file): refuse to write instead."""
        if self._identity is not None and self._file_identity() != self._identity:
            raise StateError(
                f"state file {self.path} was deleted or replaced while DriftGuard was using it; nothing "
                "more was written to it: restore the file (or remove the new one) and run again"
            )

    def _open(self) -> None:
        """Switch the file to WAL and migrate it, waiting out other connections doing the same.

        Switching a new file to WAL, or reading it while another connection recovers its WAL, can
        answer SQLITE_BUSY at once without calling the busy handler (SQLite does so where waiting
        could deadlock), so several processes or threads opening one new file need their own retry.
        """
        deadline = time.monotonic() + self._busy_timeout
        delay = 0.002
        while True:
            try:
                self._conn.execute("PRAGMA journal_mode=WAL")
                self._migrate()
                return
            except sqlite3.Error as e:
                if not _is_busy(e):
                    raise state_fault(self.path, e) from None
                if time.monotonic() >= deadline:
                    raise StateConflict(
                        f"state file {self.path} stayed locked while opening it "
                        f"(waited {self._busy_timeout:g} s): {e}"
                    ) from e
            time.sleep(delay)
            delay = min(delay * 2, 0.1)

    # ------------------------------------------------------------------ plumbing
    def _migrate(self) -> None:
        if self._schema_version(self._conn) == SCHEMA_VERSION:
            return  # the usual case: no write lock needed just to open the file
        with self._write() as db:
            # Read again inside the write lock so two processes opening a new file cannot both migrate it.
            version = self._schema_version(db)
            if version > SCHEMA_VERSION:
                raise ConfigError(
                    f"state file {self.path} has schema version {version}, but this DriftGuard only knows "
                    f"versions up to {SCHEMA_VERSION}: upgrade DriftGuard or point `state.path` elsewhere"
                )
            for statements in _MIGRATIONS[version:]:
                for statement in statements:
                    db.execute(statement)
            if version < SCHEMA_VERSION:
                db.execute(f"PRAGMA user_version = {SCHEMA_VERSION:d}")

    @staticmethod
    def _schema_version(db: sqlite3.Connection) -> int:
        (version,) = db.execute("PRAGMA user_version").fetchone()
        return int(version)

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction: committed when the block ends, rolled back if anything escapes it."""
        with self._lock:
            self._still_same_file()
            try:
                self._conn.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as e:
                if not _is_busy(e):
                    raise state_fault(self.path, e) from None
                # Another process held the write lock past the busy timeout: retryable, like any
                # other writer getting there first.
                raise StateConflict(
                    f"state file {self.path} is locked by another writer "
                    f"(waited {self._busy_timeout:g} s): {e}"
                ) from e
            try:
                yield self._conn
                self._conn.commit()
            except BaseException as e:
                with suppress(sqlite3.Error):  # SQLite already rolled back (e.g. SQLITE_FULL)
                    self._conn.rollback()
                if isinstance(e, sqlite3.Error):
                    raise state_fault(self.path, e) from None
                raise

    def _read(self, sql: str, params: tuple[object, ...]) -> list[Any]:
        with self._lock:
            try:
                return self._conn.execute(sql, params).fetchall()
            except sqlite3.Error as e:
                raise state_fault(self.path, e) from None

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    # ------------------------------------------------------------------ runs
    def commit_run(self, commit: RunCommit) -> bool:
        run = commit.run
        with self._write() as db:
            already = db.execute(
                "SELECT 1 FROM runs WHERE source = ? AND scheduled_us = ?",
                (run.source, _micros(run.scheduled_time)),
            ).fetchone()
            if already:
                return False
            # States first: a conflict is the likely failure, so find it before the bulk writes.
            for state in commit.states:
                self._write_state(db, state, commit.expected_versions.get(state.fingerprint, 0))
            db.execute(
                "INSERT INTO runs (source, scheduled_us, body) VALUES (?, ?, ?)",
                (run.source, _micros(run.scheduled_time), _encode(run)),
            )
            if commit.snapshot is not None:
                snapshot = commit.snapshot
                db.execute(
                    "INSERT INTO snapshots (source, scheduled_us, body) VALUES (?, ?, ?)",
                    (snapshot.source, _micros(snapshot.scheduled_time), _encode(snapshot)),
                )
            self._write_points(db, commit.points)
            db.executemany(
                "INSERT OR IGNORE INTO transitions (id, source, table_name, fingerprint, at_us, body)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                [
                    (t.id, t.key.source, t.key.table, t.fingerprint, _micros(t.at), _encode(t))
                    for t in commit.transitions
                ],
            )
            # A notification id is stable across retries: a second insert must not queue it again.
            db.executemany(
                "INSERT OR IGNORE INTO outbox (id, source, created_us, body) VALUES (?, ?, ?, ?)",
                [(n.id, n.source, _micros(n.created_at), _encode(n)) for n in commit.notifications],
            )
            db.executemany(
                "INSERT OR IGNORE INTO grouped (id, group_key, source, created_us, body)"
                " VALUES (?, ?, ?, ?, ?)",
                [
                    (g.id, g.group.key, g.notification.source, _micros(g.created_at), _encode(g))
                    for g in commit.grouped
                ],
            )
            # Learned baselines never overwrite one that exists (it may be an operator's acceptance).
            db.executemany(
                "INSERT OR IGNORE INTO schema_baselines (source, table_name, body) VALUES (?, ?, ?)",
                [(b.source, b.table, _encode(b)) for b in commit.schema_baselines],
            )
            fits = {fp: fit_text(fp, fit) for fp, fit in commit.fits.items()}
            at_us = _micros(run.scheduled_time)
            db.executemany(
                "INSERT OR REPLACE INTO fits (source, fingerprint, at_us, body) VALUES (?, ?, ?, ?)",
                [(run.source, fp, at_us, text) for fp, text in fits.items() if text is not None],
            )
            if self.retention is not None:
                self._prune(db, commit, _micros(run.scheduled_time - self.retention))
        return True

    @staticmethod
    def _prune(db: sqlite3.Connection, commit: RunCommit, before_us: int) -> None:
        """Delete what of the committed source is older than `before_us`: each statement walks an
        index prefix, so a commit's pruning costs about what its own writes do."""
        source = commit.run.source
        for table, column in (
            ("runs", "scheduled_us"),
            ("snapshots", "scheduled_us"),
            ("transitions", "at_us"),
            ("fits", "at_us"),  # a fit not made again within retention is long out of use
        ):
            db.execute(f"DELETE FROM {table} WHERE source = ? AND {column} < ?", (source, before_us))  # noqa: S608 - fixed names
        fingerprints = {fingerprint for fingerprint, _ in _fingerprinted(commit.points)}
        db.executemany(
            "DELETE FROM points WHERE fingerprint = ? AND ts_us < ?", [(f, before_us) for f in fingerprints]
        )
        delivered = db.execute(
            "SELECT o.id FROM outbox o JOIN deliveries d ON d.notification_id = o.id"
            " WHERE o.source = ? AND o.created_us < ? AND d.status = ?",
            (source, before_us, DeliveryStatus.DELIVERED.value),
        ).fetchall()
        db.executemany("DELETE FROM deliveries WHERE notification_id = ?", delivered)
        db.executemany("DELETE FROM outbox WHERE id = ?", delivered)
        db.execute(
            "DELETE FROM grouped WHERE source = ? AND created_us < ? AND sealed = 1", (source, before_us)
        )

    @staticmethod
    def _write_state(db: sqlite3.Connection, state: AlertState, expected: int) -> None:
        """Store `state` at version `expected + 1` if the stored version is still `expected`."""
        row = db.execute(
            "SELECT version FROM alert_states WHERE fingerprint = ?", (state.fingerprint,)
        ).fetchone()
        stored = row[0] if row else 0
        if stored != expected:
            raise StateConflict(
                f"alert state of {state.key.label} ({state.fingerprint}) is at version {stored} but the run "
                f"read version {expected}: another run changed it meanwhile; run the check again"
            )
        versioned = state.model_copy(update={"version": expected + 1})
        db.execute(
            "INSERT OR REPLACE INTO alert_states (fingerprint, source, version, body) VALUES (?, ?, ?, ?)",
            (state.fingerprint, state.key.source, expected + 1, _encode(versioned)),
        )

    def get_run(self, source: str, scheduled_time: datetime) -> RunRecord | None:
        rows = self._read(
            "SELECT body FROM runs WHERE source = ? AND scheduled_us = ?", (source, _micros(scheduled_time))
        )
        return next(iter(_decode(RunRecord, rows)), None)

    def runs(self, source: str | None = None, *, limit: int = 50) -> list[RunRecord]:
        rows = self._read(
            "SELECT body FROM runs WHERE (?1 IS NULL OR source = ?1)"
            " ORDER BY scheduled_us DESC, source LIMIT ?2",
            (source, limit),
        )
        return _decode(RunRecord, rows)

    # ------------------------------------------------------------------ snapshots and series
    def snapshots(self, source: str, *, as_of: datetime | None = None, limit: int = 1) -> list[Snapshot]:
        rows = self._read(
            "SELECT body FROM snapshots WHERE source = ? AND scheduled_us <= ?"
            " ORDER BY scheduled_us DESC LIMIT ?",
            (source, _upper_bound(as_of), limit),
        )
        return _decode(Snapshot, rows)

    def series(self, key: CheckKey, *, before: datetime, limit: int = 5000) -> list[MetricPoint]:
        rows = self._read(
            "SELECT ts_us, value, label FROM points WHERE fingerprint = ? AND ts_us < ?"
            " ORDER BY ts_us DESC LIMIT ?",
            (key.fingerprint, _micros(before), limit),
        )
        return [
            stored_point(key, _from_micros(ts_us), math.nan if value is None else value, _LABELS[label])
            for ts_us, value, label in reversed(rows)
        ]

    def series_values(self, key: CheckKey, *, before: datetime, limit: int = 5000) -> list[float]:
        rows = self._read(
            "SELECT value FROM points WHERE fingerprint = ? AND ts_us < ? ORDER BY ts_us DESC LIMIT ?",
            (key.fingerprint, _micros(before), limit),
        )
        return [math.nan if value is None else value for (value,) in reversed(rows)]

    def put_points(self, points: list[MetricPoint]) -> None:
        with self._write() as db:
            self._write_points(db, points)

    @staticmethod
    def _write_points(db: sqlite3.Connection, points: list[MetricPoint]) -> None:
        db.executemany(
            "INSERT OR REPLACE INTO points (fingerprint, ts_us, value, label) VALUES (?, ?, ?, ?)",
            [
                (fingerprint, _micros(p.ts), p.value, p.label.value)
                for fingerprint, p in _fingerprinted(points)
            ],
        )

    def label_points(self, key: CheckKey, start: datetime, end: datetime, label: PointLabel) -> int:
        with self._write() as db:
            cursor = db.execute(
                "UPDATE points SET label = ? WHERE fingerprint = ? AND ts_us BETWEEN ? AND ?",
                (label.value, key.fingerprint, _micros(start), _micros(end)),
            )
            return cursor.rowcount

    # ------------------------------------------------------------------ alert state
    def alert_states(self, source: str | None = None) -> list[AlertState]:
        rows = self._read(
            "SELECT body FROM alert_states WHERE (?1 IS NULL OR source = ?1) ORDER BY source, fingerprint",
            (source,),
        )
        return _decode(AlertState, rows)

    def transitions(
        self,
        source: str,
        *,
        table: str | None = None,
        fingerprint: str | None = None,
        as_of: datetime | None = None,
        limit: int = 100,
    ) -> list[Transition]:
        rows = self._read(
            "SELECT body FROM transitions WHERE source = ?1 AND (?2 IS NULL OR table_name = ?2)"
            " AND (?3 IS NULL OR fingerprint = ?3) AND at_us <= ?4 ORDER BY at_us DESC, id DESC LIMIT ?5",
            (source, table, fingerprint, _upper_bound(as_of), limit),
        )
        return _decode(Transition, rows)

    def fits(self, source: str) -> dict[str, dict[str, Any]]:
        rows = self._read("SELECT fingerprint, body FROM fits WHERE source = ?", (source,))
        fits = {fingerprint: fit_of(body) for fingerprint, body in rows}
        return {fingerprint: fit for fingerprint, fit in fits.items() if fit is not None}

    # ------------------------------------------------------------------ schema baselines
    def schema_baselines(self, source: str) -> dict[str, SchemaBaseline]:
        rows = self._read("SELECT body FROM schema_baselines WHERE source = ?", (source,))
        return {b.table: b for b in _decode(SchemaBaseline, rows)}

    def put_schema_baseline(self, baseline: SchemaBaseline) -> None:
        with self._write() as db:
            db.execute(
                "INSERT OR REPLACE INTO schema_baselines (source, table_name, body) VALUES (?, ?, ?)",
                (baseline.source, baseline.table, _encode(baseline)),
            )

    # ------------------------------------------------------------------ silences
    def put_silence(self, silence: Silence) -> None:
        with self._write() as db:
            db.execute(
                "INSERT OR REPLACE INTO silences (id, starts_us, ends_us, body) VALUES (?, ?, ?, ?)",
                (silence.id, _micros(silence.starts_at), _micros(silence.ends_at), _encode(silence)),
            )

    def delete_silence(self, silence_id: str) -> bool:
        with self._write() as db:
            return db.execute("DELETE FROM silences WHERE id = ?", (silence_id,)).rowcount > 0

    def silences(self, *, active_at: datetime | None = None) -> list[Silence]:
        # Same rule as Silence.active: starts_at <= at < ends_at.
        at = None if active_at is None else _micros(active_at)
        rows = self._read(
            "SELECT body FROM silences WHERE (?1 IS NULL OR (starts_us <= ?1 AND ?1 < ends_us))"
            " ORDER BY starts_us, id",
            (at,),
        )
        return _decode(Silence, rows)

    # ------------------------------------------------------------------ the watchdog's registry
    def watched_since(self, sources: Sequence[str], at: datetime) -> dict[str, datetime]:
        wanted = set(sources)
        with self._write() as db:
            db.executemany(
                "INSERT OR IGNORE INTO watched (source, since_us) VALUES (?, ?)",
                [(name, _micros(at)) for name in sorted(wanted)],
            )
            rows = db.execute("SELECT source, since_us FROM watched").fetchall()
        return {name: _from_micros(since) for name, since in rows if name in wanted}

    # ------------------------------------------------------------------ notifications
    def pending_notifications(self, source: str | None = None) -> list[Notification]:
        rows = self._read(
            "SELECT body FROM outbox WHERE (?1 IS NULL OR source = ?1)"
            " AND NOT EXISTS (SELECT 1 FROM deliveries WHERE notification_id = outbox.id)"
            " ORDER BY created_us, seq",
            (source,),
        )
        return _decode(Notification, rows)

    def record_delivery(self, record: DeliveryRecord) -> None:
        with self._write() as db:
            row = db.execute(
                "SELECT status FROM deliveries WHERE notification_id = ?", (record.notification_id,)
            ).fetchone()
            if not ledger.may_record(DeliveryStatus(row[0]) if row else None, record.status):
                return
            if record.status is DeliveryStatus.FAILED and record.notification is None:
                # A parked delivery must be replayable, so keep the message even if the caller did not.
                row = db.execute("SELECT body FROM outbox WHERE id = ?", (record.notification_id,)).fetchone()
                if row:
                    notification = Notification.model_validate_json(row[0])
                    record = record.model_copy(update={"notification": notification})
            db.execute(
                "INSERT OR REPLACE INTO deliveries (notification_id, status, at_us, body)"
                " VALUES (?, ?, ?, ?)",
                (record.notification_id, record.status.value, _micros(record.at), _encode(record)),
            )
            db.execute(
                "UPDATE outbox SET claimer = NULL, claimed_until_us = NULL WHERE id = ?",
                (record.notification_id,),
            )

    def claim_delivery(self, notification_id: str, request: ledger.ClaimRequest) -> ledger.Claim:
        # BEGIN IMMEDIATE holds every other writer, in this process or another, until the claim is
        # written: the read and the write cannot interleave with another claim.
        with self._write() as db:
            outbox = db.execute(
                "SELECT body, claimer, claimed_until_us FROM outbox WHERE id = ?", (notification_id,)
            ).fetchone()
            done = db.execute(
                "SELECT body FROM deliveries WHERE notification_id = ?", (notification_id,)
            ).fetchone()
            record = DeliveryRecord.model_validate_json(done[0]) if done else None
            entry = ledger.Entry(
                exists=outbox is not None or record is not None,
                status=record.status if record else None,
                claimer=outbox[1] if outbox else None,
                claimed_until=_from_micros(outbox[2]) if outbox and outbox[2] is not None else None,
            )
            verdict = ledger.decide(entry, request)
            if verdict is not ledger.Verdict.SEND:
                return ledger.Claim(verdict, record=record, holder=entry.claimer)
            if outbox is None:  # a parked record whose outbox entry is gone has nothing to claim
                return ledger.Claim(ledger.Verdict.UNKNOWN, record=record)
            db.execute(
                "UPDATE outbox SET claimer = ?, claimed_until_us = ? WHERE id = ?",
                (request.claimer, _micros(request.until), notification_id),
            )
            notification = Notification.model_validate_json(outbox[0])
            return ledger.Claim(verdict, notification=notification, record=record)

    def release_delivery(self, notification_id: str, claimer: str) -> None:
        with self._write() as db:
            db.execute(
                "UPDATE outbox SET claimer = NULL, claimed_until_us = NULL WHERE id = ? AND claimer = ?",
                (notification_id, claimer),
            )

    def delivery_backlog(self) -> DeliveryBacklog:
        rows = self._read(
            "SELECT body, claimer, claimed_until_us FROM outbox"
            " WHERE NOT EXISTS (SELECT 1 FROM deliveries WHERE notification_id = outbox.id)"
            " ORDER BY created_us, seq",
            (),
        )
        pending = [
            PendingDelivery(
                Notification.model_validate_json(body),
                claimer,
                _from_micros(until) if until is not None else None,
            )
            for body, claimer, until in rows
        ]
        return DeliveryBacklog(pending=pending, parked=self.failed_deliveries())

    def delivery(self, notification_id: str) -> DeliveryRecord | None:
        rows = self._read("SELECT body FROM deliveries WHERE notification_id = ?", (notification_id,))
        return next(iter(_decode(DeliveryRecord, rows)), None)

    def failed_deliveries(self) -> list[DeliveryRecord]:
        rows = self._read(
            "SELECT body FROM deliveries WHERE status = ? ORDER BY at_us, notification_id",
            (DeliveryStatus.FAILED.value,),
        )
        return _decode(DeliveryRecord, rows)

    # ------------------------------------------------------------------ grouped notices
    def pending_groups(self) -> list[PendingGroup]:
        with self._lock:  # one read: the notices and their groups' versions as of one moment
            try:
                rows = self._conn.execute(
                    "SELECT w.group_key, w.body, g.version, g.last_notified_us FROM grouped w"
                    " LEFT JOIN groups g ON g.group_key = w.group_key"
                    " WHERE w.sealed = 0 ORDER BY w.group_key, w.created_us, w.id"
                ).fetchall()
            except sqlite3.Error as e:
                raise state_fault(self.path, e) from None
        groups: dict[str, PendingGroup] = {}
        for key, body, version, last_us in rows:
            if key not in groups:
                last = None if last_us is None else _from_micros(last_us)
                groups[key] = PendingGroup(key, [], last, version or 0)
            groups[key].parts.append(GroupedNotice.model_validate_json(body))
        return list(groups.values())

    def seal_group(self, group: PendingGroup, merged: Notification) -> bool:
        try:
            with self._write() as db:
                row = db.execute("SELECT version FROM groups WHERE group_key = ?", (group.key,)).fetchone()
                if (row[0] if row else 0) != group.version:
                    raise _GroupMoved
                if db.execute("SELECT 1 FROM outbox WHERE id = ?", (merged.id,)).fetchone():
                    raise _GroupMoved
                for part in group.parts:
                    sealed = db.execute(
                        "UPDATE grouped SET sealed = 1 WHERE id = ? AND sealed = 0", (part.id,)
                    ).rowcount
                    if sealed != 1:
                        raise _GroupMoved
                db.execute(
                    "INSERT INTO outbox (id, source, created_us, body) VALUES (?, ?, ?, ?)",
                    (merged.id, merged.source, _micros(merged.created_at), _encode(merged)),
                )
                db.execute(
                    "INSERT OR REPLACE INTO groups (group_key, version, last_notified_us) VALUES (?, ?, ?)",
                    (group.key, group.version + 1, _micros(merged.run_time)),
                )
        except _GroupMoved:
            return False
        return True


class _GroupMoved(Exception):
    """Another flusher sealed the group since it was read: the seal's transaction is rolled back."""
