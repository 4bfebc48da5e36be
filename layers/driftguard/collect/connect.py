"""Building the connection URL of a source, and the one connection pool per database server.

Passwords come from `connection.password_env` (environment) or `connection.password_secret`
(Secrets Manager; an RDS-style JSON secret may also supply username, host, port and dbname
where the config leaves them out). URLs are built with `sqlalchemy.URL.create`, never by
string formatting, so a password or path with '@', '/' or '%' cannot change their meaning.

A monitor must never be what exhausts a database's connections. All sources on one server
(kind, host, port, database, user) share one pool of at most `connection.max_connections`
connections (sources on one server must agree on it; `Config` checks that). A source leases the
pool for as long as it is checked (`lease_pool`); a session waits for a free connection (at most
`POOL_WAIT`) rather than opening another; when the last lease of a server ends, its connections are
closed, so neither a long local run nor a warm Lambda container keeps idle connections open. With
`--workers N` the process holds at most min(N, the sum of the budgets) connections, since a check
holds one connection at a time.

A SQLite or DuckDB file is its own server. A DuckDB file's engine is not pooled (a connection
opens per check and closes with it): an open read-only handle would keep the file's writer out.

The statement timeout belongs to a session, not to the pool (sources sharing a server may set
different ones): `bound_socket_reads` sets the client-side read timeout on each checkout.

`connection.options` accepted per kind (anything else is a ConfigError naming the option):
  postgres: application_name; sslmode (disable | require | verify-full); sslrootcert (CA file);
            ssl ('true' = sslmode verify-full); tcp_keepalive ('true' | 'false')
  mysql:    charset; ssl ('true'); ssl_ca (CA file); ssl_verify_cert, ssl_verify_identity ('true' | 'false')
  sqlite:   none
  duckdb:   none (the duckdb extra: pip install 'driftguard[duckdb]')
  clickhouse: secure ('true': TLS, port 9440 by default on servers); ca_certs (CA file);
            verify ('true' | 'false') (the clickhouse extra: pip install 'driftguard[clickhouse]';
            native protocol, port 9000; every query carries readonly=1 and max_execution_time)
"""

from __future__ import annotations

import hashlib
import importlib.util
import ssl
import threading
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import registry

from driftguard.config import Source
from driftguard.errors import ConfigError, SecretError
from driftguard.secrets import SecretResolver

DRIVERS = {
    "postgres": "postgresql+pg8000",
    "mysql": "mysql+pymysql",
    "sqlite": "sqlite",
    "duckdb": "duckdb",
    "clickhouse": "clickhouse+native",
}
SUPPORTED_OPTIONS = {
    "postgres": ("application_name", "sslmode", "sslrootcert", "ssl", "tcp_keepalive"),
    "mysql": ("charset", "ssl", "ssl_ca", "ssl_verify_cert", "ssl_verify_identity"),
    "sqlite": (),
    "duckdb": (),
    "clickhouse": ("secure", "ca_certs", "verify"),
}
# A client-side read timeout longer than the server's statement timeout, so the server's own
# cancellation (a clean, classified error) happens first and the socket one is only a backstop.
SOCKET_GRACE = timedelta(seconds=10)
# How long a check waits for one of its server's connections before failing as unavailable: long
# enough for the other checks on the server to finish their statements (each bounded by its timeout).
POOL_WAIT = timedelta(minutes=10)
POOL_SETTINGS: dict[str, Any] = {
    "max_overflow": 0,
    "pool_timeout": POOL_WAIT.total_seconds(),
    "pool_pre_ping": True,
    "pool_recycle": 1800,
}


@dataclass(frozen=True)
class Credentials:
    user: str | None
    password: str | None
    host: str | None
    port: int | None
    database: str | None


def resolve_credentials(source: Source, resolver: SecretResolver) -> Credentials:
    """The connection's user/password/host/port/database, with secret fields as fallbacks."""
    conn = source.connection
    what = f"source {source.name}, connection.password_env"
    password: str | None = None
    from_secret: dict[str, Any] = {}
    if conn.password_env:
        try:
            password = resolver.resolve(env=conn.password_env, secret=None, what=what)
        except SecretError:
            if not conn.password_secret:
                raise
    if password is None and conn.password_secret:
        try:
            from_secret = resolver.database_secret(conn.password_secret)
        except SecretError as e:
            raise SecretError(f"source {source.name}, connection.password_secret: {e}") from None
        if "password" not in from_secret:
            raise SecretError(
                f"source {source.name}: secret {conn.password_secret!r} has no 'password' key; store a plain "
                "password or JSON with password (and optionally username, host, port, dbname)"
            )
        password = str(from_secret["password"])
    port = conn.port or from_secret.get("port") or source.default_port
    return Credentials(
        user=conn.user or from_secret.get("username"),
        password=password,
        host=conn.host or from_secret.get("host"),
        port=int(port) if port is not None else None,
        database=conn.database or from_secret.get("dbname"),
    )


