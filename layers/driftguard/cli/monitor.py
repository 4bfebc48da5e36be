"""Monitoring commands: init, validate, schema, check, run, status, history, explain,
accept-schema, label, deliveries, redeliver, flush."""

from __future__ import annotations

import json
import os
import sys
from collections import Counter
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor, as_completed
from contextlib import AbstractContextManager, nullcontext, redirect_stdout
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

import click

from driftguard.cli.common import (
    CliContext,
    Exit,
    UserError,
    fail_on_option,
    json_option,
    now,
    parse_past_time,
    parse_range,
    parse_time,
    pass_cli,
    print_json,
    say_failed,
)
from driftguard.cli.progress import TableProgress
from driftguard.cli.text import clean
from driftguard.config import Source, json_schema
from driftguard.detect.kinds import has_series, learned_kinds
from driftguard.engine import Engine, RunOutcome, due_runs
from driftguard.errors import ConfigError, DriftGuardError
from driftguard.model import (
    AlertState,
    AlertStateName,
    CheckKey,
    CheckKind,
    DeliveryRecord,
    DeliveryStatus,
    Finding,
    FindingStatus,
    PointLabel,
    RunRecord,
    RunStatus,
    SchemaBaseline,
    Severity,
)
from driftguard.store import Store

# How many recent runs `explain --at` looks through for the run of a past time.
_RUNS_SCANNED = 1000

# ---------------------------------------------------------------------------------------- exit codes


def _needs_attention(findings: Iterable[Finding], fail_on: str) -> bool:
    if fail_on == "never":
        return False
    anomalies = [f for f in findings if f.status == FindingStatus.ANOMALY]
    if fail_on == "critical":
        return any(f.severity == Severity.CRITICAL for f in anomalies)
    return bool(anomalies)


def _failed(run: RunRecord, deliveries: Iterable[DeliveryRecord] = ()) -> bool:
    return run.status in (RunStatus.FAILED, RunStatus.PARTIAL) or any(
        d.status == DeliveryStatus.FAILED for d in deliveries
    )


def exit_code_for_runs(outcomes: list[RunOutcome], fail_on: str) -> Exit:
    """3 when a source, a check or a delivery failed (each said on stderr); else 1 when a check
    needs attention (per --fail-on); else 0. A run already recorded counts as it was recorded."""
    for o in outcomes:
        _say_run_failed(o.run)
        for d in o.deliveries:
            if d.status == DeliveryStatus.FAILED:
                say_failed(
                    f"notification {d.notification_id} to {d.channel} failed and was parked: {d.error} "
                    "(driftguard deliveries --failed)"
                )
    if any(_failed(o.run, o.deliveries) for o in outcomes):
        return Exit.FAILURE
    if any(_needs_attention(o.findings or o.run.results, fail_on) for o in outcomes):
        return Exit.ATTENTION
    return Exit.OK


def _say_run_failed(run: RunRecord) -> None:
    when = f"{run.scheduled_time:%Y-%m-%d %H:%M} UTC"
    if run.status == RunStatus.FAILED:
        say_failed(f"source {run.source} failed in the run of {when}: {run.error}")
    elif run.status == RunStatus.PARTIAL:
        broken = [f for f in run.results if f.status == FindingStatus.ERROR]
        first = f": {broken[0].key.label}: {broken[0].explanation.reason}" if broken else ""
        say_failed(
            f"source {run.source}: {len(broken) or 'some'} check(s) failed in the run of {when}{first}"
        )


def exit_code_for_status(
    report: list[tuple[RunRecord | None, list[AlertState]]], parked: list[DeliveryRecord], fail_on: str
) -> Exit:
    """3 when a source's latest run failed or deliveries are parked; else 1 when an alert fires
    (per --fail-on); else 0."""
    for run, _ in report:
        if run is not None:
            _say_run_failed(run)
    if parked:
        say_failed(f"{len(parked)} notification(s) failed and are parked (driftguard deliveries --failed)")
    if parked or any(run is not None and _failed(run) for run, _ in report):
        return Exit.FAILURE
    firing = [s for _, states in report for s in states if s.state == AlertStateName.FIRING]
    if fail_on == "critical":
        firing = [s for s in firing if s.severity == Severity.CRITICAL]
    return Exit.ATTENTION if firing and fail_on != "never" else Exit.OK


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
{schema_line}        # segment_by: country    # volume, freshness and column metrics per country (or a list
        # segment_limit: 100     #   of two columns): the 100 countries with the most rows per
        #                        #   volume period on their own, the rest as one (other); a
        #                        #   country that stops having rows is a segment_missing alert
        checks:
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
  # Grouping across sources (Alertmanager's): one message per group and channel instead of one per
  # source and run. Grouped messages go out at the first run, check, flush or redeliver after they
  # are due (`driftguard flush --wait` waits for them); without these keys every run sends at once.
  # group_by: [owner]                # or [table], [owner, check]; [] = one group; ['...'] = all labels
  # group_wait: 30s                  # a new group waits this long for more alerts before its message
  # group_interval: 5m               # then at most one message per group this often
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
    "clickhouse": (
        "      host: 127.0.0.1\n      port: 9000   # native protocol; pip install 'driftguard[clickhouse]'\n"
        "      database: analytics\n      user: driftguard\n      password_env: DRIFTGUARD_CH_PASSWORD\n"
    ),
}


