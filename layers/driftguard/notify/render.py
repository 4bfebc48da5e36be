"""Turning a Notification into what each channel shows: pure functions, no I/O.

Every channel says the same things in the same order, so an on-call engineer can act in ten
seconds whatever the medium: what fired and how bad, where (source.table check/metric), since
when, observed against expected (and the normal range), why, what changed since the last
notice, recent values, the owner and tags, and the command that silences it. A resolved notice
says for how long it was firing: from `active_since` (the incident's start) to `since` (when it
resolved); open alerts count "since" from `active_since` too, falling back to `since`.

`alert_view` is the one place that decides the wording; `plain_text`, `html` and
`slack_blocks` only lay those fields out.
"""

from __future__ import annotations

import html as html_lib
import json
import math
import unicodedata
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from driftguard.formatting import (
    format_count,
    format_duration,
    format_estimate,
    format_range,
    format_schema_changes,
    format_time,
    format_value,
)
from driftguard.model import AlertNotice, CheckKind, NoticeKind, Notification, Severity, utc

MAX_LISTED_ALERTS = 20  # beyond this, every format ends with "and N more"
MAX_RECENT_VALUES = 12
SUBJECT_MAX_CHARS = 99  # SNS: "less than 100", ASCII, one line; also used as the email subject
SLACK_MAX_BLOCKS = 50
SLACK_MAX_TEXT = 3000  # section and context text
SLACK_MAX_HEADER = 150

_SPARK = "▁▂▃▄▅▆▇█"
_STATUS = {
    NoticeKind.FIRING: "FIRING",
    NoticeKind.REPEAT: "STILL FIRING",
    NoticeKind.ESCALATED: "ESCALATED",
    NoticeKind.RESOLVED: "RESOLVED",
    NoticeKind.ERROR: "CHECK ERROR",
}
_SEVERITY_COLOUR = {Severity.CRITICAL: "#d1242f", Severity.WARNING: "#d4a72c", Severity.INFO: "#0969da"}
_RESOLVED_COLOUR = "#1a7f37"
_MUTED = "color:#57606a;"
_TABLE = "border-collapse:collapse;width:100%;"
_MONO = "font-family:Menlo,Consolas,monospace;"
_SLACK_EMOJI = {
    Severity.CRITICAL: ":red_circle:",
    Severity.WARNING: ":large_orange_circle:",
    Severity.INFO: ":large_blue_circle:",
}


# --------------------------------------------------------------------------- small formatters


def scaled(values: list[float]) -> list[float | None]:
    """Each value's position in [0, 1] between the smallest and largest finite value (0.5 when
    they are all equal), None for NaN and infinities. Halving first keeps `high - low` finite."""
    finite = [v for v in values if math.isfinite(v)]
    if not finite:
        return [None] * len(values)
    low, high = min(finite) / 2, max(finite) / 2
    return [
        None if not math.isfinite(v) else (0.5 if high == low else (v / 2 - low) / (high - low))
        for v in values
    ]


def sparkline(values: list[float]) -> str:
    """Unicode block sparkline of the finite `values` (oldest first); "" when there are none."""
    top = len(_SPARK) - 1
    return "".join(_SPARK[math.floor(share * top)] for share in scaled(values) if share is not None)


def truncate(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: max(limit - 1, 0)] + "…"


def _one_line(text: str) -> str:
    return " ".join(text.split())


# --------------------------------------------------------------------------- what every channel says


@dataclass(frozen=True)
class AlertView:
    """One alert, worded once for every format."""

    status: str  # FIRING, STILL FIRING, ESCALATED, RESOLVED, CHECK ERROR
    severity: Severity
    resolved: bool
    where: str  # source.table check/metric
    fields: list[tuple[str, str]]  # (label, value) rows in display order
    recent: list[tuple[str, float]]  # (time, value), oldest first

    @property
    def headline(self) -> str:
        return f"{self.status} · {self.severity.value} · {self.where}"


