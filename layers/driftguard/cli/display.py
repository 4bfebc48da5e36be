"""How findings, states and runs look in a terminal (rich): one place, shared by commands.

Every name and message that comes from outside (source, table and column names, reasons, errors)
goes through `esc` or into a `Text`, never into markup: a column named `[bold]` prints as written.
Numbers, durations, percentages and ranges come from `driftguard.formatting`, as in notifications.
"""

from __future__ import annotations

from datetime import datetime

from rich.console import Console
from rich.table import Table
from rich.text import Text

from driftguard.cli.text import clean
from driftguard.formatting import format_duration, format_expected, format_schema_changes, format_value
from driftguard.model import (
    AlertState,
    AlertStateName,
    CheckKey,
    CheckKind,
    Explanation,
    Finding,
    FindingStatus,
    MetricPoint,
)
from driftguard.notify import render

STATUS_STYLE = {
    FindingStatus.OK: "green",
    FindingStatus.ANOMALY: "bold red",
    FindingStatus.LEARNING: "cyan",
    FindingStatus.NO_DATA: "yellow",
    FindingStatus.ERROR: "bold magenta",
}
STATE_STYLE = {
    AlertStateName.OK: "green",
    AlertStateName.LEARNING: "cyan",
    AlertStateName.PENDING: "yellow",
    AlertStateName.FIRING: "bold red",
    AlertStateName.RESOLVED: "green",
    AlertStateName.ERROR: "bold magenta",
    AlertStateName.NO_DATA: "yellow",
}


def plain(value: object) -> Text:
    """Outside text as a Rich cell: never parsed as markup, control characters removed."""
    return Text(clean(value))


def fmt_observed(f: Finding) -> str:
    """What was observed; for a schema, what changed (its column counts say nothing)."""
    if f.key.check == CheckKind.SCHEMA:
        return format_schema_changes(f.explanation.details) or "as accepted"
    return fmt_value(f.explanation.observed, f.key)


def fmt_expected_of(f: Finding) -> str:
    if f.key.check == CheckKind.SCHEMA:
        return "the accepted schema"
    return fmt_expected(f.explanation, f.key)


def fmt_value(value: object, key: CheckKey) -> str:
    if isinstance(value, int | float | str) or value is None:
        return "-" if value is None else format_value(value, seconds=key.measures_time, rate=key.is_rate)
    return clean(value)


def fmt_expected(e: Explanation, key: CheckKey) -> str:
    return format_expected(e.expected, e.lower, e.upper, seconds=key.measures_time, rate=key.is_rate) or "-"


def fmt_time(t: datetime | None, now: datetime | None = None) -> str:
    if t is None:
        return "-"
    text = t.strftime("%Y-%m-%d %H:%M UTC")
    if now is not None and now >= t:
        text += f" ({format_duration(now - t)} ago)"
    return text


def why(f: Finding) -> str:
    e = f.explanation
    if f.status == FindingStatus.LEARNING and e.needed_points:
        have = f" ({e.training_points} so far)" if e.training_points else ""
        return e.reason or f"learning: {e.needed_points} more point(s) needed{have}"
    return e.reason or ""


def _check_column(table: Table) -> None:
    # The check's identity is never cut: a shortened name cannot be told from its neighbours.
    table.add_column("check", no_wrap=True, overflow="ignore")


def findings_table(findings: list[Finding], *, title: str | None = None, show_ok: bool = True) -> Table:
    table = Table(title=title, show_lines=False, expand=False)
    _check_column(table)
    table.add_column("status")
    table.add_column("observed", justify="right")
    table.add_column("expected", justify="right")
    table.add_column("why", overflow="fold")
    order = {FindingStatus.ANOMALY: 0, FindingStatus.ERROR: 1, FindingStatus.NO_DATA: 2}
    for f in sorted(findings, key=lambda f: (order.get(f.status, 3), f.key.label)):
        if not show_ok and f.status == FindingStatus.OK:
            continue
        status = Text(f.status.value.upper(), style=STATUS_STYLE[f.status])
        if f.status == FindingStatus.ANOMALY:
            status.append(f" {f.severity.value}", style="red")
        table.add_row(
            plain(f.key.label),
            status,
            plain(fmt_observed(f)),
            plain(fmt_expected_of(f)),
            plain(why(f)),
        )
    return table


