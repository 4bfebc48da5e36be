"""One connection to one source, made safe once and then used for every table.

Opening a session runs one setup statement that makes every later transaction read-only
(PostgreSQL default_transaction_read_only, MySQL/MariaDB session transaction_read_only /
tx_read_only; SQLite is opened with mode=ro and PRAGMA query_only, DuckDB with read_only=True),
bounds every statement (statement_timeout, max_statement_time / max_execution_time, for SQLite a
progress handler that aborts past the deadline, while rows are fetched too: SQLite produces rows as
they are read; for DuckDB, which computes a result before handing it over, a timer that interrupts
the connection) and reads times in UTC. The connection runs in autocommit, so a metric query is one
round trip inside its own implicitly read-only transaction; custom SQL additionally runs inside an
explicit read-only transaction that is rolled back.

Every statement goes through `execute`, which counts round trips and turns driver errors into
the typed errors of driftguard.errors, classified by SQLSTATE / errno / SQLite result code.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import sqlalchemy as sa

from driftguard.collect.connect import bound_socket_reads
from driftguard.collect.dialects import DialectRules, rules_for
from driftguard.errors import (
    CheckDefinitionError,
    ConfigError,
    DriftGuardError,
    ErrorKind,
    PermissionDenied,
    QueryTimeout,
    SecretError,
    SourceUnavailable,
)

ERROR_TYPES: dict[ErrorKind, type[DriftGuardError]] = {
    ErrorKind.UNAVAILABLE: SourceUnavailable,
    ErrorKind.TIMEOUT: QueryTimeout,
    ErrorKind.PERMISSION: PermissionDenied,
    ErrorKind.DEFINITION: CheckDefinitionError,
    ErrorKind.CONFIG: ConfigError,
    ErrorKind.SECRET: SecretError,
}
SQLITE_PROGRESS_STEPS = 1000  # SQLite VM instructions between deadline checks
FETCH_BATCH = 500  # rows per fetchmany: bounded memory, few driver calls


def typed_error(kind: ErrorKind, message: str) -> DriftGuardError:
    error_type = ERROR_TYPES.get(kind)
    if error_type is None:
        error = DriftGuardError(message)
        error.kind = kind
        return error
    return error_type(message)


class SourceSession:
    """A read-only, time-bounded connection. `round_trips` counts every statement sent;
    `setup_round_trips` the part spent preparing the session."""

    def __init__(self, source_name: str, engine: sa.Engine, statement_timeout: timedelta) -> None:
        self.source_name = source_name
        self.statement_timeout = statement_timeout
        self.round_trips = 0
        self.setup_round_trips = 0
        self._deadline = float("inf")
        try:
            self._connection = engine.connect()
        except sa.exc.DBAPIError as e:
            raise self._translate(e, where=f"source {source_name}", rules=rules_for(engine.dialect)) from e
        except sa.exc.TimeoutError as e:  # the pool is exhausted
            raise SourceUnavailable(
                f"source {source_name}: every connection its database server allows "
                "(connection.max_connections) stayed busy with other checks too long; raise it, or "
                "run fewer checks at once"
            ) from e
        except OSError as e:  # a socket error the driver did not wrap
            raise SourceUnavailable(f"source {source_name}: cannot connect: {e}") from e
        except sa.exc.SQLAlchemyError as e:  # e.g. a pooled connection the server closed meanwhile
            raise SourceUnavailable(f"source {source_name}: cannot connect: {e}") from e
        self.rules: DialectRules = rules_for(self._connection.dialect)
        raw = self._connection.connection.dbapi_connection
        assert raw is not None
        if self.rules.name == "sqlite":
            raw.set_progress_handler(self._past_deadline, SQLITE_PROGRESS_STEPS)
        else:
            bound_socket_reads(raw, statement_timeout)
        try:
            self.execute(self.rules.setup_statement(statement_timeout), where=f"source {source_name}")
        except DriftGuardError:
            self.close()
            raise
        self.setup_round_trips = self.round_trips

    def _past_deadline(self) -> int:
        return 1 if time.monotonic() > self._deadline else 0

    def execute(self, statement: sa.Executable, *, where: str) -> sa.CursorResult[Any]:
        """Run one statement; `where` ("source s, table t") starts any error message."""
        return self._run(lambda: self._connection.execute(statement), where)

    def execute_text(self, sql: str, *, where: str) -> sa.CursorResult[Any]:
        """Run SQL text as written (no bind parameters, so '%' and ':' keep their meaning)."""
        options = {"no_parameters": True}
        return self._run(lambda: self._connection.exec_driver_sql(sql, execution_options=options), where)

    def read_rows(
        self, sql: str, *, limit: int, where: str
    ) -> tuple[list[str] | None, list[Sequence[Any]], bool]:
        """(columns, at most `limit` rows, whether more rows were left unread) of SQL text; the
        columns are None when the statement returns no result set. Rows are fetched in batches, so
        memory stays bounded whatever the result's size; the deadline covers the fetching."""
        result = self.execute_text(sql, where=where)
        if not result.returns_rows:
            return None, [], False
        columns = list(result.keys())
        rows: list[Sequence[Any]] = []
        truncated = False
        try:
            while len(rows) < limit:
                batch = result.fetchmany(min(FETCH_BATCH, limit - len(rows)))
                if not batch:
                    break
                rows.extend(batch)
            truncated = len(rows) >= limit and result.fetchone() is not None
        except sa.exc.DBAPIError as e:
            raise self._translate(e, where=where, rules=self.rules) from e
        finally:
            result.close()  # the unread rest is discarded (pg8000/PyMySQL have read it; SQLite stops)
        return columns, rows, truncated

    def _run(self, send: Any, where: str) -> sa.CursorResult[Any]:
        """Send one statement. Its deadline stays set until the next statement, so that SQLite,
        which computes rows as they are fetched, is interrupted while fetching too."""
        self.round_trips += 1
        self._deadline = time.monotonic() + self.statement_timeout.total_seconds()
        watchdog = self._interrupt_at_deadline()
        try:
            result: sa.CursorResult[Any] = send()
            return result
        except sa.exc.DBAPIError as e:
            if self.rules.begin_read_only is None and not e.connection_invalidated:
                self._connection.rollback()  # the failed statement aborted the driver's transaction
            raise self._translate(e, where=where, rules=self.rules) from e
        except OSError as e:  # pg8000 can let a reset socket's error through unwrapped
            self._connection.invalidate()
            raise SourceUnavailable(f"{where}: the connection was lost: {e}") from e
        except sa.exc.SQLAlchemyError as e:
            # e.g. PendingRollbackError: an earlier statement lost the connection inside a transaction
            raise SourceUnavailable(f"{where}: the connection is no longer usable: {e}") from e
        finally:
            if watchdog is not None:
                watchdog.cancel()

    def _interrupt_at_deadline(self) -> threading.Timer | None:
        """For an engine without a statement timeout of its own (DuckDB): interrupt the connection
        when the statement outlives the timeout; the driver then raises its interrupt error."""
        if not self.rules.interrupts:
            return None
        raw = self._connection.connection.dbapi_connection
        assert raw is not None
        timer = threading.Timer(self.statement_timeout.total_seconds(), raw.interrupt)
        timer.daemon = True
        timer.start()
        return timer

    @contextmanager
    def read_only_transaction(self, *, where: str) -> Iterator[None]:
        """An explicit read-only transaction, always rolled back (undoing any SET it contained)."""
        if self.rules.begin_read_only is None:
            try:
                yield
            finally:
                self._connection.rollback()
            return
        self.execute_text(self.rules.begin_read_only, where=where)
        try:
            yield
        finally:
            self.execute_text("ROLLBACK", where=where)

    def _translate(self, error: sa.exc.DBAPIError, *, where: str, rules: DialectRules) -> DriftGuardError:
        driver_error = error.orig
        kind = (
            rules.error_kind(driver_error) if isinstance(driver_error, BaseException) else ErrorKind.INTERNAL
        )
        if error.connection_invalidated and kind not in (ErrorKind.PERMISSION, ErrorKind.CONFIG):
            kind = ErrorKind.UNAVAILABLE
        text = rules.error_text(driver_error) if isinstance(driver_error, BaseException) else str(error)
        if kind == ErrorKind.TIMEOUT:
            text += f"; the statement timeout is {self.statement_timeout.total_seconds():g}s"
        return typed_error(kind, f"{where}: {text}")

    def close(self) -> None:
        self._deadline = float("inf")
        if self.rules.name == "sqlite" and not (self._connection.closed or self._connection.invalidated):
            raw = self._connection.connection.dbapi_connection
            if raw is not None:
                raw.set_progress_handler(None, 0)  # the pooled connection outlives this session
        self._connection.close()