@click.command()
@click.argument("path", default="driftguard.yaml", type=click.Path(dir_okay=False))
@click.option("--kind", type=click.Choice(list(_CONNECTIONS)), default="postgres", show_default=True)
@click.option("--name", default="warehouse", show_default=True, help="Name of the first source.")
@click.option("--force", is_flag=True, help="Overwrite an existing file.")
@json_option
def init(path: str, kind: str, name: str, force: bool, as_json: bool) -> None:
    """Write a commented starter config to PATH."""
    target = Path(path)
    if target.exists() and not force:
        raise UserError(f"{target} exists; use --force to overwrite it")
    text = _SCAFFOLD.format(
        name=name,
        kind=kind,
        connection=_CONNECTIONS[kind],
        schema_line="        schema: public\n" if kind == "postgres" else "",
    )
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text, encoding="utf-8")
    if as_json:
        print_json({"written": str(target), "kind": kind, "source": name})
    else:
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
            sys.exit(Exit.USAGE)
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
@json_option
def schema(as_json: bool) -> None:
    """Print the config's JSON Schema (for editors and `jsonschema`; it is JSON either way)."""
    del as_json  # accepted like on every command: the schema is always one JSON document
    click.echo(json.dumps(json_schema(), indent=2))


# ---------------------------------------------------------------------------------------- check / run


def _stdout_for_reports(as_json: bool) -> AbstractContextManager[object]:
    """With --json, stdout is one JSON document: what the run prints (console notifications)
    goes to stderr instead."""
    return redirect_stdout(sys.stderr) if as_json else nullcontext()


def _engine(
    cli: CliContext, *, dry_run: bool = False, progress: TableProgress | None = None, replay: bool = False
) -> Engine:
    # A dry run stores nothing, so it never creates a state: without one it judges on empty history.
    store = cli.scratch_store_if_missing() if dry_run else cli.store
    factory = progress.collector_factory() if progress is not None else None
    return Engine(cli.config, store, collector_factory=factory, raise_retryable=replay)


class Checker(Protocol):
    def check(self, source_name: str, scheduled_time: datetime, *, dry_run: bool = False) -> RunOutcome: ...


