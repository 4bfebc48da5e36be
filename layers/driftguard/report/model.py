"""The report's content, built from the Store port alone (SQLite or DynamoDB alike): what a person
reads in `driftguard report`. No HTML here; `report.render` draws it.

Reads are bounded: at most `SERIES_LIMIT` points a series, `TRANSITION_LIMIT` transitions a source,
and a chart shows at most `DISPLAY_POINTS` points (plus the anomalies and transitions it must show).
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any

from driftguard.alerts.labels import Labels
from driftguard.alerts.silences import matches
from driftguard.config import Config, DetectionSettings, Source
from driftguard.model import (
    AlertState,
    AlertStateName,
    CheckKey,
    CheckKind,
    MetricPoint,
    PointLabel,
    Silence,
    Transition,
)
from driftguard.report.band import NO_BAND, BandPoint, SeriesBand, band_kind, bands_at, judged_series_key
from driftguard.report.downsample import display_indices
from driftguard.store.base import Store

SERIES_LIMIT = 20_000  # points read per series: 8 weeks of 5-minute points, plus training history
TRANSITION_LIMIT = 2_000  # per source
DISPLAY_POINTS = 300  # per chart, before the points that must be shown are added
RECENT_NOTICES = 60

# the order a person wants to read checks in: what needs them first
STATE_ORDER = {
    AlertStateName.FIRING: 0,
    AlertStateName.ERROR: 1,
    AlertStateName.PENDING: 2,
    AlertStateName.NO_DATA: 3,
    AlertStateName.RESOLVED: 4,
    AlertStateName.LEARNING: 5,
    AlertStateName.OK: 6,
}
_NOTICE_STATES = {AlertStateName.FIRING, AlertStateName.RESOLVED, AlertStateName.ERROR}
_SHADED_LABELS = {PointLabel.INCIDENT, PointLabel.MAINTENANCE}


def _ts(t: datetime | None) -> float | None:
    return None if t is None else round(t.timestamp(), 3)


@dataclass
class Span:
    """A shaded stretch of a chart: a silence, an operator's label, the training window."""

    kind: str  # "silence" | "incident" | "maintenance" | "training"
    start: float
    end: float
    text: str


@dataclass
class Mark:
    """A vertical line on a chart: an alert transition."""

    t: float
    to_state: str
    text: str


@dataclass
class Chart:
    """Parallel arrays, one entry a displayed point (epoch seconds); None where there is no band."""

    t: list[float] = field(default_factory=list)
    value: list[float] = field(default_factory=list)
    expected: list[float | None] = field(default_factory=list)
    lower: list[float | None] = field(default_factory=list)
    upper: list[float | None] = field(default_factory=list)
    anomaly: list[int] = field(default_factory=list)  # 1 where the point alerted
    notes: dict[int, str] = field(default_factory=dict)  # display index -> the explanation said then
    points_total: int = 0
    band: str = ""  # how the band was obtained, shown under the chart
    unit: str = ""  # "s" for durations

    def add(self, t: float, value: float, band: BandPoint, anomaly: bool) -> None:
        """One displayed point; the band is rounded to 4 significant digits (a chart cannot show
        more, and it halves the file), the value is kept as observed."""
        self.t.append(int(t) if t.is_integer() else t)
        self.value.append(value)
        self.expected.append(_drawn(band.expected))
        self.lower.append(_drawn(band.lower))
        self.upper.append(_drawn(band.upper))
        self.anomaly.append(int(anomaly))


def _drawn(x: float | None) -> float | None:
    return None if x is None else float(f"{x:.4g}")


@dataclass
class CheckView:
    id: str
    source: str
    table: str
    check: str
    metric: str
    column: str
    label: str
    state: str
    severity: str
    since: float | None
    owner: str
    tags: list[str]
    reason: str
    method: str
    chart: Chart | None = None
    notified: dict[str, float] = field(default_factory=dict)  # channel -> its last notice of this alert
    spans: list[Span] = field(default_factory=list)
    marks: list[Mark] = field(default_factory=list)


@dataclass
class TimelineEntry:
    t: float
    source: str
    table: str
    state: str
    text: str


@dataclass
class Delivery:
    t: float
    source: str
    channel: str
    text: str
    detail: str = ""


