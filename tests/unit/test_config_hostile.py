"""`validate` catches what `run` would: never-firing schedules, out-of-range durations, missing
connection fields, credentials anywhere, custom SQL that is not one read-only query, YAML alias
bombs; and any config, generated over the whole schema, either validates (and its schedule maths
runs) or fails with a file:line ConfigError."""

from __future__ import annotations

import re
import textwrap
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from driftguard.config import MAX_YAML_NODES, parse_config
from driftguard.errors import ConfigError

PG = "{host: db, database: shop, user: monitor, password_env: PGPASS}"


def problems_of(text: str) -> list[str]:
    with pytest.raises(ConfigError) as e:
        parse_config(textwrap.dedent(text), "dg.yaml")
    return e.value.problems


def source(extra: str = "", connection: str = PG, kind: str = "postgres") -> str:
    return f"sources:\n  - name: a\n    kind: {kind}\n    connection: {connection}\n{extra}"


@pytest.mark.parametrize("cron", ["0 0 31 2 *", "0 0 30 2 *", "0 0 31 4,6,9,11 *"])
def test_a_cron_that_never_fires_is_refused(cron: str) -> None:
    (problem,) = problems_of(source(f"    schedule: {{cron: '{cron}'}}\n"))
    assert problem.startswith("dg.yaml:5: ") and "never fires" in problem


@pytest.mark.parametrize(
    "value", [".inf", "-.inf", ".nan", "-5", "0", "1e308", "'99999999999d'", "P99999999999D"]
)
def test_out_of_range_durations_are_config_errors(value: str) -> None:
    (problem,) = problems_of(f"defaults: {{statement_timeout: {value}}}\n")
    assert problem.startswith("dg.yaml:1: defaults.statement_timeout: ")


def test_a_statement_timeout_past_six_hours_is_refused() -> None:
    (problem,) = problems_of(source("    statement_timeout: 7h\n"))
    assert problem.startswith("dg.yaml:") and "statement_timeout" in problem


@pytest.mark.parametrize("kind", ["postgres", "mysql"])
def test_a_server_source_without_user_is_refused(kind: str) -> None:
    (problem,) = problems_of(source(connection="{host: db, database: shop, password_env: P}", kind=kind))
    assert problem.startswith("dg.yaml:2: ") and "connection.user" in problem


def test_a_json_secret_may_supply_the_user() -> None:
    config = parse_config(source(connection="{host: db, database: shop, password_secret: rds}"))
    assert config.sources[0].connection.user is None


@pytest.mark.parametrize(
    "connection",
    [
        "{host: 'u:pw@db', database: shop, user: u}",
        "{host: 'postgres://u:pw@db:5432/shop', database: shop, user: u}",
        "{host: db, database: shop, user: u, options: {password: hunter2}}",
        "{host: db, database: shop, user: u, options: {sslpassword: hunter2}}",
        "{host: db, database: 'postgresql://u:pw@db/shop', user: u}",
        "{host: db, database: shop, user: u, options: {application_name: 'x?password=hunter2'}}",
    ],
)
def test_credentials_anywhere_in_a_connection_are_refused(connection: str) -> None:
    (problem,) = problems_of(source(connection=connection))
    assert problem.startswith("dg.yaml:") and "hunter2" not in problem and "pw@" not in problem
    assert "password_env" in problem and "password_secret" in problem


@pytest.mark.parametrize(
    "endpoint", ["https://u:pw@hooks.example.com/x", "https://hooks.example.com/x?token=abc123"]
)
def test_credentials_in_an_sns_endpoint_are_refused(endpoint: str) -> None:
    text = f"""\
        channels:
          - name: topic
            type: sns
            subscriptions:
              - {{protocol: https, endpoint: '{endpoint}'}}
        route: {{receivers: [topic]}}
        """
    (problem,) = problems_of(text)
    assert problem.startswith("dg.yaml:5: ") and "abc123" not in problem and "pw@" not in problem
    assert "secret_env" in problem


