"""Config: valid files load, every kind of bad input gets a precise error (file:line, key, fix)."""

from __future__ import annotations

import json
import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from driftguard.config import Config, Schedule, json_schema, load_config, parse_config, parse_duration
from driftguard.errors import ConfigError

GOOD = textwrap.dedent(
    """\
    sources:
      - name: orders-db
        kind: postgres
        connection: {host: db.internal, database: shop, user: monitor, password_env: PGPASS}
        schedule: {cron: "0 * * * *", timezone: Europe/Berlin}
        tags: [tier-1]
        owner: "@growth"
        tables:
          - name: orders
            schema: public
            checks:
              freshness: {column: updated_at, max_age: 2h}
              volume: {column: created_at, period: 1h, min_rows: 10}
              schema: true
              columns:
                - {name: amount, metrics: [null_rate, mean]}
        sql_checks:
          - name: no-negative
            sql: select 'OK' as status
    channels:
      - {name: console, type: console}
      - {name: hook, type: webhook, url: "https://hooks.example.com/x", secret_env: HOOK_SECRET}
    route:
      receivers: [console]
      routes:
        - {match: {severity: critical}, receivers: [hook], continue: true}
    """
)


def problems_of(text: str) -> list[str]:
    with pytest.raises(ConfigError) as e:
        parse_config(text, "dg.yaml")
    return e.value.problems


def test_good_config_loads_with_every_section() -> None:
    cfg = parse_config(GOOD)
    src = cfg.source("orders-db")
    table = src.tables[0]
    assert table.db_schema == "public"
    assert table.checks.freshness is not None and table.checks.freshness.max_age == timedelta(hours=2)
    assert table.checks.volume is not None and table.checks.volume.effective_period == timedelta(hours=1)
    assert table.checks.schema_ is not None  # `schema: true` means "learn it"
    assert cfg.route.routes[0].continue_ is True
    assert cfg.schedule_of(src).aws_expression() == "cron(0 * * * ? *)"


def test_table_without_checks_gets_volume_and_schema() -> None:
    cfg = parse_config("sources: [{name: a, kind: sqlite, connection: {path: a.db}, tables: [{name: t}]}]")
    checks = cfg.sources[0].tables[0].checks
    assert checks.volume is not None and checks.schema_ is not None and checks.freshness is None


@pytest.mark.parametrize(
    ("fragment", "line", "needle"),
    [
        ("connection: {host: h, database: d, password: hunter2}", 4, "password_env"),
        ("connection: {host: 'postgresql://u:p@h/db', database: d}", 4, "credentials"),
        ("connection: {host: h, database: d, colour: red}", 4, "unknown key"),
        ("connection: {host: h, database: d, port: many}", 4, "port"),
        ("connection: {host: h, database: d}\n    schedule: {cron: '61 * * * *'}", 5, "cron"),
        ("connection: {host: h, database: d}\n    schedule: {rate: 30s}", 5, "at least 1 minute"),
        ("connection: {host: h, database: d}\n    schedule: {rate: 1h, cron: '0 * * * *'}", 5, "exactly one"),
        (
            "connection: {host: h, database: d}\n    schedule: {rate: 1h, timezone: Mars/Olympus}",
            5,
            "time zone",
        ),
        (
            "connection: {host: h, database: d}\n    schedule: {cron: '0 0 1 * 1'}",
            5,
            "day-of-month and day-of-week",
        ),
        ("connection: {path: x.db}", 2, "needs connection.host"),
    ],
)
def test_bad_source_fields_name_the_line_and_the_fix(fragment: str, line: int, needle: str) -> None:
    text = f"sources:\n  - name: a\n    kind: postgres\n    {fragment}\n"
    problems = problems_of(text)
    assert any(needle in p for p in problems), problems
    assert any(p.startswith(f"dg.yaml:{line}:") for p in problems), problems


def test_duplicate_source_names_are_rejected() -> None:
    text = "sources:\n" + "".join(
        f"  - {{name: dup, kind: sqlite, connection: {{path: {i}.db}}}}\n" for i in range(2)
    )
    assert any("'dup'" in p and "more than once" in p for p in problems_of(text))


def test_duplicate_yaml_keys_are_rejected_with_line() -> None:
    with pytest.raises(ConfigError, match=r"dg.yaml:4: key 'kind' appears twice"):
        parse_config("sources:\n  - name: a\n    kind: sqlite\n    kind: postgres\n", "dg.yaml")


def test_malformed_yaml_points_at_line_and_column() -> None:
    with pytest.raises(ConfigError, match=r"dg.yaml:3:1: malformed YAML: .*starts at line 2"):
        parse_config("sources:\n  - name: [unclosed\n", "dg.yaml")


def test_route_to_unknown_channel_lists_known_ones() -> None:
    problems = problems_of("route: {receivers: [pager]}")
    assert any("'pager'" in p and "console" in p for p in problems)


def test_slack_url_in_file_is_rejected() -> None:
    text = "channels: [{name: s, type: slack, webhook_url: 'https://hooks.slack.com/services/X'}]"
    assert any("credential" in p for p in problems_of(text))