@dataclass
class Report:
    title: str
    generated_at: float
    since: float
    until: float
    state: str
    checks: list[CheckView] = field(default_factory=list)
    schema_changes: list[TimelineEntry] = field(default_factory=list)
    notices: list[TimelineEntry] = field(default_factory=list)
    pending: list[Delivery] = field(default_factory=list)
    parked: list[Delivery] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class _Owners:
    """Owner and tags of each source, as the config says (the state does not hold them)."""

    sources: dict[str, Source]

    def source(self, name: str) -> Source | None:
        return self.sources.get(name)

    def labels(self, key: CheckKey, state: AlertState) -> Labels:
        """What silences match on; a source the config does not name has no owner and no tags."""
        src = self.sources.get(key.source)
        if src is not None:
            return Labels.of(key, state.severity, src)
        column, severity = key.column or "", state.severity.value
        return Labels(
            key.source, key.table, key.check.value, key.metric, column, severity, "", (), key.segment or ""
        )


def _settings_and_period(config: Config | None, key: CheckKey) -> tuple[DetectionSettings, timedelta | None]:
    """The detection settings of the check (its overrides applied) and a volume check's period."""
    if config is None:
        return DetectionSettings(), None
    source = next((s for s in config.sources if s.name == key.source), None)
    if source is None:
        return DetectionSettings(), None
    table = next((t for t in source.tables if t.name == key.table), None)
    checks = table.checks if table else None
    if key.check == CheckKind.VOLUME and checks and checks.volume:
        return config.detection_for(source, checks.volume.detection), checks.volume.effective_period
    if key.check == CheckKind.FRESHNESS and checks and checks.freshness:
        return config.detection_for(source, checks.freshness.detection), None
    if key.check == CheckKind.COLUMN and checks:
        column = next((c for c in checks.columns if c.name == key.column), None)
        if column is not None:
            return config.detection_for(source, column.detection), None
    return config.detection_for(source), None


def _label_spans(points: Sequence[MetricPoint]) -> list[Span]:
    """Runs of consecutive points an operator labelled (incident, maintenance), as spans."""
    spans: list[Span] = []
    previous: MetricPoint | None = None
    for p in points:
        if p.label in _SHADED_LABELS:
            t = p.ts.timestamp()
            if previous is not None and previous.label == p.label and spans:
                spans[-1].end = t
            else:
                spans.append(Span(p.label.value, t, t, f"labelled {p.label.value} by an operator"))
        previous = p
    return spans


def _judged_band(state: AlertState, kind: SeriesBand, newest: datetime) -> BandPoint | None:
    """The band the latest run judged the `newest` point with, where its explanation holds one."""
    finding = state.last_finding
    if finding is None or kind.seasonal is None or finding.ts < newest:
        return None
    explained = finding.explanation
    expected = explained.expected if isinstance(explained.expected, int | float) else None
    if expected is None or explained.lower is None or explained.upper is None:
        return None
    return BandPoint(float(expected), explained.lower, explained.upper)


def _chart(
    key: CheckKey,
    points: list[MetricPoint],
    learned: list[MetricPoint],
    state: AlertState,
    transitions: list[Transition],
    config: Config | None,
) -> Chart:
    """The displayed points of a series (`points`: those in the report's window), their band and notes."""
    xs = [p.ts.timestamp() for p in points]
    ys = [p.value for p in points]
    # a transition explains the newest point its run had judged (a volume point is stamped with its
    # period's start, before the run)
    said: dict[int, str] = {}
    for t in transitions:
        i = bisect.bisect_right(xs, t.at.timestamp()) - 1
        if i >= 0:
            said[i] = (t.finding.explanation.reason if t.finding else "") or t.reason
    finding = state.last_finding
    if finding is not None and finding.explanation.reason and finding.ts.timestamp() >= xs[-1]:
        said[len(xs) - 1] = finding.explanation.reason
    keep = [i for i, p in enumerate(points) if p.label == PointLabel.ANOMALY]
    shown = display_indices(xs, ys, DISPLAY_POINTS, [*keep, *said])
    chart = Chart(points_total=len(points), unit="s" if key.measures_time else "")
    settings, period = _settings_and_period(config, key)
    kind = band_kind(key, period)
    bands: list[BandPoint]
    if kind is None:
        bands = [NO_BAND] * len(shown)
        chart.band = "no learned band: this check compares with its own threshold"
    else:
        asked = [(points[i].ts, points[i].value) for i in shown]
        bands = bands_at(kind, learned, asked, settings)
        judged = _judged_band(state, kind, points[-1].ts)
        if judged is not None and shown[-1] == len(points) - 1:
            bands[-1] = judged  # the newest point: the band its run stored, not a recomputation
        chart.band = "band: the range the detector learns from the stored points before each shown time" + (
            "" if config is not None else " (default detection settings: no config was given)"
        )
    for n, (i, band) in enumerate(zip(shown, bands, strict=True)):
        p = points[i]
        chart.add(xs[i], p.value, band, p.label == PointLabel.ANOMALY)
        if i in said:
            chart.notes[n] = said[i]
    return chart