def test_credentials_in_a_webhook_query_string_are_refused() -> None:
    text = """\
        channels:
          - {name: hook, type: webhook, url: 'https://hooks.example.com/x?api_key=abc'}
        route: {receivers: [hook]}
        """
    (problem,) = problems_of(text)
    assert problem.startswith("dg.yaml:2: ") and "secret_env" in problem


@pytest.mark.parametrize(
    "sql",
    [
        "delete from orders",
        "select 1 as status; drop table orders",
        "with x as (delete from orders returning *) select 'OK' as status from x",
        "update orders set amount = 0",
    ],
)
def test_custom_sql_that_is_not_one_read_only_query_fails_validate(sql: str) -> None:
    for key in ("sql_checks", "sql_metrics"):
        extra = f'    {key}:\n      - name: bad\n        sql: "{sql}"\n'
        (problem,) = problems_of(source(extra))
        assert problem.startswith("dg.yaml:2: ") and f"{key}[0] (bad)" in problem


def test_sources_on_one_server_must_agree_on_the_connection_budget() -> None:
    text = """\
        sources:
          - {name: a, kind: postgres, connection: {host: db, database: shop, user: u, max_connections: 3}}
          - {name: b, kind: postgres, connection: {host: DB, database: shop, user: u}}
        """
    (problem,) = problems_of(text)
    assert "max_connections" in problem and "'a'" in problem and "'b'" in problem


def test_retention_shorter_than_the_training_window_is_refused() -> None:
    (problem,) = problems_of("state: {retention: 7d}\n")
    assert "state.retention" in problem and "8w" in problem


def test_an_alias_bomb_is_refused_before_it_is_built() -> None:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 10)]
    text = "x-bomb:\n" + textwrap.indent("\n".join(lines), "  ") + "\nsources: *a9\n"
    with pytest.raises(ConfigError) as e:
        parse_config(text, "dg.yaml")
    assert str(e.value).startswith("dg.yaml:") and "aliases" in str(e.value)
    assert f"{MAX_YAML_NODES:,}" in str(e.value)


def test_a_recursive_alias_is_refused() -> None:
    with pytest.raises(ConfigError, match="aliases"):
        parse_config("sources: &s [*s]\n", "dg.yaml")


def test_modest_aliases_still_work() -> None:
    text = """\
        sources:
          - {name: a, kind: postgres, connection: &conn {host: db, database: shop, user: u}}
          - {name: b, kind: postgres, connection: *conn}
        """
    config = parse_config(textwrap.dedent(text), "dg.yaml")
    assert [s.connection.host for s in config.sources] == ["db", "db"]


# ------------------------------------------------------------------ property: the whole schema

