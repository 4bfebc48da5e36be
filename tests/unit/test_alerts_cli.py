"""`driftguard silence / unsilence / silences` against a real SQLite store."""

from __future__ import annotations

import json
import shlex
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from rich.console import Console
from test_alerts_fixtures import ITEMS_NULLS, ORDERS_LAG, ORDERS_ROWS, SOURCE_KEY, finding, make_config

from driftguard.alerts import Labels, decide, silenced_by
from driftguard.cli.common import CliContext
from driftguard.cli.silences import commands
from driftguard.model import CheckKey, FindingStatus, Matcher, Severity, utcnow
from driftguard.store.sqlite import SqliteStore

COMMANDS = {c.name: c for c in commands}


@pytest.fixture
def cli(tmp_path: Path) -> Iterator[CliContext]:
    context = CliContext(
        config_path=str(tmp_path / "driftguard.yaml"),
        _config=make_config(tables=("orders", "items")),
        _store=SqliteStore(tmp_path / "s.db"),
        _console=Console(width=200, highlight=False),
    )
    yield context
    context.close()


def invoke(cli: CliContext, name: str, *args: str) -> Result:
    return CliRunner().invoke(COMMANDS[name], list(args), obj=cli, env={"USER": "ana"})


def create(cli: CliContext, *args: str) -> dict[str, object]:
    result = invoke(cli, "silence", "--source", "orders_db", *args, "--json")
    assert result.exit_code == 0, result.output
    created: dict[str, object] = json.loads(result.output)
    return created


def test_silence_creates_a_silence_from_options_and_matchers(cli: CliContext) -> None:
    before = utcnow().replace(microsecond=0)
    made = create(
        cli, "--table", "orders", "--check", "volume", "--tag", "tier1", "--match", "severity=~warn.*",
        "--duration", "2h", "--comment", "backfill",
    )  # fmt: skip
    [stored] = cli.store.silences()
    assert made["id"] == stored.id and made["status"] == "active"
    assert stored.matchers == [
        Matcher(label="source", value="orders_db"),
        Matcher(label="table", value="orders"),
        Matcher(label="check", value="volume"),
        Matcher(label="tag", value="tier1"),
        Matcher(label="severity", value="warn.*", regex=True),
    ]
    assert (stored.created_by, stored.comment) == ("ana", "backfill")
    assert before + timedelta(hours=2) <= stored.ends_at <= utcnow() + timedelta(hours=2)


def test_silence_until_and_author(cli: CliContext) -> None:
    until = (utcnow() + timedelta(days=1)).replace(microsecond=0)
    create(cli, "--until", until.isoformat(), "--comment", "c", "--author", "bo")
    [stored] = cli.store.silences()
    assert (stored.ends_at, stored.created_by) == (until, "bo")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--source", "orders_db", "--match", "colour=red", "--duration", "1h", "--comment", "c"],
            "unknown label",
        ),
        (
            ["--source", "orders_db", "--match", "table=~(", "--duration", "1h", "--comment", "c"],
            "regular expression",
        ),
        (["--source", "orders_db", "--until", "2001-01-01T00:00:00Z", "--comment", "c"], "before it starts"),
        (["--source", "orders_db", "--comment", "c"], "exactly one of --duration"),
        (["--source", "orders_db", "--duration", "1h", "--until", "now", "--comment", "c"], "exactly one of"),
        (["--source", "orders_db", "--duration", "soon", "--comment", "c"], "is not a duration"),
        (["--source", "orders_db", "--duration", "1h"], "--comment is required"),
        (["--duration", "1h", "--comment", "c"], "say which alerts to silence"),
        (["--table", "nosuchtable", "--duration", "1h", "--comment", "c"], "no table of that name"),
        (["--tag", "tier9", "--duration", "1h", "--comment", "c"], "no source has this tag"),
        (["--source", "nope", "--duration", "1h", "--comment", "c"], "no source named 'nope'"),
        (["--source", "orders_db", "--until", "tomorrow", "--comment", "c"], "is not a time"),
    ],
)
def test_silence_explains_what_is_wrong(cli: CliContext, args: list[str], message: str) -> None:
    result = invoke(cli, "silence", *args)
    assert result.exit_code == 2
    assert message in result.output
    assert cli.store.silences() == []