def _check_view(
    store: Store,
    state: AlertState,
    transitions: list[Transition],
    silences: list[Silence],
    owners: _Owners,
    config: Config | None,
    since: datetime,
    until: datetime,
) -> CheckView:
    key = state.key
    src = owners.source(key.source)
    finding = state.last_finding
    explanation = finding.explanation if finding else None
    view = CheckView(
        id=key.fingerprint,
        source=key.source,
        table=key.table,
        check=key.check.value,
        metric=key.metric,
        column=key.column or "",
        label=key.label,
        state=state.state.value,
        severity=state.severity.value,
        since=_ts(state.since),
        owner=(src.owner or "") if src else "",
        tags=list(src.tags) if src else [],
        reason=explanation.reason if explanation else "",
        method=explanation.method if explanation else "",
        notified={channel: at.timestamp() for channel, at in sorted(state.notified_at.items())},
    )
    in_window = [t for t in transitions if since <= t.at <= until]
    view.marks = [
        Mark(t.at.timestamp(), t.to_state.value, f"{t.from_state.value} → {t.to_state.value}: {t.reason}")
        for t in in_window
    ]
    labels = owners.labels(key, state)
    for s in silences:
        if s.ends_at > since and s.starts_at < until and all(matches(m, labels) for m in s.matchers):
            view.spans.append(
                Span(
                    "silence",
                    s.starts_at.timestamp(),
                    s.ends_at.timestamp(),
                    f"silenced: {s.comment} ({s.created_by})",
                )
            )
    if explanation and explanation.training_start and explanation.training_end:
        view.spans.append(
            Span(
                "training",
                explanation.training_start.timestamp(),
                explanation.training_end.timestamp(),
                f"training window of the latest judgement ({explanation.training_points} points)",
            )
        )
    if key.check in (CheckKind.SCHEMA, CheckKind.SOURCE):
        return view
    end = until + timedelta(microseconds=1)
    stored = store.series(key, before=end, limit=SERIES_LIMIT)
    shown = [p for p in stored if p.ts >= since]
    if not shown:
        return view
    learned_key = judged_series_key(key)
    learned = stored if learned_key == key else store.series(learned_key, before=end, limit=SERIES_LIMIT)
    view.chart = _chart(key, shown, learned, state, in_window, config)
    view.spans.extend(_label_spans(shown))
    return view


def _schema_entries(
    source: str, transitions: list[Transition], store: Store, since: datetime
) -> list[TimelineEntry]:
    entries = [
        TimelineEntry(t.at.timestamp(), source, t.key.table, t.to_state.value, t.reason)
        for t in transitions
        if t.key.check == CheckKind.SCHEMA and t.at >= since
    ]
    for table, baseline in store.schema_baselines(source).items():
        if baseline.accepted_at >= since:
            who = (
                "learned on first sight"
                if baseline.accepted_by == "learned"
                else f"accepted by {baseline.accepted_by}"
            )
            entries.append(
                TimelineEntry(
                    baseline.accepted_at.timestamp(),
                    source,
                    table,
                    "baseline",
                    f"schema of {len(baseline.columns)} columns {who}",
                )
            )
    return entries


