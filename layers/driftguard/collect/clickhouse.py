"""ClickHouse through clickhouse-driver's native protocol, as a small SQLAlchemy 2 dialect.

Neither well-known ClickHouse dialect fits: clickhouse-sqlalchemy requires SQLAlchemy < 2.1, and
clickhouse-connect's HTTP client sends settings that Debian's ClickHouse server (18.16) does not
know. clickhouse-driver talks to 18.16 and to current servers alike, but its own DB-API module opens
a new TCP connection for every cursor (so for every statement), which a pool cannot reuse. This
module therefore has two parts:

- a minimal DB-API 2.0 adapter (`connect`, `Connection`, `Cursor`, the PEP 249 exceptions) over one
  `clickhouse_driver.Client`, i.e. one TCP connection per DB-API connection. Every query carries
  the connection's settings: always `readonly=1` (no write, no DDL, and no SET or SETTINGS clause
  can lift the settings below), and `max_execution_time` once a session has set its statement
  timeout. Settings travel with each query rather than as a session SET because readonly=1
  forbids SET, so a SET could not follow it on a pooled connection.
- `ClickhouseDialect`: the SQL compiler DriftGuard's statements need (backtick identifiers, no
  boolean literals on old servers, LIMIT), catalog-free (DriftGuard reads system.columns itself,
  see `dialects.ClickhouseRules`), no transactions.

The session's setup statement (`session_setup`) carries the session's statement timeout as an
execution option; the dialect stores it on the DB-API connection, which from then on sends it with
every query and lets socket reads wait a little longer than it (the server's own timeout, a clean
error, comes first). The statement reads the settings back from system.settings and refuses the
session if the server did not apply them.

Values of DateTime columns come back as aware UTC datetimes, whatever the server's or this
process's time zone: the driver returns naive wall-clock times in the server's zone for a DateTime
without a zone of its own, which the adapter localises before converting. On a server whose zone
has summer time, a value in the hour that repeats when it ends reads as the first of the two (an
hour early at most, one hour a year; a server in UTC has none). Period buckets and their latest
times do not take this path: SQL turns them into epoch seconds. A statement timeout is sent in
whole seconds (rounded up), as max_execution_time takes them on older servers.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.engine import default
from sqlalchemy.sql import compiler

# PEP 249 module globals (SQLAlchemy reads them from `import_dbapi()`'s result).
apilevel = "2.0"
threadsafety = 1  # connections may not be shared between threads (a pool hands one to one thread)
paramstyle = "pyformat"  # clickhouse-driver substitutes %(name)s client-side, escaping each value

SESSION_OPTION = "driftguard_clickhouse_session"  # execution option: the settings of a session
SOCKET_GRACE = timedelta(seconds=10)  # socket reads wait this much past the server's timeout


class Error(Exception):
    """A ClickHouse error: `code` is ClickHouse's error code (e.g. 159 timeout, 60 unknown table,
    164 readonly, 210 network), `message` its first line."""

    def __init__(self, message: str, code: int | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class InterfaceError(Error):
    pass


class DatabaseError(Error):
    pass


class DataError(DatabaseError):
    pass


class OperationalError(DatabaseError):
    pass


class IntegrityError(DatabaseError):
    pass


class InternalError(DatabaseError):
    pass


class ProgrammingError(DatabaseError):
    pass


class NotSupportedError(DatabaseError):
    pass


class SettingsRefused(DatabaseError):
    """The server did not apply the read-only mode or the statement timeout a session asked for."""


_REFUSED = (
    "the server does not apply DriftGuard's per-query settings (readonly=1, max_execution_time), so "
    "the statement timeout would not hold: {detail}. Give the user a settings profile that allows "
    "changing settings (readonly=0; DriftGuard sends readonly=1 with every query itself)"
)

# clickhouse-driver's client-side error codes: read after EOF, socket timeout, refused or lost connection
NETWORK_CODES = frozenset({32, 209, 210})


def _wrapped(error: Exception) -> Error:
    """A clickhouse-driver (or socket) error as a PEP 249 error with ClickHouse's code and the first
    line of the server's message (without its stack trace)."""
    code = getattr(error, "code", None)
    text = str(getattr(error, "message", None) or error)
    text = text.split("Stack trace:", 1)[0].strip()
    first = " ".join(line.strip() for line in text.splitlines() if line.strip())
    first = re.sub(r"^DB::Exception:\s*", "", first).rstrip(". ")
    if isinstance(error, OSError | EOFError) or code in NETWORK_CODES:
        return OperationalError(first or type(error).__name__, code if isinstance(code, int) else 210)
    return DatabaseError(first, code if isinstance(code, int) else None)


