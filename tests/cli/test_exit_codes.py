"""Exit codes are a contract, the same for every command: 0 ok, 1 needs attention (per
--fail-on), 2 usage or config error, 3 a source, the state or a delivery failed."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest
from click.testing import Result
from tests.cli.conftest import T0, Shop, load_orders


def normal_run(shop: Shop) -> None:
    load_orders(shop.db, {T0 - timedelta(hours=1): 100})
    assert shop.cli("check", "shop").exit_code == 0


def broken_run(shop: Shop) -> None:
    load_orders(shop.db, {T0 - timedelta(hours=1): 3})
    assert shop.cli("check", "shop").exit_code == 1


def source_down(shop: Shop) -> None:
    shop.db.unlink()


def corrupt_state(shop: Shop) -> None:
    shop.state.parent.mkdir(parents=True, exist_ok=True)
    shop.state.write_bytes(b"this is not a SQLite database, it is a text file" * 100)


def failing_channel(shop: Shop) -> None:
    """Notifications go to a file whose path is a folder: every delivery fails and is parked."""
    (shop.root / "notices.jsonl").mkdir()


def nothing(shop: Shop) -> None:
    pass


def parked_delivery(shop: Shop) -> None:
    failing_channel(shop)
    load_orders(shop.db, {T0 - timedelta(hours=1): 3})
    assert shop.cli("check", "shop").exit_code == 3  # the alert could not be delivered


def with_schema_snapshot(shop: Shop) -> None:
    normal_run(shop)


def wrong_config(shop: Shop) -> None:
    shop.config.write_text(
        "sources:\n  - name: shop\n    kind: sqlite\n    connection: {path: x.db, pasword: 1}\n"
    )


Case = tuple[str, Callable[[Shop], None], list[str], int]

CASES: list[Case] = [
    # validate
    ("validate ok", nothing, ["validate"], 0),
    ("validate bad config", wrong_config, ["validate"], 2),
    # check
    ("check ok", lambda s: load_orders(s.db, {T0 - timedelta(hours=1): 100}), ["check", "shop"], 0),
    ("check anomaly", lambda s: load_orders(s.db, {T0 - timedelta(hours=1): 3}), ["check", "shop"], 1),
    (
        "check anomaly, --fail-on never",
        lambda s: load_orders(s.db, {T0 - timedelta(hours=1): 3}),
        ["check", "shop", "--fail-on", "never"],
        0,
    ),
    ("check unknown source", nothing, ["check", "nope"], 2),
    ("check future --at", nothing, ["check", "shop", "--at", (T0 + timedelta(hours=2)).isoformat()], 2),
    ("check source down", source_down, ["check", "shop"], 3),
    (
        "check delivery failed",
        parked_delivery,
        ["check", "shop", "--at", (T0 - timedelta(hours=1)).isoformat()],
        3,
    ),
    # run
    ("run ok", lambda s: load_orders(s.db, {T0 - timedelta(hours=1): 100}), ["run"], 0),
    ("run anomaly", lambda s: load_orders(s.db, {T0 - timedelta(hours=1): 3}), ["run"], 1),
    ("run unknown source", nothing, ["run", "--source", "nope"], 2),
    ("run bad option", nothing, ["run", "--workers", "0"], 2),
    ("run source down", source_down, ["run"], 3),
    ("run state corrupt", corrupt_state, ["run"], 3),
    # status
    ("status ok", normal_run, ["status"], 0),
    ("status firing", broken_run, ["status"], 1),
    ("status firing, --fail-on never", broken_run, ["status", "--fail-on", "never"], 0),
    ("status no state", nothing, ["status"], 2),
    ("status source failed", lambda s: (source_down(s), s.cli("check", "shop")), ["status"], 3),
    ("status parked delivery", parked_delivery, ["status"], 3),
    ("status state corrupt", corrupt_state, ["status"], 3),
    # history / explain
    ("history ok", normal_run, ["history", "shop"], 0),
    ("history no state", nothing, ["history", "shop"], 2),
    ("history unknown table", normal_run, ["history", "shop", "--table", "nope"], 2),
    ("history state corrupt", corrupt_state, ["history", "shop"], 3),
    ("explain ok", normal_run, ["explain", "shop"], 0),
    ("explain no state", nothing, ["explain", "shop"], 2),
    ("explain --at before any run", normal_run, ["explain", "shop", "--at", "2020-01-01T00:00Z"], 2),
    ("explain state corrupt", corrupt_state, ["explain", "shop"], 3),
    # silences
    ("silence ok", normal_run, ["silence", "--tag", "tier-1", "--duration", "1h", "--comment", "c"], 0),
    (
        "silence unknown table",
        normal_run,
        ["silence", "--table", "nope", "--duration", "1h", "--comment", "c"],
        2,
    ),
    ("silences ok", normal_run, ["silences"], 0),
    ("silences no state", nothing, ["silences"], 2),
    ("silences state corrupt", corrupt_state, ["silences"], 3),
    ("unsilence unknown", normal_run, ["unsilence", "abc"], 2),
    # deliveries / redeliver / test-channel
    ("deliveries ok", normal_run, ["deliveries"], 0),
    ("deliveries no state", nothing, ["deliveries"], 2),
    ("deliveries state corrupt", corrupt_state, ["deliveries"], 3),
    ("redeliver nothing parked", normal_run, ["redeliver", "--all"], 0),
    ("redeliver unknown id", normal_run, ["redeliver", "n-1"], 2),
    ("redeliver still failing", parked_delivery, ["redeliver", "--all"], 3),
    ("test-channel ok", nothing, ["test-channel", "audit"], 0),
    ("test-channel unknown", nothing, ["test-channel", "nope"], 2),
    ("test-channel failing", failing_channel, ["test-channel", "audit"], 3),
    # operator actions
    ("accept-schema ok", normal_run, ["accept-schema", "shop", "orders"], 0),
    ("accept-schema unknown table", normal_run, ["accept-schema", "shop", "nope"], 2),
    (
        "label ok",
        normal_run,
        [
            "label",
            "shop",
            "--table",
            "orders",
            "--check",
            "volume",
            "--metric",
            "rows_per_period",
            "--from",
            "-30d",
        ],
        0,
    ),
    (
        "label unknown metric",
        normal_run,
        ["label", "shop", "--table", "orders", "--check", "volume", "--metric", "row_count", "--from", "-2d"],
        2,
    ),
    (
        "label --to before --from",
        normal_run,
        [
            "label",
            "shop",
            "--table",
            "orders",
            "--check",
            "volume",
            "--metric",
            "rows_per_period",
            "--from",
            "-1d",
            "--to",
            "-2d",
        ],
        2,
    ),
    # test-connection
    ("test-connection ok", nothing, ["test-connection"], 0),
    ("test-connection unknown source", nothing, ["test-connection", "nope"], 2),
    ("test-connection source down", source_down, ["test-connection", "shop"], 3),
    # setup commands
    ("init ok", nothing, ["init", "new.yaml", "--kind", "sqlite"], 0),
    ("init exists", nothing, ["init", "dg.yaml"], 2),
    ("schema ok", nothing, ["schema"], 0),
    ("schedules ok", nothing, ["schedules"], 0),
    ("schedules bad config", wrong_config, ["schedules"], 2),
    ("unknown command", nothing, ["frobnicate"], 2),
]


@pytest.mark.parametrize(("name", "prepare", "args", "code"), CASES, ids=[c[0] for c in CASES])
def test_exit_code(
    shop: Shop, name: str, prepare: Callable[[Shop], None], args: list[str], code: int
) -> None:
    prepare(shop)
    result = shop.cli(*args)
    assert result.exit_code == code, (name, result.output)
    assert "Traceback" not in result.output
    if code in (2, 3):
        assert result.stderr.strip(), "a failure always says why on stderr"


def test_json_runs_report_the_same_codes(shop: Shop) -> None:
    load_orders(shop.db, {T0 - timedelta(hours=1): 3})
    result = shop.cli("run", "--json")
    assert result.exit_code == 1
    (run,) = json.loads(result.stdout)["runs"]
    assert any(f["status"] == "anomaly" for f in run["findings"])


def test_backtest_codes(tmp_path: Path, shop: Shop) -> None:
    good = tmp_path / "series.csv"
    good.write_text(
        "timestamp,value\n" + "".join(f"2026-01-01T{h:02d}:00:00Z,{100 + h % 3}\n" for h in range(24))
    )
    bad = tmp_path / "bad.csv"
    bad.write_text("when,value\n2026-01-01T00:00:00Z,1\n")
    assert shop.cli("backtest", "--check", "volume", "--input", str(good), "--period", "1h").exit_code == 0
    assert shop.cli("backtest", "--check", "volume", "--input", str(bad)).exit_code == 2
    into_folder = shop.cli("backtest", "--check", "volume", "--input", str(good), "--output", str(tmp_path))
    assert into_folder.exit_code == 3 and "cannot write" in into_folder.stderr


def test_a_state_without_credentials_is_one_line_not_a_traceback(
    shop: Shop, monkeypatch: pytest.MonkeyPatch
) -> None:
    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(shop.root / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(shop.root / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    result: Result = shop.cli("--state", "dynamodb://driftguard-state?region=eu-west-1", "status")
    assert result.exit_code == 3, result.output
    assert "Traceback" not in result.output
    assert "AWS credentials" in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_backtest_exact_fits_every_row_and_alerts_on_the_same_rows(tmp_path: Path, shop: Shop) -> None:
    series = tmp_path / "series.csv"

    def value(h: int) -> int:
        return (400 if h == 400 else 100) + 40 * (9 <= h % 24 < 18) + h * 7 % 11

    rows = [f"2026-01-{1 + h // 24:02d}T{h % 24:02d}:00:00Z,{value(h)}\n" for h in range(24 * 21)]
    series.write_text("timestamp,value\n" + "".join(rows))
    kept, exact = tmp_path / "kept.csv", tmp_path / "exact.csv"
    assert (
        shop.cli("backtest", "--check", "volume", "--input", str(series), "--output", str(kept)).exit_code
        == 0
    )
    run = shop.cli("backtest", "--check", "volume", "--input", str(series), "--output", str(exact), "--exact")
    assert run.exit_code == 0
    kept_rows = [line.split(",") for line in kept.read_text().splitlines()[1:]]
    exact_rows = [line.split(",") for line in exact.read_text().splitlines()[1:]]
    assert [r[-1] for r in kept_rows] == [r[-1] for r in exact_rows]  # the same rows alert
    assert kept_rows[400][-1] == "1"
    assert [r[2] for r in kept_rows] != [r[2] for r in exact_rows]  # kept fits judged some rows