class Replays:
    """Checks of a past time (`--at`). One that could not reach its source (a retryable failure:
    down, timed out) is reported and not recorded: it did not check that time, so it must not
    stand for the real run of it. Its engine raises those failures instead of recording them."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def check(self, source_name: str, scheduled_time: datetime, *, dry_run: bool = False) -> RunOutcome:
        try:
            return self.engine.check(source_name, scheduled_time, dry_run=dry_run)
        except DriftGuardError as error:
            if not error.retryable:
                raise
            at = now()
            run = RunRecord(
                source=source_name,
                scheduled_time=scheduled_time,
                started_at=at,
                finished_at=at,
                status=RunStatus.FAILED,
                error=f"{error} (this replay was not recorded: run it again when the source is back)",
                error_kind=error.kind.value,
            )
            return RunOutcome(source_name, scheduled_time, run, dry_run=dry_run)


def _progress(cli: CliContext, as_json: bool) -> TableProgress | None:
    """Progress is for people watching a terminal: never with --json, never in a log."""
    return TableProgress() if not as_json and cli.err_console.is_terminal else None


def _replay_note(outcome: RunOutcome, replay_of: datetime | None) -> str:
    if replay_of is None or outcome.duplicate:
        return ""
    return (
        f" (replay: the data as read at {outcome.run.started_at:%Y-%m-%d %H:%M:%S} UTC, "
        f"judged and recorded as the run of {fmt_time_short(replay_of)})"
    )


def verdict(run: RunRecord) -> str:
    """A run in a word or three: never "ok" beside anomalies."""
    if run.status == RunStatus.FAILED:
        return "failed"
    if run.status == RunStatus.PARTIAL:
        broken = sum(f.status == FindingStatus.ERROR for f in run.results)
        return f"partial, {broken} check(s) failed" if broken else "partial"
    if run.anomalies:
        return f"{run.anomalies} anomal{'y' if run.anomalies == 1 else 'ies'}"
    return "ok"


def fmt_time_short(t: datetime) -> str:
    return f"{t:%Y-%m-%d %H:%M} UTC"


def _print_outcome(
    cli: CliContext, outcome: RunOutcome, *, show_ok: bool, replay_of: datetime | None = None
) -> None:
    from driftguard.cli.display import findings_table
    from driftguard.cli.text import esc

    when = fmt_time_short(outcome.scheduled_time)
    source = esc(outcome.source)
    if outcome.duplicate:
        cli.console.print(
            f"[dim]{source}: already checked for {when} ({verdict(outcome.run)}); nothing "
            "changed. Use --at to check another time.[/dim]"
        )
        return
    head = f"{source} @ {when}: {verdict(outcome.run)}{_replay_note(outcome, replay_of)}"
    if outcome.dry_run:
        head += " (dry run: nothing stored, nothing sent)"
    cli.console.print(f"[bold]{head}[/bold]")
    if outcome.run.error:
        cli.console.print(f"  [magenta]{esc(outcome.run.error)}[/magenta]")
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
            cli.console.print(
                f"  [red]notification to {esc(d.channel)} failed and was parked: {esc(d.error)}[/red]"
            )


def _grouped_json(records: list[DeliveryRecord]) -> dict[str, Any]:
    return {"grouped_deliveries": [r.model_dump(mode="json", exclude={"notification"}) for r in records]}


def _with_grouped(code: Exit, records: list[DeliveryRecord]) -> Exit:
    """A grouped message that failed (parked) fails the command as a run's own delivery does."""
    failed = [r for r in records if r.status == DeliveryStatus.FAILED]
    for r in failed:
        say_failed(
            f"grouped notification {r.notification_id} to {r.channel} failed and was parked: {r.error}"
        )
    return Exit.FAILURE if failed else code


def _print_grouped(cli: CliContext, records: list[DeliveryRecord], store: Store) -> None:
    """What the flush sent, and when the groups still waiting are due."""
    from driftguard.alerts import group_due
    from driftguard.cli.text import esc

    for r in records:
        if r.status == DeliveryStatus.DELIVERED:
            cli.console.print(f"grouped notification {esc(r.notification_id)} sent to {esc(r.channel)}")
    waiting = store.pending_groups()
    if waiting:
        due = min(group_due(g.parts, g.last_notified) for g in waiting)
        cli.console.print(
            f"[dim]{sum(len(g.parts) for g in waiting)} notice(s) wait in {len(waiting)} group(s); "
            "the next is "
            f"due at {fmt_time_short(due)} (driftguard flush, or the next run)[/dim]"
        )


def _outcome_json(outcome: RunOutcome, replay_of: datetime | None) -> dict[str, Any]:
    return {**outcome.summary(), "replay": replay_of is not None and not outcome.duplicate}


def _scheduled_or_replay(cli: CliContext, source: str, at: str | None, now: datetime) -> datetime:
    """The time to check `source` for: its latest scheduled time, or `--at` (never the future)."""
    if at is None:
        return cli.config.schedule_of(cli.config.source(source)).latest_fire(now)
    return parse_past_time(at, now=now, param="--at")


@click.command()
@click.argument("source")
@click.option(
    "--at",
    "at",
    default=None,
    help="Check as the run of this past time (a replay; default: the latest scheduled time).",
)
@click.option("--dry-run", is_flag=True, help="Collect and judge, but store nothing and send nothing.")
@click.option("--all-findings", is_flag=True, help="Also list checks that are OK.")
@fail_on_option
@json_option
@pass_cli
def check(
    cli: CliContext,
    source: str,
    at: str | None,
    dry_run: bool,
    all_findings: bool,
    fail_on: str,
    as_json: bool,
) -> None:
    """Check one source now."""
    src = cli.config.source(source)
    when = _scheduled_or_replay(cli, src.name, at, now())
    replay_of = when if at is not None else None
    with _stdout_for_reports(as_json):
        progress = _progress(cli, as_json)
        engine = _engine(cli, dry_run=dry_run, progress=progress, replay=replay_of is not None)
        checker: Checker = Replays(engine) if replay_of is not None else engine
        if not dry_run:
            engine.flush_outbox()  # first what a crash left pending (the ledger sends nothing twice)
        outcome = _check_with_progress(cli, checker, src.name, when, dry_run, progress)
        grouped = [] if dry_run else engine.flush_groups(now())
    if as_json:
        print_json({**_outcome_json(outcome, replay_of), **_grouped_json(grouped)})
    else:
        _print_outcome(cli, outcome, show_ok=all_findings or dry_run, replay_of=replay_of)
        _print_grouped(cli, grouped, engine.store)
    sys.exit(_with_grouped(exit_code_for_runs([outcome], fail_on), grouped))


