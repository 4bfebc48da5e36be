"""Monitoring commands: init, validate, schema, check, run, status, history, explain,
accept-schema, label, deliveries, redeliver."""

from __future__ import annotations

import json
import os
import sys
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from contextlib import AbstractContextManager, nullcontext, redirect_stdout
from pathlib import Path
from typing import Any

import click

from driftguard.cli.common import CliContext, json_option, parse_time, pass_cli, print_json
from driftguard.config import json_schema
from driftguard.detect.kinds import has_series, learned_kinds
from driftguard.engine import Engine, RunOutcome, due_runs
from driftguard.errors import ConfigError
from driftguard.model import (
    AlertStateName,
    CheckKey,
    CheckKind,
    DeliveryStatus,
    FindingStatus,
    PointLabel,
    SchemaBaseline,
    utcnow,
)

# ---------------------------------------------------------------------------------------- init

_SCAFFOLD = """\
# DriftGuard configuration. `driftguard validate` checks it; `driftguard schema` prints the
# JSON Schema for editor completion. Credentials are never written here: reference them.
version: 1

defaults:
  schedule: {{rate: 1h}}          # or {{cron: "*/15 * * * *", timezone: Europe/Berlin}}
  statement_timeout: 30s

sources:
  - name: {name}
    kind: {kind}
    connection:
{connection}
    owner: "@data-platform"
    tags: [tier-1]
    tables:
      - name: orders
{schema_line}        checks:
          freshness: {{column: updated_at, max_age: 6h}}   # max_age: an optional hard limit
          volume: {{column: created_at, period: 1h}}        # rows per hour, seasonal baseline
          schema: true                                   # learned; accept changes with accept-schema
          columns:                                       # per hour of the volume column; else sampled
            - name: amount
              metrics: [null_rate, mean, min, max]
    sql_checks:
      - name: no_negative_totals
        description: Order totals are never negative
        sql: |
          select case when count(*) > 0 then 'ALERT' else 'OK' end as status,
                 count(*) as actual, 0 as threshold
          from orders where amount < 0
    # Learned metrics: a read-only query returning `value` (optionally `segment`: one series per
    # value; `ts`: the time of each value, whose earlier rows the first run learns from).
    # sql_metrics:
    #   - name: orders_per_status
    #     sql: select status as segment, count(*) as value from orders group by status
    #   - name: paid_per_hour
    #     period: 1h
    #     sql: select paid_hour as ts, count(*) as value from payments group by paid_hour

channels:
  - {{name: console, type: console}}
  - {{name: alerts-file, type: file, path: .driftguard/notifications.jsonl}}

route:
  receivers: [console, alerts-file]
  # end_silences_on_resolve: true    # a silence ends when the alert it muted resolves
  # inhibit_when_source_down: true   # no table alerts while their source is unreachable

alerting:
  repeat_interval: 4h
  error_after_failures: 2

state:
  path: .driftguard/state.db
"""

_CONNECTIONS = {
    "postgres": (
        "      host: 127.0.0.1\n      port: 5432\n      database: analytics\n      user: driftguard\n"
        "      password_env: DRIFTGUARD_PG_PASSWORD   # in AWS: password_secret: NAME_OR_ARN\n"
    ),
    "mysql": (
        "      host: 127.0.0.1\n      port: 3306\n      database: analytics\n      user: driftguard\n"
        "      password_env: DRIFTGUARD_MYSQL_PASSWORD\n"
    ),
    "sqlite": "      path: ./analytics.db\n",
    "duckdb": "      path: ./analytics.duckdb   # opened read-only; needs pip install 'driftguard[duckdb]'\n",
}