def test_wrong_type_reports_what_it_got() -> None:
    text = "sources: [{name: a, kind: sqlite, connection: {path: a.db}, max_concurrency: lots}]"
    assert any("max_concurrency" in p and "'lots'" in p for p in problems_of(text))


def test_bad_name_explains_the_rule() -> None:
    assert any(
        "lower-case" in p
        for p in problems_of("sources: [{name: 'Bad Name', kind: sqlite, connection: {path: a}}]")
    )


def test_missing_file_says_how_to_create_one(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="driftguard init"):
        load_config(tmp_path / "nope.yaml")


def test_json_schema_is_valid_json_and_names_top_level_keys() -> None:
    schema = json_schema()
    text = json.dumps(schema)
    assert {"sources", "channels", "route", "alerting"} <= set(schema["properties"])
    assert '"password_env"' in text and '"password"' not in text.replace('"password_env"', "").replace(
        '"password_secret"', ""
    )


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90s", 90), ("15m", 900), ("15 minutes", 900), ("2h", 7200), ("1d", 86400), ("1w", 604800), (30, 30)],
)
def test_durations(text: object, seconds: int) -> None:
    assert parse_duration(text).total_seconds() == seconds


@pytest.mark.parametrize("bad", ["", "soon", "-5m", 0, True, "5 parsecs"])
def test_bad_durations(bad: object) -> None:
    with pytest.raises(ValueError):
        parse_duration(bad)


def test_cron_to_eventbridge_maps_day_of_week() -> None:
    assert Schedule(cron="30 6 * * 1-5").aws_expression() == "cron(30 6 ? * 2-6 *)"
    assert Schedule(cron="0 0 1 * *").aws_expression() == "cron(0 0 1 * ? *)"
    assert Schedule(rate=timedelta(hours=2)).aws_expression() == "rate(2 hours)"
    assert Schedule(rate=timedelta(minutes=1)).aws_expression() == "rate(1 minute)"


def test_latest_fire_respects_time_zone() -> None:
    s = Schedule(cron="0 9 * * *", timezone="Europe/Berlin")
    at = datetime(2024, 7, 1, 12, 0, tzinfo=UTC)
    assert s.latest_fire(at) == datetime(2024, 7, 1, 7, 0, tzinfo=UTC)  # 09:00 CEST
    assert s.period == timedelta(days=1)


@settings(max_examples=200, deadline=None)
@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(max_size=20),
        lambda children: (
            st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
        ),
        max_leaves=20,
    )
)
def test_arbitrary_yaml_documents_never_crash(doc: object) -> None:
    """Whatever the structure, loading either succeeds or raises ConfigError: never a traceback."""
    text = yaml.safe_dump({"sources": doc})
    try:
        cfg = parse_config(text, "fuzz.yaml")
    except ConfigError as e:
        assert str(e).startswith("fuzz.yaml")
    else:
        assert isinstance(cfg, Config)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=200))
def test_arbitrary_text_never_crashes(text: str) -> None:
    try:
        parse_config(text, "fuzz.yaml")
    except ConfigError as e:
        assert "fuzz.yaml" in str(e)


def test_relative_paths_resolve_against_the_config_folder(tmp_path: Path) -> None:
    folder = tmp_path / "conf"
    folder.mkdir()
    (folder / "dg.yaml").write_text(
        "sources: [{name: a, kind: sqlite, connection: {path: data/a.db}}]\n"
        "channels: [{name: f, type: file, path: out.jsonl}, {name: console, type: console}]\n"
        "state: {path: /abs/state.db}\n"
    )
    cfg = load_config(folder / "dg.yaml")
    assert cfg.sources[0].connection.path == str(folder.resolve() / "data/a.db")
    assert cfg.channel("f").path == str(folder.resolve() / "out.jsonl")  # type: ignore[union-attr]
    assert cfg.state.path == "/abs/state.db"


@pytest.mark.parametrize(
    "example", sorted(Path(__file__).resolve().parents[2].joinpath("examples").glob("*.yaml"))
)
def test_compiled_config_loads_back_equal(example: Path, tmp_path: Path) -> None:
    """What the stack ships to Lambda (JSON) is the same config the CLI validated (YAML)."""
    from driftguard.config import compile_config

    original = load_config(example)
    compiled = tmp_path / "driftguard.json"
    compiled.write_text(compile_config(original))
    assert load_config(compiled) == original


def test_iso_durations_from_compiled_configs() -> None:
    assert parse_duration("PT15M") == timedelta(minutes=15)
    assert parse_duration("P56D") == timedelta(days=56)
    assert parse_duration("P1DT2H30M0.5S") == timedelta(days=1, hours=2, minutes=30, seconds=0.5)
    with pytest.raises(ValueError):
        parse_duration("PT0S")


def test_a_broken_compiled_config_is_a_config_error(tmp_path: Path) -> None:
    compiled = tmp_path / "driftguard.json"
    compiled.write_text('{"sources": [{"name": "a", "kind": "oracle"}]}')
    with pytest.raises(ConfigError, match=r"sources\[0\]\.kind"):
        load_config(compiled)