def _check_with_progress(
    cli: CliContext,
    engine: Checker,
    source: str,
    when: datetime,
    dry_run: bool,
    progress: TableProgress | None,
) -> RunOutcome:
    """One check; on a terminal a spinner names the source and the table being read."""
    if progress is None:
        return engine.check(source, when, dry_run=dry_run)
    from driftguard.cli.text import esc

    with cli.err_console.status(f"checking {esc(source)}…") as spinner:
        progress.listener = lambda src, table: spinner.update(f"checking {esc(src)}: table {esc(table)}")
        return engine.check(source, when, dry_run=dry_run)


@click.command()
@click.option("--source", "sources", multiple=True, help="Only these sources (repeatable).")
@click.option("--due", is_flag=True, help="Only sources whose latest scheduled time has not been checked.")
@click.option("--at", "at", default=None, help="Check every source as the run of this past time (a replay).")
@click.option("--dry-run", is_flag=True, help="Collect and judge, but store nothing and send nothing.")
@click.option(
    "--workers", default=4, show_default=True, type=click.IntRange(1, 64), help="Sources in parallel."
)
@fail_on_option
@json_option
@pass_cli
def run(
    cli: CliContext,
    sources: tuple[str, ...],
    due: bool,
    at: str | None,
    dry_run: bool,
    workers: int,
    fail_on: str,
    as_json: bool,
) -> None:
    """Check all sources (or the selected / due ones)."""
    config = cli.config
    for name in sources:
        config.source(name)  # unknown names fail before any work
    if due and at:
        raise click.UsageError("--due checks each source's latest scheduled time; --at another: give one")
    clock = now()
    replay_of = parse_past_time(at, now=clock, param="--at") if at else None
    progress = _progress(cli, as_json)
    engine = _engine(cli, dry_run=dry_run, progress=progress, replay=replay_of is not None)
    if due:
        plan = list(due_runs(config, engine.store, clock, sources or None))
    else:
        plan = [
            (s.name, replay_of or config.schedule_of(s).latest_fire(clock))
            for s in config.sources
            if not sources or s.name in sources
        ]
    with _stdout_for_reports(as_json):
        if not dry_run:
            engine.flush_outbox()  # first what a crash left pending (the ledger sends nothing twice)
        checker: Checker = Replays(engine) if replay_of is not None else engine
        outcomes = _run_plan(
            cli, checker, plan, workers=workers, dry_run=dry_run, quiet=as_json, progress=progress
        )
        grouped = [] if dry_run else engine.flush_groups(now())  # groups that are due, after every check
    if as_json:
        runs = [_outcome_json(o, replay_of) for o in outcomes]
        print_json({"runs": runs, "checked": len(outcomes), **_grouped_json(grouped)})
    else:
        if not plan:
            cli.console.print("nothing due" if due else "no sources configured")
        for o in outcomes:
            _print_outcome(cli, o, show_ok=False, replay_of=replay_of)
        _print_grouped(cli, grouped, engine.store)
    sys.exit(_with_grouped(exit_code_for_runs(outcomes, fail_on), grouped))


def _run_plan(
    cli: CliContext,
    engine: Checker,
    plan: list[tuple[str, Any]],
    *,
    workers: int,
    dry_run: bool,
    quiet: bool,
    progress: TableProgress | None = None,
) -> list[RunOutcome]:
    if quiet or not cli.err_console.is_terminal:
        return _check_all(engine, plan, workers=workers, dry_run=dry_run, advance=lambda _name: None)
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from driftguard.cli.text import esc

    display = Progress(
        TextColumn("checking"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.description}"),
        console=cli.err_console,
        transient=True,
    )
    with display:
        task = display.add_task("", total=len(plan))

        def advance(name: str) -> None:
            display.update(task, advance=1, description=f"done: {esc(name)}")

        if progress is not None:
            # refresh=True: the table being read shows at once, not at the next tick (a quick table
            # would otherwise never be seen)
            progress.listener = lambda src, table: display.update(
                task, description=f"{esc(src)}: table {esc(table)}", refresh=True
            )
        return _check_all(engine, plan, workers=workers, dry_run=dry_run, advance=advance)