@click.command()
@click.argument("path", default="driftguard.yaml", type=click.Path(dir_okay=False))
@click.option("--kind", type=click.Choice(list(_CONNECTIONS)), default="postgres", show_default=True)
@click.option("--name", default="warehouse", show_default=True, help="Name of the first source.")
@click.option("--force", is_flag=True, help="Overwrite an existing file.")
def init(path: str, kind: str, name: str, force: bool) -> None:
    """Write a commented starter config to PATH."""
    target = Path(path)
    if target.exists() and not force:
        raise click.ClickException(f"{target} exists; use --force to overwrite it")
    text = _SCAFFOLD.format(
        name=name,
        kind=kind,
        connection=_CONNECTIONS[kind],
        schema_line="        schema: public\n" if kind == "postgres" else "",
    )
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text, encoding="utf-8")
    click.echo(f"wrote {target}; edit it, then run: driftguard --config {target} validate")


# ---------------------------------------------------------------------------------------- validate


@click.command()
@json_option
@pass_cli
def validate(cli: CliContext, as_json: bool) -> None:
    """Check the config without touching any source."""
    try:
        config = cli.config
    except ConfigError as e:
        if as_json:
            print_json({"valid": False, "config": cli.config_path, "problems": e.problems})
            sys.exit(2)
        raise
    summary = [
        {
            "source": s.name,
            "kind": s.kind,
            "schedule": config.schedule_of(s).aws_expression(),
            "timezone": config.schedule_of(s).timezone,
            "tables": len(s.tables),
            "sql_checks": len(s.sql_checks),
            "owner": s.owner,
            "tags": s.tags,
        }
        for s in config.sources
    ]
    if as_json:
        print_json(
            {
                "valid": True,
                "config": cli.config_path,
                "problems": [],
                "sources": summary,
                "channels": [c.name for c in config.channels],
            }
        )
        return
    tables = sum(s["tables"] for s in summary)  # type: ignore[misc]
    click.echo(
        f"{cli.config_path}: valid — {len(summary)} source(s), {tables} table(s), "
        f"{len(config.channels)} channel(s)"
    )
    for s in summary:
        click.echo(
            f"  {s['source']:<24} {s['kind']:<8} {s['schedule']:<24} tables={s['tables']} "
            f"sql_checks={s['sql_checks']}"
        )


@click.command()
def schema() -> None:
    """Print the config's JSON Schema (for editor completion)."""
    click.echo(json.dumps(json_schema(), indent=2))


# ---------------------------------------------------------------------------------------- check / run


def _stdout_for_reports(as_json: bool) -> AbstractContextManager[object]:
    """With --json, stdout is one JSON document: what the run prints (console notifications)
    goes to stderr instead."""
    return redirect_stdout(sys.stderr) if as_json else nullcontext()


def _engine(cli: CliContext) -> Engine:
    return Engine(cli.config, cli.store)


def _print_outcome(cli: CliContext, outcome: RunOutcome, *, show_ok: bool) -> None:
    from driftguard.cli.display import findings_table, fmt_time

    when = fmt_time(outcome.scheduled_time)
    if outcome.duplicate:
        cli.console.print(
            f"[dim]{outcome.source}: already checked for {when} ({outcome.run.status.value}); nothing "
            "changed. Use --at to check another time.[/dim]"
        )
        return
    head = f"{outcome.source} @ {when}: {outcome.run.status.value}"
    if outcome.dry_run:
        head += " (dry run: nothing stored, nothing sent)"
    cli.console.print(f"[bold]{head}[/bold]")
    if outcome.run.error:
        cli.console.print(f"  [magenta]{outcome.run.error}[/magenta]")
    counts = Counter(f.status for f in outcome.findings)
    quiet = {FindingStatus.OK, FindingStatus.LEARNING}
    visible = [f for f in outcome.findings if show_ok or f.status not in quiet]
    summary = ", ".join(
        f"{n} {status.value}" for status, n in sorted(counts.items(), key=lambda kv: kv[0].value)
    )
    if visible:
        cli.console.print(findings_table(visible, show_ok=show_ok))
    if outcome.findings:
        cli.console.print(f"  {len(outcome.findings)} check(s): {summary}")
    learning = [
        f.explanation.needed_points or 0 for f in outcome.findings if f.status == FindingStatus.LEARNING
    ]
    if learning and not show_ok:
        cli.console.print(
            f"  [cyan]{len(learning)} still learning (up to {max(learning)} more run(s)); "
            "--all-findings lists them[/cyan]"
        )
    for d in outcome.deliveries:
        if d.status == DeliveryStatus.FAILED:
            cli.console.print(f"  [red]notification to {d.channel} failed and was parked: {d.error}[/red]")