def alert_view(notice: AlertNotice, run_time: datetime) -> AlertView:
    explanation = notice.finding.explanation if notice.finding else None
    resolved = notice.kind == NoticeKind.RESOLVED
    fields: list[tuple[str, str]] = []
    if resolved and notice.active_since is not None:
        lasted = format_duration(utc(notice.since) - utc(notice.active_since))
        fields.append(
            ("Firing for", f"{lasted} ({format_time(notice.active_since)} to {format_time(notice.since)})")
        )
    elif resolved:
        fields.append(("Resolved", format_time(notice.since)))
    else:
        began = notice.active_since or notice.since
        fields.append(("Since", f"{format_time(began)} ({format_duration(utc(run_time) - utc(began))} ago)"))
    if explanation is not None and notice.key.check == CheckKind.SCHEMA:
        # Column counts say nothing ("Observed 5, Expected 5"): say what changed.
        changed = format_schema_changes(explanation.details)
        if changed:
            fields.append(("Schema", f"{changed} (against the accepted schema)"))
        if explanation.reason:
            fields.append(("Why", explanation.reason))
    elif explanation is not None:
        seconds, rate = notice.key.measures_time, notice.key.is_rate
        if explanation.observed is not None:
            observed = format_value(explanation.observed, seconds=seconds, rate=rate)
            effect = explanation.effect_size
            if effect is not None and math.isfinite(effect) and not seconds:  # "+2000% late" says nothing
                observed += f" ({effect:+.0%} against expected)"
            fields.append(("Observed", observed))
        expected = ""
        if explanation.expected is not None:
            expected = format_estimate(explanation.expected, seconds=seconds, rate=rate)
        normal = format_range(explanation.lower, explanation.upper, seconds=seconds, rate=rate)
        if expected and normal:
            expected = f"{expected} (normal range {normal})"
        if expected or normal:
            fields.append(("Expected", expected or normal))
        if explanation.reason:
            fields.append(("Why", explanation.reason))
    if notice.changed:
        fields.append(("Changed", notice.changed))
    recent = [(f"{utc(ts):%m-%d %H:%M}", value) for ts, value in notice.recent[-MAX_RECENT_VALUES:]]
    trend = sparkline([value for _, value in recent])
    if trend:
        finite = [value for _, value in recent if math.isfinite(value)]
        span = f"{format_value(min(finite))} to {format_value(max(finite))}"
        fields.append(("Recent", f"{trend} ({format_count(len(finite), 'value')}, {span}, oldest first)"))
    return AlertView(
        status=_STATUS[notice.kind],
        severity=notice.severity,
        resolved=resolved,
        where=notice.key.label,
        fields=[(label, _one_line(value)) for label, value in fields],
        recent=recent,
    )


def alert_views(notification: Notification) -> tuple[list[AlertView], int]:
    """Alerts in display order (open first, worst first), capped; and how many were left out."""
    ordered = sorted(
        notification.alerts,
        key=lambda a: (a.kind == NoticeKind.RESOLVED, -a.severity.rank),
    )
    shown = [alert_view(a, notification.run_time) for a in ordered[:MAX_LISTED_ALERTS]]
    return shown, len(ordered) - len(shown)


def footer_fields(notification: Notification) -> list[tuple[str, str]]:
    rows = [("Source", notification.source), ("Run", format_time(notification.run_time))]
    if notification.owner:
        rows.append(("Owner", notification.owner))
    if notification.tags:
        rows.append(("Tags", ", ".join(notification.tags)))
    return [(label, _one_line(value)) for label, value in rows]


def overall_state(notification: Notification) -> str:
    """FIRING, ERROR (only check errors are open) or RESOLVED: what SNS subscriptions filter on."""
    open_kinds = {a.kind for a in notification.alerts if a.kind != NoticeKind.RESOLVED}
    if not open_kinds:
        return "RESOLVED"
    return "ERROR" if open_kinds == {NoticeKind.ERROR} else "FIRING"


def _more(hidden: int) -> str:
    return f"… and {hidden} more alert(s)"


# --------------------------------------------------------------------------- formats


def subject(notification: Notification) -> str:
    """The title as one ASCII line under 100 characters (SNS Subject, email Subject)."""
    ascii_title = unicodedata.normalize("NFKD", notification.title).encode("ascii", "ignore").decode()
    printable = "".join(ch if ch.isprintable() else " " for ch in ascii_title)
    line = _one_line(printable) or "DriftGuard notification"
    return line if len(line) <= SUBJECT_MAX_CHARS else line[: SUBJECT_MAX_CHARS - 3] + "..."


def plain_text(notification: Notification) -> str:
    views, hidden = alert_views(notification)
    lines = [notification.title, " · ".join(f"{k} {v}" for k, v in footer_fields(notification)), ""]
    for view in views:
        lines.append(view.headline)
        width = max((len(label) for label, _ in view.fields), default=0)
        lines.extend(f"    {label.ljust(width)}  {value}" for label, value in view.fields)
        lines.append("")
    if hidden:
        lines += [_more(hidden), ""]
    if notification.silence_hint:
        lines.append(f"To silence: {notification.silence_hint}")
    lines.append(f"Notification {notification.id}")
    return "\n".join(lines) + "\n"


def json_payload(notification: Notification) -> dict[str, Any]:
    """The notification as strict JSON data (NaN and infinities become null, as pydantic writes).
    `group` only on a group's merged message: without grouping the payload is as it always was."""
    ungrouped = {"group"} if notification.group is None else None
    payload: dict[str, Any] = json.loads(notification.model_dump_json(exclude=ungrouped))
    return payload


def sns_attributes(notification: Notification) -> dict[str, str]:
    return {
        "severity": notification.worst_severity.value,
        "source": notification.source,
        "state": overall_state(notification),
    }


def _html_table(rows: list[tuple[str, str]]) -> str:
    cells = "".join(
        f'<tr><td style="padding:2px 12px 2px 0;{_MUTED}vertical-align:top;white-space:nowrap;">'
        f"{html_lib.escape(label)}</td>"
        f'<td style="padding:2px 0;word-break:break-word;">{html_lib.escape(value)}</td></tr>'
        for label, value in rows
    )
    return f'<table role="presentation" style="{_TABLE}font-size:14px;">{cells}</table>'


