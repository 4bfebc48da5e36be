"""The CLI contract beyond exit codes: one line per error, reading never writes, honest time,
latest values, one identity per check, output for people and for scripts."""

from __future__ import annotations

import json
import os
import sqlite3
from datetime import timedelta
from pathlib import Path

import pytest
from tests.cli.conftest import T0, Shop, load_orders, write_config

import driftguard.engine
from driftguard.cli import hoist_global_options
from driftguard.store.sqlite import SqliteStore

# ------------------------------------------------------------------------------ one line per error

BAD_INPUTS: list[tuple[list[str], int, str]] = [
    (["--config", "missing.yaml", "validate"], 2, "missing.yaml"),
    (["check", "nope"], 2, "nope"),
    (["check", "shop", "--at", "yesterday-ish"], 2, "is not a time"),
    (["check", "shop", "--at", "2099-01-01T00:00Z"], 2, "in the future"),
    (["run", "--due", "--at", "-1h"], 2, "give one"),
    (["history", "shop", "--as-of", "soon"], 2, "is not a time"),
    (["--state", "redis://cache:6379/0", "status"], 2, "unknown scheme 'redis'"),
    (["--state", "/nonexistent/dir/x.db", "status"], 2, "/nonexistent/dir/x.db does not exist"),
    (["silence", "--source", "shop", "--duration", "soon", "--comment", "c"], 2, "is not a duration"),
    (
        ["label", "shop", "--table", "nope", "--check", "volume", "--metric", "m", "--from", "-1d"],
        2,
        "no table",
    ),
    (["explain", "shop", "--table", "nope"], 2, "no table 'nope'"),
    (["invoke", "check", "dg.yaml"], 2, "not JSON"),
    (["test-channel", "nope"], 2, "nope"),
]


@pytest.mark.parametrize(("args", "code", "says"), BAD_INPUTS, ids=[" ".join(a) for a, _, _ in BAD_INPUTS])
def test_bad_input_is_one_clear_line_and_no_traceback(
    shop: Shop, args: list[str], code: int, says: str
) -> None:
    result = shop.cli(*args)
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output
    assert says in result.stderr
    error_lines = [line for line in result.stderr.splitlines() if line.lower().startswith("error")]
    assert len(error_lines) == 1, result.stderr


def test_broken_yaml_names_file_and_line(shop: Shop) -> None:
    shop.config.write_text("sources:\n  - name: shop\n   kind: [\n")
    result = shop.cli("validate")
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert f"{shop.config}:" in result.stderr


def test_debug_shows_the_traceback(shop: Shop) -> None:
    shop.state.parent.mkdir(parents=True)
    shop.state.write_text("not a database" * 100)
    plain = shop.cli("status")
    assert plain.exit_code == 3 and "Traceback" not in plain.output
    debug = shop.cli("status", "--debug")
    assert debug.exit_code == 3 and "Traceback" in debug.stderr


# ------------------------------------------------------------------------------ reading never writes


@pytest.mark.parametrize(
    "args",
    [["status"], ["history", "shop"], ["explain", "shop"], ["silences"], ["deliveries"], ["unsilence", "x"]],
)
@pytest.mark.parametrize("state", ["{root}/nowhere/sub/x.db", "redis://x", "sqlite:///{root}/nowhere/y.db"])
def test_reading_commands_never_create_state(shop: Shop, args: list[str], state: str) -> None:
    url = state.format(root=shop.root)
    before = sorted(p.relative_to(shop.root) for p in shop.root.rglob("*"))
    result = shop.cli("--state", url, *args)
    assert result.exit_code == 2, result.output
    assert ("redis" in result.stderr) if url.startswith("redis") else ("nowhere" in result.stderr)
    assert sorted(p.relative_to(shop.root) for p in shop.root.rglob("*")) == before
    assert not Path("redis:").exists()


def test_a_dry_run_creates_no_state(shop: Shop) -> None:
    load_orders(shop.db, {T0 - timedelta(hours=1): 100})
    assert shop.cli("check", "shop", "--dry-run").exit_code == 0
    assert not shop.state.exists() and not shop.state.parent.exists()


