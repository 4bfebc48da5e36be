"""Connection URLs, driver options, credentials and the engine cache (no server needed)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from driftguard.collect import connect
from driftguard.collect.connect import (
    build_url,
    connect_args,
    dispose_engines,
    engine_for,
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
    pg = connect_args(
        source(connect_timeout="3s", options={"application_name": "dg", "sslmode": "require"}), TIMEOUT
    )
    assert pg["timeout"] == 3 and pg["application_name"] == "dg" and pg["ssl_context"].check_hostname is False
    my = connect_args(
        source("mysql", connect_timeout="4s", options={"charset": "utf8mb4", "ssl": "true"}), TIMEOUT
    )
    assert (my["connect_timeout"], my["read_timeout"], my["charset"]) == (4, 40, "utf8mb4")
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
        connect_args(source(kind, options=options), TIMEOUT)
    assert message in str(info.value)


def test_engines_are_cached_per_source_and_a_new_password_gets_a_new_engine() -> None:
    src = source(password_env="DB_PASSWORD")
    first = engine_for(src, statement_timeout=TIMEOUT, resolver=resolver({"DB_PASSWORD": "a"}))
    again = engine_for(src, statement_timeout=TIMEOUT, resolver=resolver({"DB_PASSWORD": "a"}))
    rotated = engine_for(src, statement_timeout=TIMEOUT, resolver=resolver({"DB_PASSWORD": "b"}))
    other = engine_for(
        source(host="db2.example", password_env="DB_PASSWORD"),
        statement_timeout=TIMEOUT,
        resolver=resolver({"DB_PASSWORD": "a"}),
    )
    assert first is again
    assert rotated is not first and other is not first
    assert len([k for k in connect._engines if k[0] == "orders"]) == 2  # the pre-rotation engine is gone
    assert first.pool.status().startswith("Pool size: 1 ") and first.dialect.name == "postgresql"


def test_a_duckdb_source_without_its_driver_says_which_extra_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import importlib.util

    from driftguard.collect.connect import engine_for
    from driftguard.secrets import SecretResolver

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "duckdb_engine" else real(name, *a)
    )
    source = Source.model_validate({"name": "lake", "kind": "duckdb", "connection": {"path": "lake.duckdb"}})
    with pytest.raises(
        ConfigError, match=r"source lake: a duckdb source needs duckdb_engine.*driftguard\[duckdb\]"
    ):
        engine_for(source, statement_timeout=timedelta(seconds=5), resolver=SecretResolver())