def _check_all(
    engine: Checker,
    plan: list[tuple[str, Any]],
    *,
    workers: int,
    dry_run: bool,
    advance: Callable[[str], None],
) -> list[RunOutcome]:
    """Check the plan's sources `workers` at a time; outcomes in plan order.

    On Ctrl-C or SIGTERM the checks not yet started are cancelled and the interruption goes on up;
    checks already running finish whole (each commits all or nothing), so nothing half-checked is
    recorded."""
    results: dict[int, RunOutcome] = {}
    with ThreadPoolExecutor(max_workers=workers) as pool:
        futures = {
            pool.submit(engine.check, name, when, dry_run=dry_run): i for i, (name, when) in enumerate(plan)
        }
        try:
            for fut in as_completed(futures):
                results[futures[fut]] = fut.result()
                advance(plan[futures[fut]][0])
        except BaseException:
            pool.shutdown(wait=False, cancel_futures=True)
            raise
    return [results[i] for i in sorted(results)]


# ---------------------------------------------------------------------------------------- status


def latest_results(
    store: Store, source: str, at: datetime | None = None
) -> tuple[RunRecord | None, dict[str, Finding]]:
    """The latest run of `source` (at or before `at`) and every check's latest finding up to it,
    by fingerprint: the run's own findings over the last recorded ones of its states."""
    runs = store.runs(source, limit=_RUNS_SCANNED)
    run_rec = next((r for r in runs if at is None or r.scheduled_time <= at), None)
    latest = {f.key.fingerprint: f for f in run_rec.results} if run_rec else {}
    return run_rec, latest


@click.command()
@click.option("--source", default=None, help="Only this source.")
@fail_on_option
@json_option
@pass_cli
def status(cli: CliContext, source: str | None, fail_on: str, as_json: bool) -> None:
    """Per source and check: state, since when, latest value, expected; plus parked deliveries."""
    from driftguard.cli.display import fmt_time, states_table
    from driftguard.cli.text import esc

    config = cli.config
    names = [config.source(source).name] if source else [s.name for s in config.sources]
    clock = now()
    store = cli.reader
    report = []
    for name in names:
        run_rec, latest = latest_results(store, name)
        report.append((name, run_rec, store.alert_states(name), latest))
    failed = store.failed_deliveries()
    silences = store.silences(active_at=clock)
    code = exit_code_for_status([(r, s) for _, r, s, _ in report], failed, fail_on)
    if as_json:
        print_json(
            {
                "sources": [
                    {
                        "source": n,
                        "last_run": _run_json(run),
                        "states": [_state_json(s, latest.get(s.fingerprint)) for s in states],
                    }
                    for n, run, states, latest in report
                ],
                "failed_deliveries": [f.model_dump(mode="json") for f in failed],
                "active_silences": silences,
            }
        )
        sys.exit(code)
    for name, run_rec, states, latest in report:
        last = (
            f"last run {fmt_time(run_rec.scheduled_time, clock)}: {verdict(run_rec)}"
            if run_rec
            else "never run"
        )
        firing = sum(s.state == AlertStateName.FIRING for s in states)
        cli.console.print(
            f"[bold]{esc(name)}[/bold]: {last}" + (f", [red]{firing} firing[/red]" if firing else "")
        )
        if run_rec and run_rec.error:
            cli.console.print(f"  [magenta]{esc(run_rec.error)}[/magenta]")
        if states:
            cli.console.print(states_table(states, clock, latest))
    if silences:
        cli.console.print(f"[dim]{len(silences)} active silence(s): driftguard silences[/dim]")
    if failed:
        cli.console.print(
            f"[bold red]{len(failed)} notification(s) failed and are parked[/bold red]"
            " (driftguard deliveries --failed; retry with driftguard redeliver --all)"
        )
        for f in failed[:10]:
            cli.console.print(
                f"  {fmt_time(f.at)} {esc(f.channel)}: {esc(f.error)} (after {f.attempts} attempt(s))"
            )
    sys.exit(code)


def _run_json(run: RunRecord | None) -> dict[str, Any] | None:
    return None if run is None else run.model_dump(mode="json", exclude={"results"})


