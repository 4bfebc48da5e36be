"""`driftguard demo`: the whole monitor on an embedded SQLite shop, in seconds, no network."""

from __future__ import annotations

import os
import shutil
import sqlite3
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import click

from driftguard.cli.common import json_option, make_console, print_json
from driftguard.config import load_config
from driftguard.demo import HISTORY_DAYS, break_things, build_database, demo_clock, demo_paths, write_config
from driftguard.engine import Engine, RunOutcome
from driftguard.model import FindingStatus
from driftguard.store import open_store

if TYPE_CHECKING:
    from rich.console import Console


def _count(db: Path, table: str) -> int:
    conn = sqlite3.connect(db)
    try:
        return int(conn.execute(f"select count(*) from {table}").fetchone()[0])  # noqa: S608 - fixed demo names
    finally:
        conn.close()


def _show_run(console: Console, title: str, outcome: RunOutcome) -> None:
    from driftguard.cli.display import findings_table, heading

    heading(console, title)
    problems = [f for f in outcome.findings if f.status != FindingStatus.OK]
    ok = len(outcome.findings) - len(problems)
    console.print(f"{len(outcome.findings)} checks: {ok} OK, {len(problems)} need attention")
    if problems:
        console.print(findings_table(problems, show_ok=False))


@click.command()
@click.option(
    "--dir",
    "directory",
    default=".driftguard/demo",
    show_default=True,
    type=click.Path(file_okay=False),
    help="Where the demo database, config and state go (recreated each time).",
)
@click.option("--seed", default=7, show_default=True, help="Seed of the generated data.")
@json_option
def demo(directory: str, seed: int, as_json: bool) -> None:
    """Build a small shop database with five weeks of history and one bad hour, then watch it."""
    from driftguard.cli.display import fmt_time, heading, states_table
    from driftguard.cli.text import esc

    started = time.perf_counter()
    console = make_console()
    console.quiet = as_json
    paths = demo_paths(Path(directory))
    now_hour = demo_clock()
    build_database(paths, now_hour, seed=seed)
    write_config(paths)
    config = load_config(paths.config)
    if as_json:  # keep stdout one JSON document: notifications go to the file channel only
        config = config.model_copy(update={"channels": [c for c in config.channels if c.type != "console"]})
    store = open_store(str(paths.state))
    engine = Engine(config, store)
    db = paths.database
    console.print(
        f"[bold]DriftGuard demo[/bold]: a shop in SQLite ({esc(db)}), {HISTORY_DAYS} days of history: "
        f"orders {_count(db, 'orders'):,} rows loaded hourly, events {_count(db, 'events'):,} rows "
        f"every 15 min, customers {_count(db, 'customers'):,}."
    )
    first = engine.check("shop", now_hour - timedelta(hours=1))
    _show_run(
        console,
        f"Run 1 at {fmt_time(first.scheduled_time)}: first check, history backfilled from the tables",
        first,
    )
    break_things(paths, now_hour)
    console.print(
        "\n[bold yellow]Meanwhile:[/bold yellow] the last hourly load of orders brings 5 rows "
        "(2 with negative "
        "amounts); a migration drops customers.lifetime_value and adds ltv_cents.\n"
    )
    second = engine.check("shop", now_hour)
    _show_run(console, f"Run 2 at {fmt_time(second.scheduled_time)}", second)
    states = store.alert_states("shop")
    heading(console, "Alert states (driftguard status)")
    console.print(states_table(states, now_hour + timedelta(minutes=5)))
    elapsed = time.perf_counter() - started
    cfg = paths.config
    exe = (
        "driftguard" if shutil.which("driftguard") else os.path.relpath(sys.argv[0])
    )  # e.g. .venv/bin/driftguard
    console.print(
        f"\nDone in {elapsed:.1f}s. Notifications were printed above and appended to {paths.notifications}.\n"
        "Try next:\n"
        f"  {exe} -c {cfg} explain shop          # observed, expected, method and training window\n"
        f"  {exe} -c {cfg} history shop --table orders\n"
        f"  {exe} -c {cfg} silence --source shop --table orders --duration 2h --comment 'reload'\n"
        f"  {exe} -c {cfg} accept-schema shop customers\n"
        f"  {exe} init   # a starter config for your own database",
        markup=False,
        soft_wrap=True,
    )
    store.close()
    if as_json:
        print_json(
            {
                "directory": str(paths.directory),
                "config": str(paths.config),
                "runs": [first.summary(), second.summary()],
                "states": [s.model_dump(mode="json") for s in states],
                "seconds": round(elapsed, 2),
            }
        )


commands = [demo]