# ------------------------------------------------------------------------------ time is honest


def test_future_at_is_refused_and_stores_nothing(shop: Shop) -> None:
    future = (T0 + timedelta(hours=1)).isoformat()
    for args in (["check", "shop", "--at", future], ["run", "--at", future]):
        result = shop.cli(*args)
        assert result.exit_code == 2 and "in the future" in result.stderr
    assert not shop.state.exists()


def test_clock_skew_is_allowed(shop: Shop) -> None:
    load_orders(shop.db, {T0 - timedelta(hours=1): 100})
    shop.clock["now"] = T0 - timedelta(seconds=30)  # this machine is 30 s behind the scheduler
    assert shop.cli("check", "shop", "--at", T0.isoformat()).exit_code == 0


def test_a_past_at_is_a_replay_that_says_so_and_never_blocks_other_times(shop: Shop) -> None:
    load_orders(shop.db, {T0 - timedelta(hours=1): 100})
    past = T0 - timedelta(hours=3)
    replay = shop.cli("check", "shop", "--at", past.isoformat())
    assert replay.exit_code == 0 and "replay" in replay.stdout
    assert shop.json("check", "shop", "--at", past.isoformat())["duplicate"] is True  # it was checked
    real = shop.json("check", "shop")  # the latest scheduled time: not blocked by the replay
    assert real["duplicate"] is False and real["replay"] is False
    assert real["scheduled_time"].startswith(T0.isoformat()[:16])


def test_a_dry_run_replay_never_blocks_the_real_run(shop: Shop) -> None:
    load_orders(shop.db, {T0 - timedelta(hours=1): 100})
    assert shop.cli("check", "shop", "--at", T0.isoformat(), "--dry-run").exit_code == 0
    assert shop.json("run", "--due")["checked"] == 1


# ------------------------------------------------------------------------------ interruptions


def test_ctrl_c_records_no_half_checked_run(shop: Shop, monkeypatch: pytest.MonkeyPatch) -> None:
    load_orders(shop.db, {T0 - timedelta(hours=1): 100})

    def interrupted(*_args: object, **_kwargs: object) -> None:
        raise KeyboardInterrupt  # as Ctrl-C would, while the source's data is being collected

    monkeypatch.setattr(driftguard.engine.Engine, "_decide_and_commit", interrupted)
    result = shop.cli("run")
    assert result.exit_code == 130 and "interrupted" in result.stderr and "Traceback" not in result.output
    store = SqliteStore(shop.state)
    try:
        assert store.runs("shop") == []  # nothing recorded: the next run checks that time again
    finally:
        store.close()


def test_sigterm_stops_like_ctrl_c(shop: Shop, monkeypatch: pytest.MonkeyPatch) -> None:
    import signal
    import threading

    if (
        threading.current_thread() is not threading.main_thread()
        or signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL
    ):
        pytest.skip("the CLI installs its SIGTERM handler only in a main thread that has none")

    def terminated(*_args: object, **_kwargs: object) -> None:
        os.kill(os.getpid(), signal.SIGTERM)  # delivered to the CLI's handler

    monkeypatch.setattr(driftguard.engine.Engine, "_decide_and_commit", terminated)
    result = shop.cli("check", "shop")
    assert result.exit_code == 143 and "interrupted" in result.stderr
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # restored when the command ends


# ------------------------------------------------------------------------------ latest values


def test_status_and_explain_show_each_checks_latest_value_and_explain_at_a_past_run(shop: Shop) -> None:
    counts = {0: 100, 1: 110, 2: 95}
    for k, rows in counts.items():
        at = T0 + timedelta(hours=k)
        load_orders(shop.db, {at - timedelta(hours=1): rows})
        shop.at(at)
        assert shop.cli("check", "shop").exit_code == 0
    key = ("orders", "volume", "rows_per_period")
    states = shop.json("status")["sources"][0]["states"]
    (volume,) = [s for s in states if (s["key"]["table"], s["key"]["check"], s["key"]["metric"]) == key]
    assert volume["latest_finding"]["explanation"]["observed"] == 95
    explained = shop.json("explain", "shop", "--all")
    (finding,) = [
        f for f in explained["findings"] if (f["key"]["table"], f["key"]["check"], f["key"]["metric"]) == key
    ]
    assert finding["explanation"]["observed"] == 95
    first = shop.json("explain", "shop", "--all", "--at", (T0 + timedelta(minutes=30)).isoformat())
    assert first["run"]["scheduled_time"].startswith(T0.isoformat()[:16])
    (finding,) = [
        f for f in first["findings"] if (f["key"]["table"], f["key"]["check"], f["key"]["metric"]) == key
    ]
    assert finding["explanation"]["observed"] == 100
    text = shop.cli("status").stdout
    assert "95" in text