def _state_json(state: AlertState, latest: Finding | None) -> dict[str, Any]:
    """An alert state with `latest_finding`: the check's finding in the latest run."""
    return {**state.model_dump(mode="json"), "latest_finding": (latest or state.last_finding)}


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
    from driftguard.cli.display import fmt_time
    from driftguard.cli.text import esc
    from driftguard.formatting import format_number

    src = cli.config.source(source)
    if table is not None:
        _known_table(src, table)
    when = parse_time(as_of, now=now(), param="--as-of") if as_of else None
    snaps = cli.reader.snapshots(src.name, as_of=when, limit=limit)
    trail = cli.reader.transitions(src.name, table=table, as_of=when, limit=limit * 5)
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
    cli.console.print(f"[bold]{esc(src.name)}[/bold] history" + (f" as of {fmt_time(when)}" if when else ""))
    for snap in snaps:
        cli.console.print(f"  snapshot {fmt_time(snap.scheduled_time)} ({snap.duration_ms:.0f} ms)")
        for t in snap.tables:
            if table and t.table != table:
                continue
            bits = []
            if t.row_count is not None:
                how = f" ({t.row_count_method})" if t.row_count_method else ""
                bits.append(f"table rows {format_number(t.row_count)}{how}")
            if t.period_counts:
                bits.append(f"rows in the last period {format_number(t.period_counts[-1].count)}")
            if t.last_modified:
                bits.append(f"last update {fmt_time(t.last_modified)}")
            if t.columns is not None:
                bits.append(f"{len(t.columns)} columns")
            if t.error:
                bits.append(f"error: {t.error}")
            cli.console.print(f"    {esc(t.table)}: " + esc("; ".join(bits)))
    if trail:
        cli.console.print("  [bold]transitions[/bold] (newest first)")
        for tr in trail:
            muted = f" [dim](silenced by {esc(', '.join(tr.silenced_by))})[/dim]" if tr.silenced_by else ""
            cli.console.print(
                f"    {fmt_time(tr.at)} {esc(tr.key.label)}: {tr.from_state.value} → {tr.to_state.value} "
                f"({tr.severity.value}) {esc(tr.reason)}{muted}"
            )
    if not snaps and not trail:
        cli.console.print(f"  nothing recorded yet: run `driftguard check {esc(src.name)}`")


@click.command()
@click.argument("source")
@click.option("--table", default=None, help="Only this table.")
@click.option("--at", "at", default=None, help="Explain the run of this time (default: the latest run).")
@click.option("--all", "show_all", is_flag=True, help="Explain OK checks too.")
@json_option
@pass_cli
def explain(
    cli: CliContext, source: str, table: str | None, at: str | None, show_all: bool, as_json: bool
) -> None:
    """Why the latest decision (or the run --at a time): observed, expected, rule, training window."""
    from rich.text import Text

    from driftguard.cli.display import explanation_lines, fmt_time, sparkline
    from driftguard.cli.text import esc
    from driftguard.formatting import format_count

    src = cli.config.source(source)
    if table is not None:
        _known_table(src, table)
    store = cli.reader
    when = parse_time(at, now=now(), param="--at") if at else None
    run_rec, latest = latest_results(store, src.name, when)
    if when is not None and run_rec is None:
        raise UserError(
            f"no run of {src.name} at or before {when.isoformat()}: `driftguard history {src.name}`"
        )
    if when is None:  # checks the latest run did not reach keep their last recorded finding
        for state in store.alert_states(src.name):
            if state.last_finding is not None:
                latest.setdefault(state.fingerprint, state.last_finding)
    findings = [f for f in latest.values() if table is None or f.key.table == table]
    if not show_all:
        findings = [f for f in findings if f.status != FindingStatus.OK] or findings
    findings.sort(key=lambda f: (f.status == FindingStatus.OK, f.key.label))
    if as_json:
        print_json({"source": src.name, "run": _run_json(run_rec), "findings": findings})
        return
    if not findings:
        cli.console.print(f"nothing decided yet for {esc(src.name)}: run `driftguard check {esc(src.name)}`")
        return
    if run_rec is not None:
        cli.console.print(f"[dim]run of {fmt_time(run_rec.scheduled_time)}: {verdict(run_rec)}[/dim]")
    for f in findings:
        lines = explanation_lines(f)
        cli.console.print(Text(lines[0], style="bold"))
        for line in lines[1:]:
            cli.console.print(line, markup=False)
        if has_series(f.key.check):
            recent = store.series(f.key, before=f.ts, limit=24)
            if recent:
                before = format_count(len(recent), "point")
                cli.console.print(f"  recent:    {sparkline(recent)}  ({before} before this run)")
        cli.console.print()