@click.command()
@click.argument("source")
@click.option(
    "--at", "at", default=None, help="Scheduled time to check for (default: the latest per schedule)."
)
@click.option("--dry-run", is_flag=True, help="Collect and judge, but store nothing and send nothing.")
@click.option("--all-findings", is_flag=True, help="Also list checks that are OK.")
@json_option
@pass_cli
def check(
    cli: CliContext, source: str, at: str | None, dry_run: bool, all_findings: bool, as_json: bool
) -> None:
    """Check one source now."""
    config = cli.config
    src = config.source(source)
    now = utcnow()
    when = parse_time(at, now=now, param="--at") if at else config.schedule_of(src).latest_fire(now)
    with _stdout_for_reports(as_json):
        outcome = _engine(cli).check(src.name, when, dry_run=dry_run)
    if as_json:
        print_json(outcome.summary())
    else:
        _print_outcome(cli, outcome, show_ok=all_findings or dry_run)


@click.command()
@click.option("--source", "sources", multiple=True, help="Only these sources (repeatable).")
@click.option("--due", is_flag=True, help="Only sources whose latest scheduled time has not been checked.")
@click.option("--at", "at", default=None, help="Check every source for this scheduled time instead.")
@click.option("--dry-run", is_flag=True, help="Collect and judge, but store nothing and send nothing.")
@click.option(
    "--workers", default=4, show_default=True, type=click.IntRange(1, 64), help="Sources in parallel."
)
@click.option(
    "--fail-on-alert", is_flag=True, help="Exit with status 3 when any check is anomalous or failed."
)
@json_option
@pass_cli
def run(
    cli: CliContext,
    sources: tuple[str, ...],
    due: bool,
    at: str | None,
    dry_run: bool,
    workers: int,
    fail_on_alert: bool,
    as_json: bool,
) -> None:
    """Check all sources (or the selected / due ones)."""
    config = cli.config
    for name in sources:
        config.source(name)  # unknown names fail before any work
    now = utcnow()
    if due:
        plan = list(due_runs(config, cli.store, now, sources or None))
    else:
        fixed = parse_time(at, now=now, param="--at") if at else None
        plan = [
            (s.name, fixed or config.schedule_of(s).latest_fire(now))
            for s in config.sources
            if not sources or s.name in sources
        ]
    engine = _engine(cli)
    with _stdout_for_reports(as_json):
        outcomes = _run_plan(cli, engine, plan, workers=workers, dry_run=dry_run, quiet=as_json)
    if as_json:
        print_json({"runs": [o.summary() for o in outcomes], "checked": len(outcomes)})
    else:
        if not plan:
            cli.console.print("nothing due" if due else "no sources configured")
        for o in outcomes:
            _print_outcome(cli, o, show_ok=False)
    if fail_on_alert and any(o.anomalies or o.run.error for o in outcomes):
        sys.exit(3)