def states_table(states: list[AlertState], now: datetime, latest: dict[str, Finding] | None = None) -> Table:
    """One row per check: its alert state, and the value and expectation of its latest run
    (`latest`, by fingerprint), else of the last state change."""
    table = Table(show_lines=False)
    _check_column(table)
    for col in ("state", "severity", "since", "last value", "expected", "note"):
        table.add_column(col, overflow="fold" if col == "note" else "ellipsis")
    rank = {AlertStateName.FIRING: 0, AlertStateName.ERROR: 1, AlertStateName.PENDING: 2}
    for s in sorted(states, key=lambda s: (rank.get(s.state, 3), s.key.label)):
        finding = (latest or {}).get(s.fingerprint) or s.last_finding
        table.add_row(
            plain(s.key.label),
            Text(s.state.value, style=STATE_STYLE[s.state]),
            s.severity.value if s.state in (AlertStateName.FIRING, AlertStateName.PENDING) else "",
            fmt_time(s.since, now),
            plain(fmt_observed(finding) if finding else "-"),
            plain(fmt_expected_of(finding) if finding else "-"),
            plain(why(finding) if finding and finding.status != FindingStatus.OK else ""),
        )
    return table


def explanation_lines(f: Finding) -> list[str]:
    """Plain lines (print them with markup off): every value formatted, no Python reprs."""
    e = f.explanation
    lines = [f"{clean(f.key.label)}: {f.status.value.upper()} ({f.severity.value})"]
    if e.reason:
        lines.append(f"  why:       {clean(e.reason)}")
    lines.append(f"  observed:  {fmt_observed(f)}")
    if (
        f.key.check == CheckKind.SCHEMA
        or e.expected is not None
        or e.lower is not None
        or e.upper is not None
    ):
        lines.append(f"  expected:  {fmt_expected_of(f)}")
    if e.method:
        lines.append(f"  method:    {clean(e.method)}")
    if e.training_points:
        window = ""
        if e.training_start and e.training_end:
            window = f" from {fmt_time(e.training_start)} to {fmt_time(e.training_end)}"
        lines.append(f"  training:  {e.training_points} point(s){window}")
    if e.seasonal_slot:
        lines.append(f"  slot:      {clean(e.seasonal_slot)}")
    if e.effect_size is not None:
        lines.append(
            f"  effect:    {e.effect_size:+.1%}" + (f" ({clean(e.direction)})" if e.direction else "")
        )
    if e.score:
        lines.append(f"  score:     {e.score:.2f}")
    if e.needed_points:
        lines.append(f"  learning:  {e.needed_points} more point(s) needed")
    for k, v in e.details.items():
        if not (f.key.check == CheckKind.SCHEMA and k == "changes"):  # shown as observed
            lines.append(f"  {clean(k)}: {describe_detail(v)}")
    return lines


def describe_detail(value: object) -> str:
    """A detail as words: lists joined, missing values as 'none', mappings as key: value."""
    if value is None:
        return "none"
    if isinstance(value, dict):
        return ", ".join(f"{clean(k)}: {describe_detail(v)}" for k, v in value.items()) or "none"
    if isinstance(value, list | tuple | set):
        return ", ".join(describe_detail(v) for v in value) or "none"
    if isinstance(value, float):
        return format_value(value)
    return clean(value)


def heading(console: Console, title: str) -> None:
    """A section heading: a rule across a terminal, a plain line elsewhere."""
    if console.is_terminal:
        console.rule(f"[bold]{title}")
    else:
        console.print(f"[bold]== {title}[/bold]")


def sparkline(points: list[MetricPoint]) -> str:
    return render.sparkline([p.value for p in points])