def _known_table(src: Source, table: str) -> None:
    names = [t.name for t in src.tables]
    if table not in names:
        raise UserError(
            f"source {src.name} has no table {table!r} in the config; "
            f"its tables: {', '.join(names) or 'none'}"
        )


# ---------------------------------------------------------------------------------------- operator actions


@click.command("accept-schema")
@click.argument("source")
@click.argument("table")
@click.option("--by", "by", default=lambda: os.environ.get("USER", "operator"), help="Who accepts (audit).")
@json_option
@pass_cli
def accept_schema(cli: CliContext, source: str, table: str, by: str, as_json: bool) -> None:
    """Accept a table's current schema as its new baseline."""
    from driftguard.cli.display import fmt_time

    src = cli.config.source(source)
    _known_table(src, table)
    store = cli.reader
    snaps = store.snapshots(src.name, limit=1)
    snap_table = snaps[0].table(table) if snaps else None
    if snap_table is None or snap_table.columns is None:
        raise UserError(
            f"no collected schema for {src.name}.{table}; run `driftguard check {src.name}` first"
        )
    baseline = SchemaBaseline(
        source=src.name, table=table, columns=snap_table.columns, accepted_at=now(), accepted_by=by
    )
    store.put_schema_baseline(baseline)
    if as_json:
        print_json({"accepted": baseline, "as_of": snaps[0].scheduled_time})
        return
    click.echo(
        f"accepted the schema of {src.name}.{table} as of {fmt_time(snaps[0].scheduled_time)} "
        f"({len(snap_table.columns)} columns) by {by}"
    )


@click.command()
@click.argument("source")
@click.option("--table", required=True)
@click.option("--check", "check_kind", required=True, type=click.Choice(learned_kinds()))
@click.option(
    "--metric",
    required=True,
    help="Series metric, e.g. rows_per_period, lag_seconds, null_rate (an unknown one lists the known).",
)
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
@json_option
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
    as_json: bool,
) -> None:
    """Mark points as incident or maintenance so the baseline does not learn from them.

    \b
    driftguard label shop --table orders --check volume --metric rows_per_period --from -6h
    """
    src = cli.config.source(source)
    _known_table(src, table)
    lo, hi = parse_range(start, end, now=now(), params=("--from", "--to"))
    key = CheckKey(source=src.name, table=table, check=CheckKind(check_kind), metric=metric, column=column)
    store = cli.reader
    known = {s.key for s in store.alert_states(src.name)}
    if key not in known:
        same_table = sorted(k.label for k in known if k.table == table and has_series(k.check))
        raise UserError(
            f"{key.label} has no recorded series; the checks of {src.name}.{table} with series: "
            f"{', '.join(same_table) or 'none yet (run a check first)'}"
        )
    n = store.label_points(key, lo, hi, PointLabel.NONE if label == "none" else PointLabel(label))
    if n == 0:
        raise UserError(
            f"no points of {key.label} between {lo.isoformat()} and {hi.isoformat()}: "
            f"`driftguard history {src.name} --table {table}` shows when it was checked"
        )
    if as_json:
        print_json({"key": key, "label": label, "from": lo, "to": hi, "labelled": n})
    else:
        click.echo(f"labelled {n} point(s) of {key.label} as {label}")


@click.command()
@click.option("--failed", "only_failed", is_flag=True, help="Only parked (failed) deliveries.")
@json_option
@pass_cli
def deliveries(cli: CliContext, only_failed: bool, as_json: bool) -> None:
    """Notifications waiting in the outbox, and parked failed deliveries."""
    from driftguard.alerts import group_due
    from driftguard.cli.display import fmt_time

    failed = cli.reader.failed_deliveries()
    pending = [] if only_failed else cli.reader.pending_notifications()
    groups = [] if only_failed else cli.reader.pending_groups()
    if as_json:
        waiting = [
            {
                "group": g.key,
                "due": group_due(g.parts, g.last_notified),
                "notices": [p.notification for p in g.parts],
            }
            for g in groups
        ]
        print_json(
            {"pending": pending, "failed": [f.model_dump(mode="json") for f in failed], "waiting": waiting}
        )
        return
    for n in pending:
        click.echo(clean(f"pending  {n.id} {n.channel} {n.source} {fmt_time(n.run_time)} {n.title}"))
    for g in groups:
        channel, labels = g.parts[-1].group.channel, g.parts[-1].group.labels
        what = " ".join(f"{k}={v}" for k, v in labels.items()) or "(one group)"
        due = fmt_time(group_due(g.parts, g.last_notified))
        click.echo(clean(f"waiting  {len(g.parts)} notice(s) for {channel} {what}, due {due}"))
    for f in failed:
        click.echo(
            clean(
                f"failed   {f.notification_id} {f.channel} {fmt_time(f.at)} attempts={f.attempts} {f.error}"
            )
        )
    if not pending and not failed and not groups:
        click.echo("nothing pending, nothing parked")


