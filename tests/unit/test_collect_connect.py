"""Connection URLs, driver options, credentials and the per-server pools (no server needed)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from driftguard.collect.connect import (
    bound_socket_reads,
    build_url,
    connect_args,
    dispose_engines,
    lease_pool,
    open_pools,
    resolve_credentials,
)
from driftguard.config import Source
from driftguard.errors import ConfigError, SecretError
from driftguard.secrets import SecretResolver

TIMEOUT = timedelta(seconds=30)


def source(kind: str = "postgres", **connection: Any) -> Source:
    base: dict[str, Any] = {"host": "db.example", "database": "shop", "user": "reader"}
    if kind == "sqlite":
        base = {"path": "/tmp/x.db"}
    return Source.model_validate({"name": "orders", "kind": kind, "connection": {**base, **connection}})


def resolver(environ: dict[str, str] | None = None, secrets: dict[str, str] | None = None) -> SecretResolver:
    stored = secrets or {}

    def fetch(name: str) -> str:
        if name not in stored:
            raise SecretError(f"secret {name!r} not found")
        return stored[name]

    return SecretResolver(fetch=fetch, environ=environ or {})


@pytest.fixture(autouse=True)
def _empty_cache() -> Iterator[None]:
    yield
    dispose_engines()


def test_password_with_url_characters_survives_the_url() -> None:
    password = "p@ss/w:rd%?#"
    src = source(password_env="DB_PASSWORD")
    url = build_url(src, resolve_credentials(src, resolver({"DB_PASSWORD": password})))
    assert url.password == password and url.host == "db.example" and url.port == 5432
    assert url.drivername == "postgresql+pg8000"
    assert password not in url.render_as_string(hide_password=True)


def test_rds_json_secret_supplies_password_and_missing_fields() -> None:
    secret = json.dumps(
        {"username": "admin", "password": "s3cret", "host": "ignored", "port": 3307, "dbname": "x"}
    )
    src = Source.model_validate(
        {
            "name": "o",
            "kind": "mysql",
            "connection": {"host": "db", "database": "shop", "password_secret": "rds"},
        }
    )
    credentials = resolve_credentials(src, resolver(secrets={"rds": secret}))
    assert (
        credentials.user,
        credentials.password,
        credentials.host,
        credentials.port,
        credentials.database,
    ) == (
        "admin",
        "s3cret",
        "db",  # the config wins over the secret
        3307,
        "shop",
    )


def test_environment_wins_and_a_missing_reference_is_a_secret_error() -> None:
    src = source(password_env="DB_PASSWORD", password_secret="rds")
    assert resolve_credentials(src, resolver({"DB_PASSWORD": "env"}, {"rds": "secret"})).password == "env"
    assert resolve_credentials(src, resolver({}, {"rds": "secret"})).password == "secret"
    with pytest.raises(SecretError, match="DB_PASSWORD"):
        resolve_credentials(source(password_env="DB_PASSWORD"), resolver())
    with pytest.raises(SecretError, match=r"source orders, connection\.password_secret"):
        resolve_credentials(source(password_secret="gone"), resolver())
    with pytest.raises(SecretError, match="no 'password' key"):
        resolve_credentials(source(password_secret="rds"), resolver(secrets={"rds": '{"username": "u"}'}))


def test_sqlite_opens_read_only_through_a_file_uri(tmp_path: Path) -> None:
    src = Source.model_validate(
        {"name": "o", "kind": "sqlite", "connection": {"path": str(tmp_path / "a b#c.db")}}
    )
    url = build_url(src, resolve_credentials(src, resolver()))
    assert url.query == {"mode": "ro", "uri": "true"}
    assert url.database is not None and url.database.startswith("file://") and "a%20b%23c.db" in url.database


def test_timeouts_and_supported_options_become_driver_arguments() -> None:
    pg = connect_args(source(connect_timeout="3s", options={"application_name": "dg", "sslmode": "require"}))
    assert pg["timeout"] == 3 and pg["application_name"] == "dg" and pg["ssl_context"].check_hostname is False
    my = connect_args(source("mysql", connect_timeout="4s", options={"charset": "utf8mb4", "ssl": "true"}))
    assert (my["connect_timeout"], my["charset"]) == (4, "utf8mb4")
    assert my["ssl"] == {} and my["ssl_verify_cert"] is True


@pytest.mark.parametrize(
    ("kind", "options", "message"),
    [
        (
            "postgres",
            {"sslcert": "x"},
            "connection.options sslcert not supported for postgres; supported: application_name",
        ),
        ("postgres", {"sslmode": "prefer"}, "sslmode 'prefer' is not supported"),
        ("mysql", {"ssl": "maybe"}, "connection.options.ssl must be 'true' or 'false'"),
        ("sqlite", {"ssl": "true"}, "supported: (none)"),
    ],
)
def test_unsupported_options_are_config_errors(kind: str, options: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=r"^source orders: ") as info:
        connect_args(source(kind, options=options))
    assert message in str(info.value)


def test_sources_on_one_server_share_one_bounded_pool_closed_by_the_last_lease() -> None:
    env = resolver({"DB_PASSWORD": "a"})
    leases = [
        lease_pool(
            Source.model_validate(
                {
                    "name": f"s{i}",
                    "kind": "postgres",
                    "connection": {
                        "host": "DB.example" if i % 2 else "db.example",  # host names ignore case
                        "database": "shop",
                        "user": "reader",
                        "password_env": "DB_PASSWORD",
                        "max_connections": 3,
                    },
                }
            ),
            resolver=env,
        )
        for i in range(5)
    ]
    other = lease_pool(source(host="db2.example", password_env="DB_PASSWORD"), resolver=env)
    assert len({id(lease.engine) for lease in leases}) == 1 and other.engine is not leases[0].engine
    assert leases[0].engine.pool.status().startswith("Pool size: 3 ")  # max_connections, no overflow
    assert len(open_pools()) == 2
    for lease in leases:
        lease.release()
        lease.release()  # idempotent: a lease is given back once
    assert list(open_pools()) == [("postgres", "db2.example", 5432, "shop", "reader")]
    other.release()
    assert open_pools() == {}


def test_a_rotated_password_gets_a_fresh_pool() -> None:
    src = source(password_env="DB_PASSWORD")
    first = lease_pool(src, resolver=resolver({"DB_PASSWORD": "a"}))
    rotated = lease_pool(src, resolver=resolver({"DB_PASSWORD": "b"}))
    assert rotated.engine is not first.engine and rotated.engine.url.password == "b"
    first.release()  # the old pool's last lease: the new one stays open
    assert list(open_pools().values()) == [rotated.engine]
    rotated.release()


def test_socket_reads_wait_past_the_statement_timeout() -> None:
    class Pg8000Like:
        def __init__(self) -> None:
            self.timeouts: list[float] = []
            outer = self

            class Sock:
                def settimeout(self, seconds: float) -> None:
                    outer.timeouts.append(seconds)

            self._usock = Sock()

    class PyMysqlLike:
        _read_timeout: float | None = None
        _write_timeout: float | None = None

    pg, my = Pg8000Like(), PyMysqlLike()
    bound_socket_reads(pg, TIMEOUT)
    bound_socket_reads(my, TIMEOUT)
    assert pg.timeouts == [40] and (my._read_timeout, my._write_timeout) == (40, 40)


def test_a_duckdb_source_without_its_driver_says_which_extra_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "duckdb_engine" else real(name, *a)
    )
    source = Source.model_validate({"name": "lake", "kind": "duckdb", "connection": {"path": "lake.duckdb"}})
    with pytest.raises(
        ConfigError, match=r"source lake: a duckdb source needs duckdb_engine.*driftguard\[duckdb\]"
    ):
        lease_pool(source, resolver=SecretResolver())


def test_a_duckdb_file_is_its_own_server_and_keeps_no_connection_open(tmp_path: Path) -> None:
    def lake(name: str, path: str) -> Source:
        return Source.model_validate({"name": name, "kind": "duckdb", "connection": {"path": path}})

    first = lease_pool(lake("a", str(tmp_path / "lake.duckdb")), resolver=resolver())
    same = lease_pool(lake("b", str(tmp_path / "." / "lake.duckdb")), resolver=resolver())
    other = lease_pool(lake("c", str(tmp_path / "other.duckdb")), resolver=resolver())
    assert same.engine is first.engine and other.engine is not first.engine
    # not pooled: an open read-only handle would keep the file's writer out between checks
    assert isinstance(first.engine.pool, sa.pool.NullPool)
    for lease in (first, same, other):
        lease.release()
    assert open_pools() == {}