# ------------------------------------------------------------------------------ one identity per check


def test_column_checks_are_told_apart_everywhere(shop: Shop) -> None:
    load_orders(shop.db, {T0 - timedelta(hours=1): 100})
    run = shop.json("run", "--fail-on", "never")["runs"][0]
    labels = {"shop.orders column/null_rate[amount]", "shop.orders column/null_rate[status]"}
    keys = {
        (f["key"]["metric"], f["key"]["column"]) for f in run["findings"] if f["key"]["check"] == "column"
    }
    assert keys == {("null_rate", "amount"), ("null_rate", "status")}
    for args in (
        ["check", "shop", "--all-findings", "--at", (T0 - timedelta(hours=2)).isoformat()],
        ["status"],
        ["explain", "shop", "--all"],
    ):
        out = shop.cli(*args).stdout
        assert all(label in out for label in labels), (args, out)


# ------------------------------------------------------------------------------ output


def test_output_outside_a_terminal_is_never_cut(shop: Shop, tmp_path: Path) -> None:
    long_table = "orders_with_a_rather_long_name_that_a_terminal_of_eighty_columns_would_cut"
    load_orders(shop.db, {T0 - timedelta(hours=h): 100 for h in range(1, 24 * 15)}, table=long_table)
    write_config(
        shop.config,
        shop.db,
        shop.state,
        tables=[{"name": long_table, "checks": {"volume": {"column": "created_at", "period": "1h"}}}],
    )
    os.environ.pop("COLUMNS", None)
    shop.cli("check", "shop")
    out = shop.cli("status").stdout
    assert f"shop.{long_table} volume/rows_per_period" in out
    assert "…" not in out
    assert max(len(line) for line in out.splitlines()) > 80


HOSTILE = "odd[/]name[bold]x\x1b[2J\x07"


def test_hostile_names_print_as_written_in_every_command(shop: Shop) -> None:
    """Markup in names prints literally; escape sequences and control characters never reach the
    terminal; nothing crashes on a name that looks like markup."""
    conn = sqlite3.connect(shop.db)
    with conn:
        conn.execute(
            f'create table "{HOSTILE}" (id integer primary key, created_at timestamp, "[red]c" text)'
        )
        conn.executemany(
            f'insert into "{HOSTILE}" (created_at) values (?)',  # noqa: S608 - test name
            [((T0 - timedelta(minutes=m)).strftime("%Y-%m-%d %H:%M:%S"),) for m in range(1, 3000, 7)],
        )
    conn.close()
    write_config(
        shop.config,
        shop.db,
        shop.state,
        tables=[
            {
                "name": HOSTILE,
                "checks": {
                    "volume": {"column": "created_at", "period": "1h"},
                    "schema": True,
                    "columns": [{"name": "[red]c", "metrics": ["null_rate"]}],
                },
            }
        ],
    )
    assert shop.cli("check", "shop", "--all-findings", "--fail-on", "never").exit_code == 0
    comment = "[/] closes [bold]nothing\x1b[31m"
    assert shop.cli("silence", "--source", "shop", "--duration", "1h", "--comment", comment).exit_code == 0
    for args in (
        [
            "check",
            "shop",
            "--all-findings",
            "--fail-on",
            "never",
            "--at",
            (T0 - timedelta(hours=1)).isoformat(),
        ],
        ["run", "--fail-on", "never", "--at", (T0 - timedelta(hours=2)).isoformat()],
        ["status", "--fail-on", "never"],
        ["history", "shop"],
        ["explain", "shop", "--all"],
        ["silences"],
        ["deliveries"],
        ["test-connection"],
    ):
        result = shop.cli(*args)
        assert result.exit_code == 0, (args, result.output)
        assert "\x1b" not in result.output and "\x07" not in result.output, args
        assert "Traceback" not in result.output
        if args[0] in ("check", "status", "history", "explain"):
            assert "odd[/]name[bold]x" in result.stdout, (args, result.stdout)
        if args[0] == "silences":
            assert "[/] closes [bold]nothing" in result.stdout


