"""`driftguard report`: one self-contained HTML file to look at, from any state (SQLite or DynamoDB)."""

from __future__ import annotations

import time
from pathlib import Path

import click

from driftguard.cli.common import CliContext, json_option, parse_time, pass_cli, print_json
from driftguard.config import Config
from driftguard.model import utcnow

DEFAULT_SINCE = "-28d"  # four weekly cycles: enough to see a weekly rhythm and what broke it


def _optional_config(cli: CliContext) -> Config | None:
    """The config when there is one (owners, tags, detection settings); a state alone is enough."""
    if cli.state_url and not Path(cli.config_path).exists():
        return None
    return cli.config


@click.command()
@click.option("--source", default=None, help="Only this source (default: every source in the state).")
@click.option(
    "--since",
    default=DEFAULT_SINCE,
    show_default=True,
    help="Start of the charts: ISO 8601 (UTC when no offset) or relative, e.g. -8w, -14d.",
)
@click.option(
    "--output",
    "-o",
    default="report.html",
    show_default=True,
    type=click.Path(dir_okay=False),
    help="The HTML file to write.",
)
@json_option
@pass_cli
def report(cli: CliContext, source: str | None, since: str, output: str, as_json: bool) -> None:
    """Write one HTML file (no network needed to open it): every check's state, its series with the
    expected band, anomalies, state changes, silences and labels, schema changes and deliveries."""
    from driftguard.report import build_report, write_report

    started = time.perf_counter()
    now = utcnow()
    start = parse_time(since, now=now, param="--since")
    if start >= now:
        raise click.BadParameter(f"{since!r} is not in the past", param_hint="--since")
    config = _optional_config(cli)
    store = cli.store
    model = build_report(
        store, now=now, since=start, source=source, config=config, state_label=cli.resolved_state_url
    )
    if source is not None and not model.checks:
        known = sorted({s.key.source for s in store.alert_states()})
        listed = ", ".join(known) if known else "none yet (run `driftguard run` first)"
        raise click.ClickException(f"no checks of source {source!r} in this state; its sources: {listed}")
    path = Path(output)
    try:
        size = write_report(model, path)
    except OSError as e:
        raise click.ClickException(f"{output}: cannot write the report: {e.strerror or e}") from None
    seconds = time.perf_counter() - started
    charts = sum(c.chart is not None for c in model.checks)
    if as_json:
        print_json(
            {
                "output": str(path),
                "bytes": size,
                "checks": len(model.checks),
                "charts": charts,
                "seconds": seconds,
            }
        )
        return
    summary = f"{len(model.checks)} checks, {charts} charts, {size / 1024:.0f} kB in {seconds:.1f}s"
    click.echo(f"report: {summary} -> {path}")


commands: list[click.Command] = [report]