def _run_plan(
    cli: CliContext, engine: Engine, plan: list[tuple[str, Any]], *, workers: int, dry_run: bool, quiet: bool
) -> list[RunOutcome]:
    if quiet or len(plan) <= 3 or not cli.err_console.is_terminal:
        return _check_all(engine, plan, workers=workers, dry_run=dry_run, advance=lambda: None)
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    progress = Progress(
        TextColumn("checking"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=cli.err_console,
        transient=True,
    )
    with progress:
        task = progress.add_task("checking", total=len(plan))
        return _check_all(
            engine, plan, workers=workers, dry_run=dry_run, advance=lambda: progress.advance(task)
        )


def _check_all(
    engine: Engine,
    plan: list[tuple[str, Any]],
    *,
    workers: int,
    dry_run: bool,
    advance: Callable[[], None],
) -> list[RunOutcome]:
    """Check the plan's sources `workers` at a time; outcomes in plan order."""
    results: dict[int, RunOutcome] = {}
    with ThreadPoolExecutor(max_workers=workers) as pool:
        futures = {
            pool.submit(engine.check, name, when, dry_run=dry_run): i for i, (name, when) in enumerate(plan)
        }
        for fut in as_completed(futures):
            results[futures[fut]] = fut.result()
            advance()
    return [results[i] for i in sorted(results)]


# ---------------------------------------------------------------------------------------- status


@click.command()
@click.option("--source", default=None, help="Only this source.")
@json_option
@pass_cli
def status(cli: CliContext, source: str | None, as_json: bool) -> None:
    """Per source and check: state, since when, last value, expected; plus parked deliveries."""
    from driftguard.cli.display import fmt_time, states_table

    config = cli.config
    names = [config.source(source).name] if source else [s.name for s in config.sources]
    now = utcnow()
    store = cli.store
    report = [(name, next(iter(store.runs(name, limit=1)), None), store.alert_states(name)) for name in names]
    failed = store.failed_deliveries()
    silences = store.silences(active_at=now)
    if as_json:
        print_json(
            {
                "sources": [{"source": n, "last_run": run, "states": states} for n, run, states in report],
                "failed_deliveries": [f.model_dump(mode="json") for f in failed],
                "active_silences": silences,
            }
        )
        return
    for name, run_rec, states in report:
        last = (
            f"last run {fmt_time(run_rec.scheduled_time, now)}: {run_rec.status.value}"
            if run_rec
            else "never run"
        )
        firing = sum(s.state == AlertStateName.FIRING for s in states)
        cli.console.print(
            f"[bold]{name}[/bold] — {last}" + (f", [red]{firing} firing[/red]" if firing else "")
        )
        if states:
            cli.console.print(states_table(states, now))
    if silences:
        cli.console.print(f"[dim]{len(silences)} active silence(s): driftguard silences[/dim]")
    if failed:
        cli.console.print(
            f"[bold red]{len(failed)} notification(s) failed and are parked[/bold red]"
            " (driftguard deliveries --failed; retry with driftguard redeliver --all)"
        )
        for f in failed[:10]:
            cli.console.print(f"  {fmt_time(f.at)} {f.channel}: {f.error} (after {f.attempts} attempt(s))")


# ---------------------------------------------------------------------------------------- history / explain


@click.command()
@click.argument("source")
@click.option("--table", default=None, help="Only this table.")
@click.option("--as-of", "as_of", default=None, help="Show state as it was at this time (ISO 8601, or -3d).")
@click.option("--limit", default=10, show_default=True, type=click.IntRange(1, 1000))
@json_option
@pass_cli
def history(
    cli: CliContext, source: str, table: str | None, as_of: str | None, limit: int, as_json: bool
) -> None:
    """Snapshots and alert transitions of a source, as they were at a time."""
    from driftguard.cli.display import fmt_time, fmt_value

    src = cli.config.source(source)
    now = utcnow()
    when = parse_time(as_of, now=now, param="--as-of") if as_of else None
    snaps = cli.store.snapshots(src.name, as_of=when, limit=limit)
    trail = cli.store.transitions(src.name, table=table, as_of=when, limit=limit * 5)
    if as_json:
        print_json(
            {
                "source": src.name,
                "as_of": when,
                "snapshots": [
                    s.model_copy(
                        update={"tables": [t for t in s.tables if table is None or t.table == table]}
                    )
                    for s in snaps
                ],
                "transitions": trail,
            }
        )
        return
    cli.console.print(f"[bold]{src.name}[/bold] history" + (f" as of {fmt_time(when)}" if when else ""))
    for snap in snaps:
        cli.console.print(f"  snapshot {fmt_time(snap.scheduled_time)} ({snap.duration_ms:.0f} ms)")
        for t in snap.tables:
            if table and t.table != table:
                continue
            bits = [f"rows={fmt_value(t.row_count)}" if t.row_count is not None else ""]
            if t.period_counts:
                bits.append(f"last period={t.period_counts[-1].count:,}")
            if t.last_modified:
                bits.append(f"last update={fmt_time(t.last_modified)}")
            if t.columns is not None:
                bits.append(f"columns={len(t.columns)}")
            if t.error:
                bits.append(f"error={t.error}")
            cli.console.print(f"    {t.table}: " + " ".join(b for b in bits if b))
    if trail:
        cli.console.print("  [bold]transitions[/bold] (newest first)")
        for tr in trail:
            muted = f" [dim](silenced by {', '.join(tr.silenced_by)})[/dim]" if tr.silenced_by else ""
            cli.console.print(
                f"    {fmt_time(tr.at)} {tr.key.label}: {tr.from_state.value} → {tr.to_state.value} "
                f"({tr.severity.value}) {tr.reason}{muted}"
            )
    if not snaps and not trail:
        cli.console.print("  nothing recorded yet: run `driftguard check " + src.name + "`")


@click.command()
@click.argument("source")
@click.option("--table", default=None, help="Only this table.")
@click.option("--all", "show_all", is_flag=True, help="Explain OK checks too.")
@json_option
@pass_cli
def explain(cli: CliContext, source: str, table: str | None, show_all: bool, as_json: bool) -> None:
    """Why the last decision: observed, expected, rule, training window."""
    from driftguard.cli.display import explanation_lines, sparkline

    src = cli.config.source(source)
    states = [s for s in cli.store.alert_states(src.name) if table is None or s.key.table == table]
    findings = [s.last_finding for s in states if s.last_finding is not None]
    if not show_all:
        findings = [f for f in findings if f.status != FindingStatus.OK] or findings
    if as_json:
        print_json({"source": src.name, "findings": findings})
        return
    if not findings:
        cli.console.print(f"nothing decided yet for {src.name}: run `driftguard check {src.name}`")
        return
    for f in sorted(findings, key=lambda f: (f.status == FindingStatus.OK, f.key.label)):
        lines = explanation_lines(f)
        cli.console.print(f"[bold]{lines[0]}[/bold]")
        for line in lines[1:]:
            cli.console.print(line, markup=False)
        if has_series(f.key.check):
            recent = cli.store.series(f.key, before=f.ts, limit=24)
            if recent:
                cli.console.print(f"  recent:    {sparkline(recent)}  ({len(recent)} points before this run)")
        cli.console.print()


# ---------------------------------------------------------------------------------------- operator actions


@click.command("accept-schema")
@click.argument("source")
@click.argument("table")
@click.option("--by", "by", default=lambda: os.environ.get("USER", "operator"), help="Who accepts (audit).")
@pass_cli
def accept_schema(cli: CliContext, source: str, table: str, by: str) -> None:
    """Accept a table's current schema as its new baseline."""
    from driftguard.cli.display import fmt_time

    src = cli.config.source(source)
    snaps = cli.store.snapshots(src.name, limit=1)
    snap_table = snaps[0].table(table) if snaps else None
    if snap_table is None or snap_table.columns is None:
        raise click.ClickException(
            f"no collected schema for {src.name}.{table}; run `driftguard check {src.name}` first"
        )
    cli.store.put_schema_baseline(
        SchemaBaseline(
            source=src.name, table=table, columns=snap_table.columns, accepted_at=utcnow(), accepted_by=by
        )
    )
    click.echo(
        f"accepted the schema of {src.name}.{table} as of {fmt_time(snaps[0].scheduled_time)} "
        f"({len(snap_table.columns)} columns) by {by}"
    )


@click.command()
@click.argument("source")
@click.option("--table", required=True)
@click.option("--check", "check_kind", required=True, type=click.Choice(learned_kinds()))
@click.option("--metric", required=True, help="Series metric, e.g. row_count, period_count, null_rate.")
@click.option("--column", default=None)
@click.option("--from", "start", required=True, help="Start (ISO 8601 or -2d).")
@click.option("--to", "end", default="now", show_default=True)
@click.option(
    "--as",
    "label",
    type=click.Choice(["incident", "maintenance", "none"]),
    default="incident",
    show_default=True,
)
@pass_cli
def label(
    cli: CliContext,
    source: str,
    table: str,
    check_kind: str,
    metric: str,
    column: str | None,
    start: str,
    end: str,
    label: str,
) -> None:
    """Mark points as incident or maintenance so the baseline does not learn from them."""
    src = cli.config.source(source)
    now = utcnow()
    key = CheckKey(source=src.name, table=table, check=CheckKind(check_kind), metric=metric, column=column)
    n = cli.store.label_points(
        key,
        parse_time(start, now=now, param="--from"),
        parse_time(end, now=now, param="--to"),
        PointLabel.NONE if label == "none" else PointLabel(label),
    )
    click.echo(f"labelled {n} point(s) of {key.label} as {label}")


@click.command()
@click.option("--failed", "only_failed", is_flag=True, help="Only parked (failed) deliveries.")
@json_option
@pass_cli
def deliveries(cli: CliContext, only_failed: bool, as_json: bool) -> None:
    """Notifications waiting in the outbox, and parked failed deliveries."""
    from driftguard.cli.display import fmt_time

    failed = cli.store.failed_deliveries()
    pending = [] if only_failed else cli.store.pending_notifications()
    if as_json:
        print_json({"pending": pending, "failed": [f.model_dump(mode="json") for f in failed]})
        return
    for n in pending:
        click.echo(f"pending  {n.id} {n.channel} {n.source} {fmt_time(n.run_time)} {n.title}")
    for f in failed:
        click.echo(
            f"failed   {f.notification_id} {f.channel} {fmt_time(f.at)} attempts={f.attempts} {f.error}"
        )
    if not pending and not failed:
        click.echo("nothing pending, nothing parked")


@click.command()
@click.argument("notification_ids", nargs=-1)
@click.option("--all", "replay_all", is_flag=True, help="Every parked delivery and pending outbox entry.")
@json_option
@pass_cli
def redeliver(cli: CliContext, notification_ids: tuple[str, ...], replay_all: bool, as_json: bool) -> None:
    """Retry parked deliveries (and flush the outbox)."""
    store = cli.store
    parked = {f.notification_id: f for f in store.failed_deliveries()}
    wanted = list(parked) if replay_all else list(notification_ids)
    if not wanted and not replay_all:
        raise click.UsageError("name notification ids, or use --all")
    unknown = [i for i in wanted if i not in parked]
    if unknown:
        raise click.ClickException(f"not parked: {', '.join(unknown)} (see driftguard deliveries --failed)")
    engine = _engine(cli)
    notes = [parked[i].notification for i in wanted if parked[i].notification is not None]
    records = engine.deliver([n for n in notes if n is not None], retry_parked=True)
    if replay_all:
        records += engine.flush_outbox()
    if as_json:
        print_json({"deliveries": [r.model_dump(mode="json", exclude={"notification"}) for r in records]})
        return
    for r in records:
        click.echo(
            f"{r.status.value:<9} {r.notification_id} → {r.channel} (attempts {r.attempts})"
            + (f": {r.error}" if r.error else "")
        )


@click.command("test-channel")
@click.argument("channel")
@json_option
@pass_cli
def test_channel(cli: CliContext, channel: str, as_json: bool) -> None:
    """Send a sample notification through CHANNEL, to check it works before an incident does."""
    from driftguard.engine import build_sender
    from driftguard.notify.sample import sample_notification

    config = cli.config
    sender = build_sender(config.channel(channel), Engine(config, cli.store).secrets)
    record = sender(sample_notification(channel))
    if as_json:
        print_json(record.model_dump(mode="json", exclude={"notification"}))
    else:
        suffix = f": {record.error}" if record.error else ""
        click.echo(
            f"{record.status.value}: sample notification to {channel}, {record.attempts} attempt(s){suffix}"
        )
    if record.status != DeliveryStatus.DELIVERED:
        sys.exit(1)


commands = [
    init,
    validate,
    schema,
    check,
    run,
    status,
    history,
    explain,
    accept_schema,
    label,
    deliveries,
    redeliver,
    test_channel,
]