def _html_recent(recent: list[tuple[str, float]]) -> str:
    shares = scaled([value for _, value in recent])
    if all(share is None for share in shares):
        return ""
    rows = ""
    for (at, value), share in zip(recent, shares, strict=True):
        width = 0 if share is None else 4 + round(share * 96)
        rows += (
            f'<tr><td style="padding:1px 8px 1px 0;{_MUTED}white-space:nowrap;">{html_lib.escape(at)}</td>'
            f'<td style="padding:1px 8px 1px 0;text-align:right;white-space:nowrap;">'
            f"{html_lib.escape(format_value(value))}</td>"
            f'<td style="padding:1px 0;width:50%;">'
            f'<div style="background:#8c959f;height:8px;width:{width}%;"></div></td></tr>'
        )
    return (
        f'<table role="presentation" style="{_TABLE}font-size:13px;margin-top:8px;">'
        f'<tr><th style="text-align:left;{_MUTED}font-weight:normal;">Recent</th>'
        f'<th style="text-align:right;{_MUTED}font-weight:normal;padding-right:8px;">Value</th>'
        f"<th></th></tr>{rows}</table>"
    )


def _html_alert(view: AlertView) -> str:
    colour = _RESOLVED_COLOUR if view.resolved else _SEVERITY_COLOUR[view.severity]
    return (
        f'<div style="border-left:4px solid {colour};background:#ffffff;padding:12px;margin:0 0 12px;">'
        f'<p style="margin:0 0 2px;font-weight:bold;color:{colour};">'
        f"{html_lib.escape(view.status)} · {html_lib.escape(view.severity.value)}</p>"
        f'<p style="margin:0 0 8px;{_MONO}font-size:14px;word-break:break-all;">'
        f"{html_lib.escape(view.where)}</p>"
        f"{_html_table(view.fields)}{_html_recent(view.recent)}</div>"
    )


def html(notification: Notification) -> str:
    """A single-column, inline-styled email body, readable on a phone (max-width 600px)."""
    views, hidden = alert_views(notification)
    title = html_lib.escape(notification.title)
    more = f'<p style="margin:0 0 12px;">{html_lib.escape(_more(hidden))}</p>' if hidden else ""
    silence = (
        '<p style="margin:12px 0 4px;">To silence:</p>'
        '<pre style="margin:0;padding:8px;background:#eaeef2;white-space:pre-wrap;word-break:break-all;'
        f'font-size:13px;">{html_lib.escape(notification.silence_hint)}</pre>'
        if notification.silence_hint
        else ""
    )
    return (
        '<!DOCTYPE html><html><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{title}</title></head>"
        '<body style="margin:0;padding:0;background:#f6f8fa;">'
        '<div style="max-width:600px;margin:0 auto;padding:16px;color:#1f2328;font-size:15px;'
        'line-height:1.45;font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;">'
        f'<h1 style="font-size:18px;margin:0 0 12px;">{title}</h1>'
        + "".join(_html_alert(v) for v in views)
        + more
        + _html_table(footer_fields(notification))
        + silence
        + f'<p style="margin:12px 0 0;{_MUTED}font-size:12px;">'
        f"Notification {html_lib.escape(notification.id)}</p></div></body></html>"
    )


def _mrkdwn(text: str) -> str:
    """Escape the three characters Slack's mrkdwn treats as control sequences."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _slack_text(text: str) -> dict[str, str]:
    return {"type": "mrkdwn", "text": truncate(text, SLACK_MAX_TEXT)}


def _slack_alert(view: AlertView) -> dict[str, Any]:
    icon = ":white_check_mark:" if view.resolved else _SLACK_EMOJI[view.severity]
    lines = [f"{icon} *{_mrkdwn(view.status)}* · {_mrkdwn(view.severity.value)} · `{_mrkdwn(view.where)}`"]
    lines += [f"*{label}:* {_mrkdwn(value)}" for label, value in view.fields]
    return {"type": "section", "text": _slack_text("\n".join(lines))}


def slack_blocks(notification: Notification) -> list[dict[str, Any]]:
    """Block Kit: a header, one section per alert, a context with owner/tags and the silence hint.

    Within Block Kit's limits: at most 50 blocks (alerts beyond MAX_LISTED_ALERTS are summarised
    as "and N more"), section/context text at most 3000 characters, header at most 150.
    """
    views, hidden = alert_views(notification)
    header = {
        "type": "header",
        "text": {"type": "plain_text", "text": truncate(notification.title, SLACK_MAX_HEADER)},
    }
    blocks: list[dict[str, Any]] = [header, *(_slack_alert(v) for v in views)]
    if hidden:
        blocks.append({"type": "section", "text": _slack_text(_mrkdwn(_more(hidden)))})
    context = [_slack_text(f"*{label}:* {_mrkdwn(value)}") for label, value in footer_fields(notification)]
    if notification.silence_hint:
        context.append(_slack_text(f"*To silence:* `{_mrkdwn(_one_line(notification.silence_hint))}`"))
    blocks.append({"type": "context", "elements": context})
    return blocks
