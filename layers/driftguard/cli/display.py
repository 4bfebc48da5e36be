"""How findings, states and runs look in a terminal (rich) — one place, shared by commands."""

from __future__ import annotations

from datetime import datetime

from rich.table import Table
from rich.text import Text

from driftguard.model import (
    AlertState,
    AlertStateName,
    CheckKey,
    Explanation,
    Finding,
    FindingStatus,
    MetricPoint,
)
from driftguard.notify import render
from driftguard.notify.render import format_duration, format_value

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


def fmt_value(value: object, *, seconds: bool = False, rate: bool = False) -> str:
    if isinstance(value, int | float) and not isinstance(value, bool) and rate and 0 <= float(value) <= 1:
        return f"{float(value):.1%}"
    if isinstance(value, int | float) and not isinstance(value, bool):
        return format_value(float(value), seconds=seconds)
    return "-" if value is None else str(value)


def _fmt(value: object, key: CheckKey) -> str:
    return fmt_value(value, seconds=key.measures_time, rate="rate" in key.metric)


def fmt_expected(e: Explanation, key: CheckKey) -> str:
    if e.lower is not None or e.upper is not None:
        lo = _fmt(e.lower, key) if e.lower is not None else "…"
        hi = _fmt(e.upper, key) if e.upper is not None else "…"
        centre = f"{_fmt(e.expected, key)} " if e.expected is not None else ""
        return f"{centre}({lo} - {hi})"
    return _fmt(e.expected, key)


def fmt_time(t: datetime | None, now: datetime | None = None) -> str:
    if t is None:
        return "-"
    text = t.strftime("%Y-%m-%d %H:%M UTC")
    if now is not None and now >= t:
        text += f" ({format_duration(now - t)} ago)"
    return text


def findings_table(findings: list[Finding], *, title: str | None = None, show_ok: bool = True) -> Table:
    table = Table(title=title, show_lines=False, expand=False)
    for col, kw in (
        ("check", {}),
        ("status", {}),
        ("observed", {"justify": "right"}),
        ("expected", {"justify": "right"}),
        ("why", {"overflow": "fold", "max_width": 70}),
    ):
        table.add_column(col, **kw)
    order = {FindingStatus.ANOMALY: 0, FindingStatus.ERROR: 1, FindingStatus.NO_DATA: 2}
    for f in sorted(findings, key=lambda f: (order.get(f.status, 3), f.key.label)):
        if not show_ok and f.status == FindingStatus.OK:
            continue
        e = f.explanation
        status = Text(f.status.value.upper(), style=STATUS_STYLE[f.status])
        if f.status == FindingStatus.ANOMALY:
            status.append(f" {f.severity.value}", style="red")
        why = e.reason
        if f.status == FindingStatus.LEARNING and e.needed_points:
            why = why or f"learning: {e.needed_points} more point(s) needed"
        table.add_row(f.key.label, status, _fmt(e.observed, f.key), fmt_expected(e, f.key), why)
    return table


def states_table(states: list[AlertState], now: datetime) -> Table:
    table = Table(show_lines=False)
    for col in ("check", "state", "severity", "since", "last value", "expected"):
        table.add_column(col)
    rank = {AlertStateName.FIRING: 0, AlertStateName.ERROR: 1, AlertStateName.PENDING: 2}
    for s in sorted(states, key=lambda s: (rank.get(s.state, 3), s.key.label)):
        e = s.last_finding.explanation if s.last_finding else Explanation()
        table.add_row(
            s.key.label,
            Text(s.state.value, style=STATE_STYLE[s.state]),
            s.severity.value if s.state in (AlertStateName.FIRING, AlertStateName.PENDING) else "",
            fmt_time(s.since, now),
            _fmt(e.observed, s.key),
            fmt_expected(e, s.key),
        )
    return table


def explanation_lines(f: Finding) -> list[str]:
    e = f.explanation
    lines = [f"{f.key.label}: {f.status.value.upper()} ({f.severity.value})"]
    if e.reason:
        lines.append(f"  why:       {e.reason}")
    lines.append(f"  observed:  {_fmt(e.observed, f.key)}")
    if e.expected is not None or e.lower is not None or e.upper is not None:
        lines.append(f"  expected:  {fmt_expected(e, f.key)}")
    if e.method:
        lines.append(f"  method:    {e.method}")
    if e.training_points:
        window = ""
        if e.training_start and e.training_end:
            window = f" from {fmt_time(e.training_start)} to {fmt_time(e.training_end)}"
        lines.append(f"  training:  {e.training_points} point(s){window}")
    if e.seasonal_slot:
        lines.append(f"  slot:      {e.seasonal_slot}")
    if e.effect_size is not None:
        lines.append(f"  effect:    {e.effect_size:+.1%}" + (f" ({e.direction})" if e.direction else ""))
    if e.score:
        lines.append(f"  score:     {e.score:.2f}")
    if e.needed_points:
        lines.append(f"  learning:  {e.needed_points} more point(s) needed")
    for k, v in e.details.items():
        lines.append(f"  {k}: {v}")
    return lines


def sparkline(points: list[MetricPoint]) -> str:
    return render.sparkline([p.value for p in points])