def build_report(
    store: Store,
    *,
    now: datetime,
    since: datetime,
    source: str | None = None,
    config: Config | None = None,
    state_label: str = "",
) -> Report:
    """Everything the report shows about `source` (default: every source), from `since` to `now`."""
    owners = _Owners({s.name: s for s in config.sources} if config else {})
    report = Report(
        title="DriftGuard report" + (f": {source}" if source else ""),
        generated_at=now.timestamp(),
        since=since.timestamp(),
        until=now.timestamp(),
        state=state_label,
    )
    if config is None:
        report.notes.append("No config was given: owners and tags are unknown, bands use default settings.")
    states = sorted(
        store.alert_states(source),
        key=lambda s: (STATE_ORDER.get(s.state, 9), s.key.source, s.key.table, s.key.label),
    )
    silences = store.silences()
    by_source: dict[str, list[Transition]] = {}
    for name in sorted({s.key.source for s in states}):
        by_source[name] = store.transitions(name, as_of=now, limit=TRANSITION_LIMIT)
        report.schema_changes.extend(_schema_entries(name, by_source[name], store, since))
        report.notices.extend(
            TimelineEntry(
                t.at.timestamp(),
                name,
                t.key.table,
                t.to_state.value,
                f"{t.key.label}: {t.reason}"
                + (f" (muted by silence {', '.join(t.silenced_by)})" if t.silenced_by else ""),
            )
            for t in by_source[name]
            if t.to_state in _NOTICE_STATES and t.at >= since
        )
    for state in states:
        mine = [t for t in by_source.get(state.key.source, []) if t.fingerprint == state.fingerprint]
        mine.reverse()  # oldest first, as the chart reads
        report.checks.append(_check_view(store, state, mine, silences, owners, config, since, now))
    report.schema_changes.sort(key=lambda e: e.t, reverse=True)
    report.notices.sort(key=lambda e: e.t, reverse=True)
    del report.notices[RECENT_NOTICES:]
    for n in store.pending_notifications(source):
        report.pending.append(Delivery(n.created_at.timestamp(), n.source, n.channel, n.title))
    for d in store.failed_deliveries():
        note = d.notification
        if source is not None and (note is None or note.source != source):
            continue
        report.parked.append(
            Delivery(
                d.at.timestamp(),
                note.source if note else "",
                d.channel,
                note.title if note else d.notification_id,
                f"{d.attempts} attempt(s): {d.error or 'no error recorded'}",
            )
        )
    return report


@dataclass(frozen=True)
class ReplayedPoint:
    """One verdict of `driftguard backtest`, as drawn: the band is the replay's own, point by point."""

    ts: datetime
    value: float
    expected: float | None
    lower: float | None
    upper: float | None
    anomaly: bool


def backtest_report(
    check: str, input_name: str, replayed: Sequence[ReplayedPoint], *, unit: str, now: datetime
) -> Report:
    """A report of one replayed series, so a person sees why each point was flagged."""
    xs = [p.ts.timestamp() for p in replayed]
    shown = display_indices(
        xs, [p.value for p in replayed], DISPLAY_POINTS, [i for i, p in enumerate(replayed) if p.anomaly]
    )
    chart = Chart(points_total=len(replayed), unit=unit, band="band: the replay's own, at every shown point")
    for i in shown:
        p = replayed[i]
        chart.add(xs[i], p.value, BandPoint(p.expected, p.lower, p.upper), p.anomaly)
    flagged = sum(p.anomaly for p in replayed)
    learning = sum(p.upper is None for p in replayed)
    view = CheckView(
        id="backtest",
        source=input_name,
        table="",
        check=check,
        metric=check,
        column="",
        label=f"{input_name} {check}",
        state="backtest",
        severity="",
        since=xs[0] if xs else None,
        owner="",
        tags=[],
        reason=f"{len(replayed)} points replayed: {flagged} flagged, {learning} while learning. "
        "Each verdict used only the points before it.",
        method="backtest",
        chart=chart if replayed else None,
    )
    return Report(
        title=f"DriftGuard backtest: {input_name}",
        generated_at=now.timestamp(),
        since=xs[0] if xs else now.timestamp(),
        until=xs[-1] if xs else now.timestamp(),
        state=f"backtest of {input_name}",
        checks=[view],
    )