def test_a_silence_by_tag_or_owner_needs_no_source(cli: CliContext) -> None:
    result = invoke(
        cli, "silence", "--tag", "tier1", "--owner", "data-team", "--severity", "warning",
        "--duration", "1h", "--comment", "all tier-1 warnings", "--json",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["matchers"] == ["tag=tier1", "owner=data-team", "severity=warning"]
    assert len(cli.store.silences()) == 1


def test_extend_keeps_the_silence_until_later(cli: CliContext) -> None:
    made = create(cli, "--duration", "1h", "--comment", "c")
    ident = str(made["id"])
    result = invoke(cli, "silence", "--extend", ident[:6], "--duration", "3h")
    assert result.exit_code == 0, result.output
    assert "Extended silence" in result.output
    [stored] = cli.store.silences()
    assert stored.id == ident and stored.ends_at >= utcnow() + timedelta(hours=2, minutes=59)
    shorter = invoke(cli, "silence", "--extend", ident, "--duration", "10m")
    assert shorter.exit_code != 0 and "would not extend it" in shorter.output
    mixed = invoke(cli, "silence", "--extend", ident, "--duration", "3h", "--table", "x")
    assert mixed.exit_code != 0 and "--extend changes only when" in mixed.output
    missing = invoke(cli, "silence", "--extend", "zzzz", "--duration", "3h")
    assert missing.exit_code != 0 and "no silence with id 'zzzz'" in missing.output


def test_listing_unsilencing_and_purging(cli: CliContext) -> None:
    first = str(create(cli, "--table", "orders", "--duration", "1h", "--comment", "one [two]")["id"])
    second = str(create(cli, "--table", "items", "--duration", "2h", "--comment", "other")["id"])
    listed = json.loads(invoke(cli, "silences", "--json").output)
    assert [(r["id"], r["status"], r["matchers"]) for r in listed] == [
        (first, "active", ["source=orders_db", "table=orders"]),
        (second, "active", ["source=orders_db", "table=items"]),
    ]  # by start, then end: `first` ends first
    table = invoke(cli, "silences")
    assert first in table.output and "one [two]" in table.output and "ana" in table.output

    ended = invoke(cli, "unsilence", first)
    assert ended.exit_code == 0 and "Ended silence" in ended.output
    assert [r["id"] for r in json.loads(invoke(cli, "silences", "--json").output)] == [second]
    everything = json.loads(invoke(cli, "silences", "--all", "--json").output)
    assert {r["id"]: r["status"] for r in everything} == {first: "expired", second: "active"}

    purged = invoke(cli, "unsilence", second, "--purge", "--json")
    assert json.loads(purged.output) == {"id": second, "status": "deleted"}
    assert [s.id for s in cli.store.silences()] == [first]
    assert "No active silences" in invoke(cli, "silences").output


@pytest.mark.parametrize("keys", [[ORDERS_ROWS], [ORDERS_ROWS, ITEMS_NULLS], [ORDERS_ROWS, SOURCE_KEY]])
def test_the_silence_hint_of_a_notification_silences_exactly_its_alerts(
    cli: CliContext, keys: list[CheckKey]
) -> None:
    config = cli.config
    decision = decide(
        config=config,
        source=config.sources[0],
        findings=[finding(FindingStatus.ANOMALY, key=k) for k in keys],
        states={},
        silences=[],
        now=utcnow(),
    )
    [notification] = decision.notifications
    argv = shlex.split(notification.silence_hint)
    assert argv[:2] == ["driftguard", "silence"]
    result = invoke(cli, "silence", *[("on call" if a == "<why>" else a) for a in argv[2:]])
    assert result.exit_code == 0, result.output
    stored = cli.store.silences()
    source = config.sources[0]
    for k in keys:
        assert silenced_by(Labels.of(k, Severity.WARNING, source), stored, utcnow()) == [stored[0].id]
    assert silenced_by(Labels.of(ORDERS_LAG, Severity.WARNING, source), stored, utcnow()) == (
        [stored[0].id] if len(keys) > 1 else []
    )