def build_url(source: Source, credentials: Credentials) -> sa.URL:
    if source.kind == "sqlite":
        assert source.connection.path is not None  # guaranteed by the Source model
        # mode=ro: never create or write the file; as_uri() percent-encodes odd characters.
        uri = Path(source.connection.path).expanduser().resolve().as_uri()
        return sa.URL.create("sqlite", database=uri, query={"mode": "ro", "uri": "true"})
    if source.kind == "duckdb":
        assert source.connection.path is not None  # guaranteed by the Source model
        return sa.URL.create("duckdb", database=str(Path(source.connection.path).expanduser().resolve()))
    return sa.URL.create(
        DRIVERS[source.kind],
        username=credentials.user,
        password=credentials.password,
        host=credentials.host,
        port=credentials.port,
        database=credentials.database,
    )


def _flag(source: Source, key: str, value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in ("true", "1", "yes", "on"):
        return True
    if lowered in ("false", "0", "no", "off"):
        return False
    raise ConfigError(
        f"source {source.name}: connection.options.{key} must be 'true' or 'false', not {value!r}"
    )


def _postgres_ssl(source: Source, options: dict[str, str]) -> ssl.SSLContext | None:
    mode = options.get("sslmode") or (
        "verify-full" if _flag(source, "ssl", options.get("ssl", "false")) else None
    )
    if mode in (None, "disable"):
        return None
    if mode not in ("require", "verify-full"):
        raise ConfigError(
            f"source {source.name}: connection.options.sslmode {mode!r} is not supported; "
            "use disable, require or verify-full"
        )
    context = ssl.create_default_context(cafile=options.get("sslrootcert"))
    if mode == "require":  # encrypt without verifying the server, as libpq's sslmode=require
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def connect_args(source: Source) -> dict[str, Any]:
    """Driver keyword arguments: the connect timeout and the supported `connection.options`
    (read timeouts follow each session's statement timeout: `bound_socket_reads`)."""
    options = dict(source.connection.options)
    unknown = sorted(set(options) - set(SUPPORTED_OPTIONS[source.kind]))
    if unknown:
        supported = ", ".join(SUPPORTED_OPTIONS[source.kind]) or "(none)"
        raise ConfigError(
            f"source {source.name}: connection.options {', '.join(unknown)} not supported for {source.kind}; "
            f"supported: {supported}"
        )
    connect_seconds = source.connection.connect_timeout.total_seconds()
    if source.kind == "postgres":
        args: dict[str, Any] = {
            "timeout": connect_seconds,
            "application_name": options.get("application_name", "driftguard"),
        }
        if "tcp_keepalive" in options:
            args["tcp_keepalive"] = _flag(source, "tcp_keepalive", options["tcp_keepalive"])
        context = _postgres_ssl(source, options)
        if context is not None:
            args["ssl_context"] = context
        return args
    if source.kind == "mysql":
        args = {"connect_timeout": connect_seconds}
        if "charset" in options:
            args["charset"] = options["charset"]
        if "ssl_ca" in options or _flag(source, "ssl", options.get("ssl", "false")):
            args["ssl"] = {"ca": options["ssl_ca"]} if "ssl_ca" in options else {}
            for key in ("ssl_verify_cert", "ssl_verify_identity"):
                args[key] = _flag(source, key, options.get(key, "true"))
        return args
    if source.kind == "duckdb":
        return {"read_only": True}  # never create or write the file; writers are refused
    if source.kind == "clickhouse":
        args = {"connect_timeout": connect_seconds}
        if "secure" in options:
            args["secure"] = _flag(source, "secure", options["secure"])
        if "ca_certs" in options:
            args["ca_certs"] = options["ca_certs"]
        if "verify" in options:
            args["verify"] = _flag(source, "verify", options["verify"])
        return args
    return {"timeout": connect_seconds}  # sqlite: how long to wait on a locked database


def bound_socket_reads(dbapi_connection: Any, statement_timeout: timedelta) -> None:
    """Let this connection's reads wait a little past the server-side statement timeout, so the
    server's own cancellation (a clean, classified error) comes first and the socket's is a backstop.
    pg8000 applies its one `timeout` to connect and every read; PyMySQL keeps read/write timeouts
    it re-applies before each read and write. SQLite has no socket."""
    read_seconds = (statement_timeout + SOCKET_GRACE).total_seconds()
    sock = getattr(dbapi_connection, "_usock", None)  # pg8000
    if sock is not None:
        sock.settimeout(read_seconds)
    if hasattr(dbapi_connection, "_read_timeout"):  # PyMySQL
        dbapi_connection._read_timeout = read_seconds
        dbapi_connection._write_timeout = read_seconds


# kind -> (module, extra that installs it)
OPTIONAL_DRIVERS = {"duckdb": ("duckdb_engine", "duckdb"), "clickhouse": ("clickhouse_driver", "clickhouse")}
# ClickHouse's dialect is DriftGuard's own (collect.clickhouse), loaded only when a URL names it.
registry.register("clickhouse.native", "driftguard.collect.clickhouse", "ClickhouseDialect")


ServerKey = tuple[str, str | None, int | None, str | None, str | None]


@dataclass
class _ServerPool:
    engine: sa.Engine
    password_digest: str
    leases: int = 0


@dataclass
class PoolLease:
    """A source's share of its server's pool, from `lease_pool` until `release`."""

    engine: sa.Engine
    _pool: _ServerPool
    _key: ServerKey
    _released: bool = False

    def release(self) -> None:
        with _pools_lock:
            if self._released:
                return
            self._released = True
            self._pool.leases -= 1
            if self._pool.leases == 0:
                if _pools.get(self._key) is self._pool:
                    del _pools[self._key]
                self._pool.engine.dispose()  # the server's last check is done: close its connections


_pools: dict[ServerKey, _ServerPool] = {}
_pools_lock = threading.Lock()


def server_key(source: Source, credentials: Credentials) -> ServerKey:
    """What makes two sources one database server for the connection budget."""
    if source.kind in ("sqlite", "duckdb"):  # a file is its own server
        path = str(Path(source.connection.path or "").expanduser().resolve())
        return (source.kind, None, None, path, None)
    host = credentials.host.lower() if credentials.host else None
    return (source.kind, host, credentials.port, credentials.database, credentials.user)


def lease_pool(source: Source, *, resolver: SecretResolver) -> PoolLease:
    """A lease on the pool of `source`'s server (created on first use, closed with its last lease)."""
    if source.kind in OPTIONAL_DRIVERS:
        module, extra = OPTIONAL_DRIVERS[source.kind]
        if importlib.util.find_spec(module) is None:
            raise ConfigError(
                f"source {source.name}: a {source.kind} source needs {module}, which is not installed "
                f"here: pip install 'driftguard[{extra}]'"
            )
    credentials = resolve_credentials(source, resolver)
    url = build_url(source, credentials)
    password_digest = hashlib.sha256((credentials.password or "").encode()).hexdigest()
    key = server_key(source, credentials)
    with _pools_lock:
        pool = _pools.get(key)
        if pool is None or pool.password_digest != password_digest:
            # A rotated password gets a fresh pool; the old one closes when its leases end.
            engine = sa.create_engine(url, connect_args=connect_args(source), **_pooling(source))
            pool = _pools[key] = _ServerPool(engine, password_digest)
        pool.leases += 1
        return PoolLease(pool.engine, pool, key)


def _pooling(source: Source) -> dict[str, Any]:
    if source.kind == "clickhouse":  # no transactions, so no isolation level to set
        return {"pool_size": source.connection.max_connections, **POOL_SETTINGS}
    if source.kind == "duckdb":
        # Not pooled: an open read-only handle would keep the file's writer out between checks.
        # duckdb-engine has no isolation levels to set; a check still holds one connection at a time.
        return {"poolclass": sa.pool.NullPool}
    return {
        "isolation_level": "AUTOCOMMIT",  # transactions are explicit (see session)
        "pool_size": source.connection.max_connections,
        **POOL_SETTINGS,
    }


def open_pools() -> dict[ServerKey, sa.Engine]:
    """The pools currently open, by server (for diagnostics and tests)."""
    with _pools_lock:
        return {key: pool.engine for key, pool in _pools.items()}


def dispose_engines() -> None:
    """Close every pool (tests, shutdown). A lease still held keeps its engine, which opens
    connections again if used; its release then closes that engine alone."""
    with _pools_lock:
        for pool in _pools.values():
            pool.engine.dispose()
        _pools.clear()
