"""Building the connection URL and the engine of a source, and caching engines per process.

Passwords come from `connection.password_env` (environment) or `connection.password_secret`
(Secrets Manager; an RDS-style JSON secret may also supply username, host, port and dbname
where the config leaves them out). URLs are built with `sqlalchemy.URL.create`, never by
string formatting, so a password or path with '@', '/' or '%' cannot change their meaning.

Engines are cached for the life of the process, keyed by source name, the URL without its
password, a digest of the password (a rotated secret gets a fresh engine) and the settings that
shape the connection, so a warm Lambda container reuses its pool (small, pre-pinged).

`connection.options` accepted per kind (anything else is a ConfigError naming the option):
  postgres: application_name; sslmode (disable | require | verify-full); sslrootcert (CA file);
            ssl ('true' = sslmode verify-full); tcp_keepalive ('true' | 'false')
  mysql:    charset; ssl ('true'); ssl_ca (CA file); ssl_verify_cert, ssl_verify_identity ('true' | 'false')
  sqlite:   none
  duckdb:   none (the duckdb extra: pip install 'driftguard[duckdb]')
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

from driftguard.config import Source
from driftguard.errors import ConfigError, SecretError
from driftguard.secrets import SecretResolver

DRIVERS = {"postgres": "postgresql+pg8000", "mysql": "mysql+pymysql", "sqlite": "sqlite", "duckdb": "duckdb"}
SUPPORTED_OPTIONS = {
    "postgres": ("application_name", "sslmode", "sslrootcert", "ssl", "tcp_keepalive"),
    "mysql": ("charset", "ssl", "ssl_ca", "ssl_verify_cert", "ssl_verify_identity"),
    "sqlite": (),
    "duckdb": (),
}
# A client-side read timeout longer than the server's statement timeout, so the server's own
# cancellation (a clean, classified error) happens first and the socket one is only a backstop.
SOCKET_GRACE = timedelta(seconds=10)
POOL_SETTINGS: dict[str, Any] = {
    "pool_size": 1,
    "max_overflow": 1,
    "pool_pre_ping": True,
    "pool_recycle": 1800,
}

_engines: dict[tuple[object, ...], sa.Engine] = {}
_engines_lock = threading.Lock()


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


def connect_args(source: Source, statement_timeout: timedelta) -> dict[str, Any]:
    """Driver keyword arguments: timeouts and the supported `connection.options`."""
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
        read_seconds = (statement_timeout + SOCKET_GRACE).total_seconds()
        args = {
            "connect_timeout": connect_seconds,
            "read_timeout": read_seconds,
            "write_timeout": read_seconds,
        }
        if "charset" in options:
            args["charset"] = options["charset"]
        if "ssl_ca" in options or _flag(source, "ssl", options.get("ssl", "false")):
            args["ssl"] = {"ca": options["ssl_ca"]} if "ssl_ca" in options else {}
            for key in ("ssl_verify_cert", "ssl_verify_identity"):
                args[key] = _flag(source, key, options.get(key, "true"))
        return args
    if source.kind == "duckdb":
        return {"read_only": True}  # never create or write the file; writers are refused
    return {"timeout": connect_seconds}  # sqlite: how long to wait on a locked database


def _widen_pg8000_socket_timeout(engine: sa.Engine, statement_timeout: timedelta) -> None:
    # pg8000 applies its one `timeout` to the connect and to every later read. Connect with the
    # (short) connect timeout, then let reads wait past the server-side statement timeout.
    read_seconds = (statement_timeout + SOCKET_GRACE).total_seconds()

    @sa.event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        sock = getattr(dbapi_connection, "_usock", None)
        if sock is not None:
            sock.settimeout(read_seconds)


OPTIONAL_DRIVERS = {"duckdb": ("duckdb_engine", "duckdb")}  # kind -> (module, extra that installs it)


def engine_for(source: Source, *, statement_timeout: timedelta, resolver: SecretResolver) -> sa.Engine:
    """The process-wide engine of `source` (created on first use)."""
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
    key = (
        source.name,
        url.render_as_string(hide_password=True),
        password_digest,
        tuple(sorted(source.connection.options.items())),
        source.connection.connect_timeout,
        statement_timeout,
    )
    with _engines_lock:
        engine = _engines.get(key)
        if engine is None:
            # Transactions are explicit (see session); duckdb-engine has no isolation levels to set.
            # A DuckDB file is not pooled: an open read-only handle keeps its writer out.
            per_kind: dict[str, Any] = (
                {"poolclass": sa.pool.NullPool}
                if source.kind == "duckdb"
                else {"isolation_level": "AUTOCOMMIT", **POOL_SETTINGS}
            )
            engine = sa.create_engine(url, connect_args=connect_args(source, statement_timeout), **per_kind)
            if source.kind == "postgres":
                _widen_pg8000_socket_timeout(engine, statement_timeout)
            for stale in [k for k in _engines if k[:2] == key[:2]]:  # e.g. the password rotated
                _engines.pop(stale).dispose()
            _engines[key] = engine
        return engine


def dispose_engines() -> None:
    """Close every cached pool (tests, shutdown)."""
    with _engines_lock:
        for engine in _engines.values():
            engine.dispose()
        _engines.clear()