def test_every_command_takes_json(shop: Shop) -> None:
    from driftguard.cli import main

    without = [
        name for name, cmd in main.commands.items() if not any(p.name == "as_json" for p in cmd.params)
    ]
    assert without == []


def test_global_options_go_before_or_after_the_command(shop: Shop) -> None:
    assert hoist_global_options(["validate", "-c", "x.yaml", "--json"]) == [
        "-c",
        "x.yaml",
        "validate",
        "--json",
    ]
    assert hoist_global_options(["status", "--state=s.db", "-v"]) == ["--state=s.db", "-v", "status"]
    assert hoist_global_options(["silence", "--", "-c"]) == ["silence", "--", "-c"]
    after = shop.cli("validate", "--config", str(shop.config), "--json", config=False)
    assert after.exit_code == 0 and json.loads(after.stdout)["valid"] is True
    load_orders(shop.db, {T0 - timedelta(hours=1): 100})
    elsewhere = shop.root / "other.db"
    assert shop.cli("check", "shop", "--state", str(elsewhere)).exit_code == 0
    assert elsewhere.exists() and not shop.state.exists()


def test_verbose_logs_each_sql_statement_and_its_time(shop: Shop) -> None:
    load_orders(shop.db, {T0 - timedelta(hours=1): 100})
    result = shop.cli("check", "shop", "-v")
    sql = [line for line in result.stderr.splitlines() if line.startswith("sql ")]
    assert sql and all(" ms: " in line for line in sql)
    assert any("orders" in line for line in sql)


def test_a_terminal_shows_which_table_is_being_read(shop: Shop) -> None:
    import io

    from click.testing import CliRunner
    from rich.console import Console

    from driftguard.cli.common import CliContext
    from driftguard.cli.monitor import check, run

    load_orders(shop.db, {T0 - timedelta(hours=1): 100})
    for command, args in ((check, ["shop", "--at", (T0 - timedelta(hours=1)).isoformat()]), (run, [])):
        screen = io.StringIO()
        cli = CliContext(
            config_path=str(shop.config), _err_console=Console(file=screen, force_terminal=True, width=120)
        )
        try:
            result = CliRunner().invoke(command, args, obj=cli)
        finally:
            cli.close()
        assert result.exit_code == 0, result.output
        assert "shop: table orders" in screen.getvalue(), (command.name, screen.getvalue())


def test_a_run_with_anomalies_never_reads_ok(shop: Shop) -> None:
    # 20 rows keep every hour's null rates (column metrics are judged per hour): the thin load
    # is the one anomaly
    load_orders(shop.db, {T0 - timedelta(hours=1): 20})
    head = shop.cli("check", "shop").stdout.splitlines()[0]
    assert head.startswith("shop @ 2026-11-17 11:00 UTC: 1 anomaly"), head
    assert "last run 2026-11-17 11:00 UTC" in shop.cli("status").stdout
    assert ": ok" not in shop.cli("status").stdout.splitlines()[0]


def test_a_replay_that_could_not_reach_its_source_is_not_recorded(shop: Shop) -> None:
    """It did not check that time, so it must not stand for the real run of it."""
    load_orders(shop.db, {T0 - timedelta(hours=1): 100})
    hidden = shop.db.rename(shop.root / "away.db")
    replay = shop.cli("check", "shop", "--at", T0.isoformat())
    assert replay.exit_code == 3 and "not recorded" in replay.stderr
    hidden.rename(shop.db)
    real = shop.json("run", "--due")
    assert real["checked"] == 1 and real["runs"][0]["status"] == "ok" and not real["runs"][0]["duplicate"]