class Connection:
    """One TCP connection to a ClickHouse server (clickhouse_driver.Client connects on demand)."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self.settings: dict[str, Any] = {"readonly": 1}
        self._server_zone: ZoneInfo | None = None

    def set_statement_timeout(self, timeout: timedelta) -> None:
        """Bound every later query of this connection on the server, and its socket reads a little
        past that."""
        self.settings = {"readonly": 1, "max_execution_time": max(1, math.ceil(timeout.total_seconds()))}
        read_seconds = (timeout + SOCKET_GRACE).total_seconds()
        connection = self._client.connection
        connection.send_receive_timeout = read_seconds
        if getattr(connection, "connected", False) and connection.socket is not None:
            connection.socket.settimeout(read_seconds)

    def server_zone(self) -> ZoneInfo:
        if self._server_zone is None:
            info = self._client.connection.server_info
            name = info.get_timezone() if info is not None else None
            self._server_zone = ZoneInfo(name or "UTC")
        return self._server_zone

    def execute(self, query: str, params: Mapping[str, Any] | None) -> tuple[list[Any], list[Any]]:
        try:
            rows, columns = self._client.execute(
                query, params, with_column_types=True, settings=dict(self.settings)
            )
        except Exception as e:  # the driver's errors, and socket errors it lets through
            raise _wrapped(e) from e
        return rows, columns

    def cursor(self) -> Cursor:
        return Cursor(self)

    def commit(self) -> None:
        """ClickHouse has no transactions; nothing was written."""

    def rollback(self) -> None:
        """ClickHouse has no transactions; nothing to undo."""

    def close(self) -> None:
        self._client.disconnect()


def connect(
    *,
    host: str = "localhost",
    port: int = 9000,
    user: str = "default",
    password: str = "",
    database: str = "default",
    connect_timeout: float = 10.0,
    secure: bool = False,
    ca_certs: str | None = None,
    verify: bool = True,
) -> Connection:
    """Open one connection (eagerly, so a refused connection or a wrong password fails here)."""
    try:
        from clickhouse_driver import Client
    except ImportError as e:  # connect.lease_pool names the extra before this can happen
        raise InterfaceError(f"clickhouse-driver is not installed: {e}") from e
    client = Client(
        host=host,
        port=port,
        user=user,
        password=password,
        database=database,
        connect_timeout=connect_timeout,
        send_receive_timeout=connect_timeout,
        sync_request_timeout=connect_timeout,
        secure=secure,
        ca_certs=ca_certs,
        verify=verify,
        client_name="driftguard",
        settings={"readonly": 1},
    )
    connection = Connection(client)
    try:
        client.connection.connect()
    except Exception as e:
        client.disconnect()
        error = _wrapped(e)
        if error.code == 209:  # the server did not answer in time: unreachable, not a slow query
            error = OperationalError(error.message, 210)
        raise error from e
    return connection


def _is_datetime_type(type_name: str) -> bool:
    return "DateTime" in type_name and not type_name.startswith(("Array(", "Tuple(", "Map("))


class Cursor:
    """A result held in memory (clickhouse-driver reads a result whole; DriftGuard's statements
    return aggregates or are bounded by LIMIT)."""

    arraysize = 500

    def __init__(self, connection: Connection) -> None:
        self.connection = connection
        self.description: list[tuple[Any, ...]] | None = None
        self.rowcount = -1
        self._rows: list[Sequence[Any]] = []
        self._next = 0

    def execute(self, operation: str, parameters: Any = None) -> None:
        # SQLAlchemy passes a dict (pyformat; possibly empty, '%' then arrives as '%%'), or nothing
        # for SQL text run as written. The driver would take a list or tuple for INSERT data.
        params = dict(parameters) if isinstance(parameters, Mapping) else None
        if parameters is not None and not isinstance(parameters, Mapping) and len(parameters) > 0:
            raise ProgrammingError("clickhouse: positional parameters are not supported (pyformat only)")
        rows, columns = self.connection.execute(operation, params)
        # None for a statement without a result set (PEP 249), so SQLAlchemy sees no rows to read
        self.description = [
            (name, type_name, None, None, None, None, None) for name, type_name in columns
        ] or None
        zoned = [i for i, (_, type_name) in enumerate(columns) if _is_datetime_type(type_name)]
        if zoned and rows:
            rows = [self._in_utc(row, zoned) for row in rows]
        self._rows = rows
        self._next = 0
        self.rowcount = len(rows)

    def _in_utc(self, row: Sequence[Any], indexes: list[int]) -> tuple[Any, ...]:
        values = list(row)
        for i in indexes:
            value = values[i]
            if isinstance(value, datetime):
                if value.tzinfo is None:  # a wall-clock time in the server's zone
                    value = value.replace(tzinfo=self.connection.server_zone())
                values[i] = value.astimezone(UTC)
        return tuple(values)

    def executemany(self, operation: str, seq_of_parameters: Sequence[Any]) -> None:
        raise NotSupportedError("clickhouse: executemany is not supported (DriftGuard only reads)")

    def fetchone(self) -> Sequence[Any] | None:
        if self._next >= len(self._rows):
            return None
        row = self._rows[self._next]
        self._next += 1
        return row

    def fetchmany(self, size: int | None = None) -> list[Sequence[Any]]:
        size = self.arraysize if size is None else size
        rows = self._rows[self._next : self._next + size]
        self._next += len(rows)
        return rows

    def fetchall(self) -> list[Sequence[Any]]:
        rows = self._rows[self._next :]
        self._next = len(self._rows)
        return rows

    def close(self) -> None:
        self._rows = []

    def setinputsizes(self, sizes: Any) -> None:
        pass

    def setoutputsize(self, size: Any, column: Any = None) -> None:
        pass


# --------------------------------------------------------------------------- the SQLAlchemy dialect


class ClickhouseIdentifierPreparer(compiler.IdentifierPreparer):
    def __init__(
        self,
        dialect: sa.Dialect,
        initial_quote: str = "`",
        final_quote: str | None = None,
        escape_quote: str = "`",
        quote_case_sensitive_collations: bool = True,
        omit_schema: bool = False,
    ) -> None:
        # Backticks; a backtick inside a name is doubled (ClickHouse also reads \`).
        super().__init__(
            dialect, initial_quote, final_quote, escape_quote, quote_case_sensitive_collations, omit_schema
        )

    def _requires_quotes(self, value: str) -> bool:
        # Identifiers are case-sensitive and keywords are context-dependent in ClickHouse: quote all.
        return True


class ClickhouseCompiler(compiler.SQLCompiler):
    def limit_clause(self, select: Any, **kw: Any) -> str:
        text = ""
        if select._limit_clause is not None and select._offset_clause is not None:
            offset = self.process(select._offset_clause, **kw)
            text += f"\n LIMIT {offset}, {self.process(select._limit_clause, **kw)}"
        elif select._limit_clause is not None:
            text += "\n LIMIT " + self.process(select._limit_clause, **kw)
        elif select._offset_clause is not None:
            raise sa.exc.CompileError("clickhouse: OFFSET needs a LIMIT")
        return text

    # Over no rows ClickHouse's aggregates return their type's default (max of a DateTime is 1970,
    # min of a String '', avg nan) where SQL returns NULL; over a Nullable argument they return NULL.
    # So their arguments are made Nullable, and count(DISTINCT) of a Nullable (NULL over no rows)
    # is made 0 again.
    def _over_nullable(self, fn: Any, **kw: Any) -> str:
        args = ", ".join(f"toNullable({self.process(arg, **kw)})" for arg in fn.clauses)
        return f"{fn.name}({args})"

    visit_max_func = _over_nullable
    visit_min_func = _over_nullable
    visit_avg_func = _over_nullable
    visit_sum_func = _over_nullable

    def visit_count_func(self, fn: Any, **kw: Any) -> str:
        spec = self.function_argspec(fn, **kw)
        text = f"count{spec}"
        return f"ifNull({text}, 0)" if spec.lstrip("(").startswith("DISTINCT ") else text

    def visit_true(self, expr: Any, **kw: Any) -> str:
        return "1"

    def visit_false(self, expr: Any, **kw: Any) -> str:
        return "0"


class ClickhouseExecutionContext(default.DefaultExecutionContext):
    pass


class ClickhouseDialect(default.DefaultDialect):
    name = "clickhouse"
    driver = "native"
    supports_statement_cache = True
    supports_native_boolean = False
    supports_sane_rowcount = False
    supports_sane_multi_rowcount = False
    supports_native_decimal = True
    supports_alter = False
    supports_sequences = False
    postfetch_lastrowid = False
    implicit_returning = False
    default_paramstyle = "pyformat"
    preparer = ClickhouseIdentifierPreparer
    statement_compiler = ClickhouseCompiler
    execution_ctx_cls = ClickhouseExecutionContext
    max_identifier_length = 255

    # A refused or lost connection (after a socket timeout the driver reconnects by itself, and
    # the error stays a timeout)
    _DISCONNECT_CODES: ClassVar[frozenset[int]] = frozenset({32, 210})

    @classmethod
    def import_dbapi(cls) -> Any:
        import driftguard.collect.clickhouse as module

        return module

    def create_connect_args(self, url: sa.URL) -> tuple[list[Any], dict[str, Any]]:
        kwargs: dict[str, Any] = {
            "host": url.host or "localhost",
            "port": url.port or 9000,
            "user": url.username or "default",
            "password": url.password or "",
            "database": url.database or "default",
        }
        return [], kwargs

    def _get_server_version_info(self, connection: Any) -> tuple[int, ...]:
        version = str(connection.exec_driver_sql("SELECT version()").scalar())
        return tuple(int(p) for p in re.findall(r"\d+", version)[:4])

    def _get_default_schema_name(self, connection: Any) -> str:
        return str(connection.exec_driver_sql("SELECT currentDatabase()").scalar())

    def do_begin(self, dbapi_connection: Any) -> None:
        pass

    def do_commit(self, dbapi_connection: Any) -> None:
        pass

    def do_rollback(self, dbapi_connection: Any) -> None:
        pass

    def do_execute(self, cursor: Any, statement: str, parameters: Any, context: Any = None) -> None:
        timeout = context.execution_options.get(SESSION_OPTION) if context is not None else None
        if timeout is None:
            cursor.execute(statement, parameters)
            return
        cursor.connection.set_statement_timeout(timeout)
        try:
            cursor.execute(statement, parameters)
        except Error as e:
            if e.code == 164:  # READONLY: the user's profile forbids changing settings
                raise SettingsRefused(_REFUSED.format(detail=e.message)) from e
            raise
        wanted = {k: str(v) for k, v in cursor.connection.settings.items()}
        effective = {str(name): str(value) for name, value in cursor.fetchall()}
        if effective != wanted:
            detail = f"asked for {wanted}, the server applied {effective}"
            raise SettingsRefused(_REFUSED.format(detail=detail))

    def do_execute_no_params(self, cursor: Any, statement: str, context: Any = None) -> None:
        cursor.execute(statement)

    def is_disconnect(self, e: Any, connection: Any, cursor: Any) -> bool:
        return isinstance(e, Error) and e.code in self._DISCONNECT_CODES


def session_setup(timeout: timedelta) -> sa.Executable:
    """The statement that bounds every later query of the session by `timeout` (on the server,
    max_execution_time; readonly=1 travels with every query from the connection's start). It reads
    the settings back: a server may ignore a query's settings (ClickHouse 18.16 does for a user
    whose profile is readonly=1), and a session whose timeout is not in force is refused."""
    return sa.text(
        "SELECT name, value FROM system.settings WHERE name IN ('readonly', 'max_execution_time')"
    ).execution_options(**{SESSION_OPTION: timeout})