_junk = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
)
_duration = st.one_of(
    st.sampled_from(["30s", "15m", "2h", "1d", "1w", "PT15M", "0s", "-1h", "1e400", ".inf"]), _junk
)
_cron = st.one_of(
    st.sampled_from(
        ["0 * * * *", "*/15 * * * *", "0 0 31 2 *", "0 6 * * 1-5", "0 0 29 2 *", "61 * * * *", "0 0 1 1 1"]
    ),
    _junk,
)
_schedule = st.one_of(
    st.fixed_dictionaries(
        {"cron": _cron}, optional={"timezone": st.sampled_from(["UTC", "Europe/Berlin", "Mars/Base"])}
    ),
    st.fixed_dictionaries({"rate": _duration}, optional={"flexible_window": _duration}),
    _junk,
)
_connection = st.fixed_dictionaries(
    {},
    optional={
        "host": st.sampled_from(["db", "u:pw@db", "db.example.com", ""]),
        "port": st.one_of(st.integers(-1, 70000), _junk),
        "database": st.sampled_from(["shop", "postgres://u:p@h/d"]),
        "user": st.sampled_from(["monitor", ""]),
        "password_env": st.just("PGPASS"),
        "password_secret": st.just("rds"),
        "path": st.just("data.db"),
        "connect_timeout": _duration,
        "max_connections": st.one_of(st.integers(-1, 200), _junk),
        "options": st.dictionaries(
            st.sampled_from(["sslmode", "password", "application_name", "charset"]), st.text(max_size=8)
        ),
    },
)
_table = st.fixed_dictionaries(
    {"name": st.sampled_from(["orders", "", "t"])},
    optional={
        "schema": st.sampled_from(["public", None]),
        "checks": st.fixed_dictionaries(
            {},
            optional={
                "freshness": st.fixed_dictionaries(
                    {"column": st.just("ts")}, optional={"max_age": _duration}
                ),
                "volume": st.one_of(
                    st.booleans(),
                    st.fixed_dictionaries({}, optional={"column": st.just("ts"), "period": _duration}),
                ),
                "schema": st.booleans(),
                "columns": st.lists(st.fixed_dictionaries({"name": st.just("c")}), max_size=2),
            },
        ),
    },
)
_sql = st.sampled_from(
    [
        "select 'OK' as status",
        "delete from t",
        "select 1; select 2",
        "with x as (select 1) select * from x",
        "",
    ]
)
_source = st.fixed_dictionaries(
    {
        "name": st.sampled_from(["a", "b", "Bad Name", "c-1"]),
        "kind": st.sampled_from(["postgres", "mysql", "sqlite", "oracle"]),
        "connection": _connection,
    },
    optional={
        "schedule": _schedule,
        "statement_timeout": _duration,
        "tables": st.lists(_table, max_size=2),
        "sql_checks": st.lists(
            st.fixed_dictionaries(
                {"name": st.sampled_from(["c", "d"]), "sql": _sql},
                optional={"max_rows": st.integers(-1, 10**6)},
            ),
            max_size=2,
        ),
        "detection": st.fixed_dictionaries({}, optional={"training_window": _duration}),
    },
)
_channel = st.one_of(
    st.fixed_dictionaries({"name": st.just("console"), "type": st.just("console")}),
    st.fixed_dictionaries(
        {
            "name": st.just("hook"),
            "type": st.just("webhook"),
            "url": st.sampled_from(["https://h/x", "https://u:p@h/x", "ftp://h"]),
        }
    ),
    st.fixed_dictionaries(
        {
            "name": st.just("topic"),
            "type": st.just("sns"),
            "subscriptions": st.lists(
                st.fixed_dictionaries(
                    {
                        "protocol": st.sampled_from(["https", "email", "fax"]),
                        "endpoint": st.sampled_from(
                            ["https://h/x?token=1", "ops@example.com", "https://h/x"]
                        ),
                    }
                ),
                max_size=2,
            ),
        }
    ),
)
_config = st.fixed_dictionaries(
    {},
    optional={
        "version": st.sampled_from([1, 2]),
        "defaults": st.fixed_dictionaries(
            {}, optional={"schedule": _schedule, "statement_timeout": _duration}
        ),
        "alerting": st.fixed_dictionaries(
            {}, optional={"repeat_interval": _duration, "pending_runs": st.integers(-1, 5)}
        ),
        "sources": st.lists(_source, max_size=3),
        "channels": st.lists(_channel, max_size=3),
        "route": st.fixed_dictionaries(
            {"receivers": st.lists(st.sampled_from(["console", "hook", "topic"]), max_size=2)}
        ),
        "state": st.fixed_dictionaries({}, optional={"path": st.just("s.db"), "retention": _duration}),
        "aws": st.fixed_dictionaries({}, optional={"retention_days": st.integers(-1, 1000)}),
    },
)
_LOCATED = re.compile(r"^dg\.yaml:\d+")


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(_config)
def test_any_config_validates_and_schedules_or_fails_with_file_and_line(data: dict[str, Any]) -> None:
    text = yaml.safe_dump(data, sort_keys=False)
    try:
        config = parse_config(text, "dg.yaml")
    except ConfigError as e:
        assert e.problems and all(_LOCATED.match(p) for p in e.problems), e.problems
        return
    now = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
    for s in config.sources:
        schedule = config.schedule_of(s)
        latest = schedule.latest_fire(now)
        assert latest <= now
        assert schedule.period > timedelta(0)
        schedule.fires_between(now, now + timedelta(days=2))
        assert schedule.aws_expression()
        assert config.statement_timeout_of(s) > timedelta(0)