@click.command()
@click.argument("notification_ids", nargs=-1)
@click.option("--all", "replay_all", is_flag=True, help="Every parked delivery and pending outbox entry.")
@json_option
@pass_cli
def redeliver(cli: CliContext, notification_ids: tuple[str, ...], replay_all: bool, as_json: bool) -> None:
    """Retry parked deliveries (and flush the outbox)."""
    if not notification_ids and not replay_all:
        raise click.UsageError("name notification ids, or use --all")
    store = cli.reader
    parked = {f.notification_id: f for f in store.failed_deliveries()}
    wanted = list(parked) if replay_all else list(notification_ids)
    unknown = [i for i in wanted if i not in parked]
    if unknown:
        raise UserError(f"not parked: {', '.join(unknown)} (see driftguard deliveries --failed)")
    engine = Engine(cli.config, store)
    records = engine.flush_outbox()  # first what a crash left pending (the ledger sends nothing twice)
    records += engine.flush_groups(now())
    notes = [parked[i].notification for i in wanted if parked[i].notification is not None]
    records += engine.deliver([n for n in notes if n is not None], retry_parked=True)
    still_failing = [r for r in records if r.status == DeliveryStatus.FAILED]
    for r in still_failing:
        say_failed(f"notification {r.notification_id} to {r.channel} failed again: {r.error}")
    code = Exit.FAILURE if still_failing else Exit.OK
    if as_json:
        print_json({"deliveries": [r.model_dump(mode="json", exclude={"notification"}) for r in records]})
        sys.exit(code)
    for r in records:
        click.echo(
            clean(
                f"{r.status.value:<9} {r.notification_id} → {r.channel} (attempts {r.attempts})"
                + (f": {r.error}" if r.error else "")
            )
        )
    if not records:
        click.echo("nothing parked, nothing pending")
    sys.exit(code)


@click.command()
@click.option(
    "--wait", is_flag=True, help="Also wait for the groups waiting now to be due, and send them (at most 1h)."
)
@json_option
@pass_cli
def flush(cli: CliContext, wait: bool, as_json: bool) -> None:
    """Send grouped notifications whose group is due (route group_wait / group_interval)."""
    import time

    from driftguard.alerts import group_due

    store = cli.reader
    engine = Engine(cli.config, store)
    records = engine.flush_outbox() + engine.flush_groups(now())
    until = now() + FLUSH_WAIT_LIMIT
    while wait:
        dues = [group_due(g.parts, g.last_notified) for g in store.pending_groups()]
        later = [d for d in dues if d <= until]
        if not later or min(later) <= now():  # nothing more to wait for (or a group that would not go)
            break
        time.sleep((min(later) - now()).total_seconds())
        records += engine.flush_groups(now())
    code = _with_grouped(Exit.OK, records)
    if as_json:
        print_json(_grouped_json(records))
        sys.exit(code)
    _print_grouped(cli, records, store)
    if not records:
        cli.console.print("nothing due")
    sys.exit(code)


FLUSH_WAIT_LIMIT = timedelta(hours=1)  # `flush --wait` leaves groups due later than this to a later flush


@click.command("test-channel")
@click.argument("channel")
@json_option
@pass_cli
def test_channel(cli: CliContext, channel: str, as_json: bool) -> None:
    """Send a sample notification through CHANNEL, to check it works before an incident does."""
    from driftguard.engine import build_sender
    from driftguard.notify.sample import sample_notification
    from driftguard.secrets import SecretResolver

    config = cli.config
    sender = build_sender(config.channel(channel), SecretResolver())
    record = sender(sample_notification(channel))
    if as_json:
        print_json(record.model_dump(mode="json", exclude={"notification"}))
    else:
        suffix = f": {record.error}" if record.error else ""
        click.echo(
            clean(
                f"{record.status.value}: sample notification to {channel}, "
                f"{record.attempts} attempt(s){suffix}"
            )
        )
    if record.status != DeliveryStatus.DELIVERED:
        say_failed(f"channel {channel} failed: {record.error}")
        sys.exit(Exit.FAILURE)


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
    flush,
    test_channel,
]
