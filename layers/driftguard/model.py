"""The domain model shared by every layer: what was observed, what was decided, what was said.

Everything here is plain data (pydantic models, frozen where they are values), with no I/O.
Times are always timezone-aware UTC datetimes; `utc()` normalises anything else.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from functools import lru_cache
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator


def utc(value: datetime) -> datetime:
    """Return `value` as an aware UTC datetime (naive values are taken to be UTC already)."""
    if value.tzinfo is UTC:  # the usual case, and a validator runs this for every stored point
        return value
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def utcnow() -> datetime:
    return datetime.now(UTC)


def stable_hash(*parts: object, length: int = 16) -> str:
    """A short, stable, order-sensitive hash of `parts` (used for fingerprints and dedup keys)."""
    payload = json.dumps([str(p) if p is not None else None for p in parts], separators=(",", ":"))
    return hashlib.sha256(payload.encode()).hexdigest()[:length]


@lru_cache(maxsize=1 << 16)
def _key_fingerprint(*parts: str | None) -> str:
    """A CheckKey's fingerprint, remembered: a run asks for each key's many times (history
    reads, state, labels: 29 times a table in a steady run), and a hash of strings is cheaper
    than a JSON encoding and a SHA-256. A pure function of the key's fields, so never stale."""
    return stable_hash(*parts)


class Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class CheckKind(StrEnum):
    FRESHNESS = "freshness"
    VOLUME = "volume"
    SCHEMA = "schema"
    COLUMN = "column"
    SQL = "sql"
    SQL_METRIC = "sql_metric"  # a learned custom metric (sources[].sql_metrics)
    SEGMENT_MISSING = "segment_missing"  # a segment of a table (tables[].segment_by) stopped having rows
    SOURCE = "source"  # the source as a whole: reachability, credentials (ERROR alerts)


class Severity(StrEnum):
    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"

    @property
    def rank(self) -> int:
        return {"info": 0, "warning": 1, "critical": 2}[self.value]


class FindingStatus(StrEnum):
    """What one check concluded in one run (before the alert lifecycle)."""

    OK = "ok"
    ANOMALY = "anomaly"  # the check's condition holds: something is wrong
    LEARNING = "learning"  # not enough history to judge yet
    NO_DATA = "no_data"  # the check ran but had nothing to judge (empty table, NULL timestamp)
    ERROR = "error"  # the check itself failed (unreachable, timeout, permission, bad SQL)


class AlertStateName(StrEnum):
    """The alert lifecycle, named as an operator would (see driftguard.alerts)."""

    OK = "OK"
    LEARNING = "LEARNING"
    PENDING = "PENDING"
    FIRING = "FIRING"
    RESOLVED = "RESOLVED"
    ERROR = "ERROR"
    NO_DATA = "NO_DATA"


class CheckKey(Frozen):
    """Identity of one check's series: the alert fingerprint is derived from it.

    `metric` distinguishes several series of one check, e.g. `row_count`, `lag_seconds`,
    `null_rate`; `column` is set for column metrics; `segment` is reserved for segmented checks.
    For table-less checks (custom SQL at source level, source errors) `table` is "".
    """

    source: str
    table: str = ""
    check: CheckKind
    metric: str
    column: str | None = None
    segment: str | None = None

    @property
    def fingerprint(self) -> str:
        parts = (self.source, self.table, self.check.value, self.metric, self.column, self.segment)
        return _key_fingerprint(*parts)

    @property
    def measures_time(self) -> bool:
        """True for series measured in seconds (a freshness lag), which read best as durations."""
        return self.metric.endswith("_seconds") or "lag" in self.metric

    @property
    def is_rate(self) -> bool:
        """True for shares in [0, 1] (null_rate, distinct_rate ...), which read best as percentages."""
        return self.metric.endswith("_rate")

    @property
    def label(self) -> str:
        """Human-readable name: source.table check/metric[column]."""
        where = f"{self.source}.{self.table}" if self.table else self.source
        what = self.check.value if self.metric == self.check.value else f"{self.check.value}/{self.metric}"
        if self.column:
            what += f"[{self.column}]"
        if self.segment:
            what += f"{{{self.segment}}}"
        return f"{where} {what}"


# --------------------------------------------------------------------------- observations


class ColumnInfo(Frozen):
    name: str
    # normalised family: integer float numeric text boolean date timestamp timestamptz json binary other
    type: str
    raw_type: str  # as the database reports it
    nullable: bool
    position: int  # 1-based ordinal position


class PeriodCount(Frozen):
    """Rows whose timestamp falls in [start, start + period)."""

    start: datetime
    count: int


class ColumnProfile(Frozen):
    column: str
    row_count: int
    null_count: int
    distinct_count: int | None = None
    mean: float | None = None
    min: float | str | None = None
    max: float | str | None = None
    quantiles: dict[str, float] | None = (
        None  # e.g. {"p25": .., "p50": .., "p75": ..} where the dialect allows
    )
    period_start: datetime | None = None  # the period profiled (the table's timestamp column)
    sample_rows: int | None = None  # without a timestamp column: the rows sampled (None: all rows)
    errors: dict[str, str] = Field(default_factory=dict)  # metric -> why it was not computed

    @property
    def null_rate(self) -> float | None:
        return None if self.row_count == 0 else self.null_count / self.row_count


class SqlCheckResult(Frozen):
    """Outcome of a custom SQL check (the SQL-alert contract: a `status` column ALERT|OK)."""

    name: str
    status: str  # "ALERT" or "OK" (normalised upper case)
    actual: float | str | None = None
    threshold: float | str | None = None
    context: list[dict[str, Any]] = Field(default_factory=list)  # other columns of (up to 20) returned rows
    rows: int = 0  # rows read: at most the check's max_rows
    truncated: bool = False  # the result had more rows than max_rows; they were not read


class SqlMetricRow(Frozen):
    """One row of a learned SQL metric: its value, and the segment and time it describes."""

    value: float | None
    segment: str | None = None
    ts: datetime | None = None


class SqlMetricResult(Frozen):
    """The rows a learned SQL metric's query returned (newest `ts` last when it has one)."""

    name: str
    rows: list[SqlMetricRow] = Field(default_factory=list)


class SegmentSnapshot(Frozen):
    """One segment of a segmented table (tables[].segment_by) in the latest volume period.

    `segment` names it as labels and explanations do (`country=DE`, `country=DE,device=ios`, or
    `(other)` for the segments beyond the table's segment_limit, summed). `present` is False for a
    segment the table had before that has no row in the period (it is missing)."""

    segment: str
    present: bool = True
    period_start: datetime | None = None  # the latest complete volume period
    row_count: int = 0  # rows in that period
    last_modified: datetime | None = None  # max(freshness column) over the period and the one running
    profiles: list[ColumnProfile] | None = None  # column metrics over the period
    folded: int | None = None  # (other) only: how many segments it sums
    # A segment seen for the first time brings its own past (rows per period, update times and
    # profiles per period of the training window), read in one GROUP BY; kept as series points, not
    # with the stored snapshot.
    history: TableHistory | None = Field(default=None, exclude=True)


class TableSnapshot(Frozen):
    """Everything collected about one table in one run. Fields are None where not configured."""

    table: str
    db_schema: str | None = None
    row_count: int | None = None
    row_count_method: str | None = None  # "exact", "statistics", "period"
    last_modified: datetime | None = None  # max(freshness column)
    period_counts: list[PeriodCount] | None = None  # complete periods, oldest first
    columns: list[ColumnInfo] | None = None  # schema
    profiles: list[ColumnProfile] | None = None
    error: str | None = None  # collection of this table failed; other tables still count
    error_kind: str | None = None  # ErrorKind value
    round_trips: int = 0
    # The engine's write counters as this run saw them (PostgreSQL), hashed: equal markers mean no
    # row was written in between. None where the engine keeps none.
    change_marker: int | None = None
    # Set when freshness and the row count were not read again but kept from the full read made at
    # this time, because the table's write counters had not moved since (collect.changes).
    reused_from: datetime | None = None
    segments: list[SegmentSnapshot] | None = None  # tables[].segment_by: one per segment judged


class LastRead(Frozen):
    """What the last full read of a table saw, as its stored series remember it: what a run may keep
    instead of reading the table again while the table's write counters stand still."""

    marker: int
    at: datetime  # the scheduled time of that full read
    last_modified: datetime | None = None
    row_count: int | None = None


class TableHistory(Frozen):
    """What a table's own rows say about its past, read once to seed detection on day one."""

    table: str
    period_seconds: float | None = None  # the volume period of `period_counts`
    period_counts: list[PeriodCount] = Field(default_factory=list)  # complete periods, oldest first
    update_times: list[datetime] = Field(default_factory=list)  # when new data arrived, oldest first
    profiles: list[ColumnProfile] = Field(default_factory=list)  # per column and complete period


class Snapshot(Frozen):
    """One collection of one source at one scheduled time. (source, scheduled_time) is unique."""

    source: str
    scheduled_time: datetime
    collected_at: datetime
    tables: list[TableSnapshot] = Field(default_factory=list)
    sql_checks: list[SqlCheckResult] = Field(default_factory=list)
    sql_errors: dict[str, str] = Field(default_factory=dict)  # check or metric name -> error message
    # Not stored with the snapshot: a metric's rows may carry its history (backfill) and are kept
    # as series points instead, which keeps a stored snapshot within item-size limits.
    sql_metrics: list[SqlMetricResult] = Field(default_factory=list, exclude=True)
    duration_ms: float = 0.0
    round_trips: int = 0

    @field_validator("scheduled_time", "collected_at")
    @classmethod
    def _aware(cls, v: datetime) -> datetime:
        return utc(v)

    def table(self, name: str) -> TableSnapshot | None:
        return next((t for t in self.tables if t.table == name), None)


class PointLabel(StrEnum):
    """Why a stored point is left out of training."""

    NONE = ""
    ANOMALY = "anomaly"  # it alerted
    INCIDENT = "incident"  # an operator said so
    MAINTENANCE = "maintenance"  # an operator said so


class MetricPoint(Frozen):
    """One value of one series at one time: what the detectors learn from."""

    key: CheckKey
    ts: datetime
    value: float
    label: PointLabel = PointLabel.NONE

    @field_validator("ts")
    @classmethod
    def _aware(cls, v: datetime) -> datetime:
        return utc(v)

    @property
    def excluded(self) -> bool:
        return self.label != PointLabel.NONE


_new_object = object.__new__
_set_attribute = object.__setattr__


def stored_point(key: CheckKey, ts: datetime, value: float, label: PointLabel) -> MetricPoint:
    """A point read back from a store, built without validating it again.

    Every stored point was a validated MetricPoint when it was written, and the stores hand back
    the field types (an aware UTC datetime, a float, a PointLabel). Validating them again was most
    of the cost of a check's history reads (1.45 us a point against 0.73 us here, datetime included;
    a steady check of 100 hourly tables reads some 86,000). This sets what
    `BaseModel.model_construct` sets, without its per-field walk, which made it slower (2.0 us);
    the store contract checks that such points behave like validated ones.
    """
    point = _new_object(MetricPoint)
    _set_attribute(point, "__dict__", {"key": key, "ts": ts, "value": value, "label": label})
    _set_attribute(point, "__pydantic_fields_set__", {"key", "ts", "value", "label"})
    _set_attribute(point, "__pydantic_extra__", None)
    _set_attribute(point, "__pydantic_private__", None)
    return point


def trusted_point(
    key: CheckKey, ts: datetime, value: float, label: PointLabel = PointLabel.NONE
) -> MetricPoint:
    """A point built from parts already of its field types (a CheckKey, a datetime, a number), as
    a backfill turns a table's history into points: the same point `MetricPoint(...)` validates
    (the time made UTC, the number a float), at a fraction of the cost (a first run builds one per
    backfilled period and arrival: 420,000 for 500 tables of five weeks)."""
    return stored_point(key, utc(ts), float(value), label)


# --------------------------------------------------------------------------- decisions


class Explanation(Frozen):
    """Why a finding is what it is: shown by `driftguard explain` and in every alert."""

    observed: float | str | None = None
    expected: float | str | None = None
    lower: float | None = None
    upper: float | None = None
    score: float = 0.0  # >= 0; larger is more anomalous
    method: str = ""  # e.g. "hard limit", "seasonal median + MAD", "schema diff"
    training_start: datetime | None = None
    training_end: datetime | None = None
    training_points: int = 0
    seasonal_slot: str | None = None  # e.g. "Mon 09:00"
    effect_size: float | None = None  # relative change against expected
    direction: str | None = None  # "drop" | "spike" | None
    needed_points: int | None = None  # while learning: how many more points are needed
    reason: str = ""  # one sentence an on-call engineer can act on
    details: dict[str, Any] = Field(default_factory=dict)  # check specific (schema diff, sql context ...)


class Finding(Frozen):
    """What one check concluded about one series in one run."""

    key: CheckKey
    ts: datetime  # the run's scheduled time
    status: FindingStatus
    severity: Severity = Severity.WARNING
    explanation: Explanation = Field(default_factory=Explanation)

    @property
    def fingerprint(self) -> str:
        return self.key.fingerprint


class Transition(Frozen):
    """One change of an alert's state: the audit trail."""

    id: str  # stable: hash(fingerprint, at, from, to) so retries never duplicate it
    fingerprint: str
    key: CheckKey
    at: datetime
    from_state: AlertStateName
    to_state: AlertStateName
    severity: Severity
    reason: str
    finding: Finding | None = None
    silenced_by: list[str] = Field(default_factory=list)  # silence ids that muted its notice


class AlertState(Frozen):
    """The lifecycle state of one check (one fingerprint). `version` is for optimistic locking."""

    key: CheckKey
    state: AlertStateName
    severity: Severity = Severity.WARNING
    since: datetime  # when it entered `state`
    active_since: datetime | None = None  # when the current incident began (PENDING/FIRING), else None
    consecutive: int = 0  # consecutive runs the current condition has held (anomaly or error)
    last_finding: Finding | None = None
    last_notified_at: datetime | None = None
    last_notified_severity: Severity | None = None
    last_transition_id: str | None = None
    version: int = 0
    # channel name -> when this alert was last notified there (repeat_interval is per route)
    notified_at: dict[str, datetime] = Field(default_factory=dict)
    last_notified_finding: Finding | None = None  # what the last notice said ("value 120 → 12")

    @property
    def fingerprint(self) -> str:
        return self.key.fingerprint


class Matcher(Frozen):
    """Alertmanager-style matcher on a label: source, table, check, metric, severity, owner or tag."""

    label: str
    value: str
    regex: bool = False
    negative: bool = False


class Silence(Frozen):
    id: str
    matchers: list[Matcher]
    starts_at: datetime
    ends_at: datetime
    created_by: str
    comment: str
    created_at: datetime

    def active(self, at: datetime) -> bool:
        return self.starts_at <= utc(at) < self.ends_at


class NoticeKind(StrEnum):
    FIRING = "firing"
    REPEAT = "repeat"
    ESCALATED = "escalated"
    RESOLVED = "resolved"
    ERROR = "error"


class AlertNotice(Frozen):
    """One alert inside a grouped notification."""

    key: CheckKey
    kind: NoticeKind
    state: AlertStateName
    severity: Severity
    since: datetime
    finding: Finding | None
    transition_id: str | None
    changed: str = ""  # what changed since the last notice, in words
    recent: list[tuple[datetime, float]] = Field(default_factory=list)  # recent values, for a table/chart
    # when the incident began (AlertState.active_since); a RESOLVED notice's `since` is when it resolved,
    # so this is what "was firing for 3h" is measured from
    active_since: datetime | None = None


class NotificationGroup(Frozen):
    """A group of a route that groups its notices (driftguard.alerts.grouping): one per route node,
    channel and values of the route's `group_by` labels, with the route's timing."""

    key: str  # stable id of (route, channel, labels): what the store files the group under
    route: str  # the route node, e.g. "route.routes[0]"
    channel: str
    labels: dict[str, str] = Field(default_factory=dict)  # the group_by labels and their values
    wait: timedelta  # group_wait
    interval: timedelta  # group_interval


class Notification(Frozen):
    """One grouped message for one source, one run and one channel; or, on a route with group_by,
    group_wait or group_interval, for one group and channel (`group`), merged across sources and runs.

    `id` is the dedup/idempotency key: stable across retries of the same run, so a channel
    never says the same thing twice.
    """

    id: str
    source: str
    channel: str
    run_time: datetime
    created_at: datetime
    owner: str | None = None
    tags: list[str] = Field(default_factory=list)
    alerts: list[AlertNotice]
    silence_hint: str = ""  # the command that silences these alerts
    group: NotificationGroup | None = None  # set on a group's merged message

    @property
    def worst_severity(self) -> Severity:
        return max((a.severity for a in self.alerts), key=lambda s: s.rank, default=Severity.INFO)

    @property
    def title(self) -> str:
        firing = [a for a in self.alerts if a.kind != NoticeKind.RESOLVED]
        resolved = len(self.alerts) - len(firing)
        if firing:
            head = f"[{self.worst_severity.value.upper()}] {self.source}: {len(firing)} alert(s) firing"
            return head + (f", {resolved} resolved" if resolved else "")
        return f"[RESOLVED] {self.source}: {resolved} alert(s) resolved"


class GroupedNotice(Frozen):
    """One run's notices for one group and channel, waiting to be merged with the group's others
    into one message (driftguard.alerts.grouping decides when)."""

    group: NotificationGroup
    not_before: datetime  # created + group_wait: the earliest a new group's message may go
    notification: Notification  # this run's notices of the group, as one message would carry them

    @property
    def id(self) -> str:
        return self.notification.id

    @property
    def created_at(self) -> datetime:
        return self.notification.created_at


class DeliveryStatus(StrEnum):
    DELIVERED = "delivered"
    FAILED = "failed"  # parked: retries exhausted or permanent error


class DeliveryRecord(Frozen):
    notification_id: str
    channel: str
    status: DeliveryStatus
    attempts: int
    at: datetime
    error: str | None = None
    notification: Notification | None = None  # kept for failed deliveries so they can be replayed


class RunStatus(StrEnum):
    OK = "ok"  # collected and decided
    PARTIAL = "partial"  # some tables or checks failed
    FAILED = "failed"  # the source could not be collected at all


class RunRecord(Frozen):
    source: str
    scheduled_time: datetime
    started_at: datetime
    finished_at: datetime
    status: RunStatus
    error: str | None = None
    error_kind: str | None = None
    findings: int = 0
    anomalies: int = 0
    notifications: int = 0
    # Every check's finding of this run, so `status` and `explain` show the latest value of each
    # check (alert states are written only when they change) and `explain --at` a past run.
    results: list[Finding] = Field(default_factory=list)

    @field_validator("scheduled_time", "started_at", "finished_at")
    @classmethod
    def _aware(cls, v: datetime) -> datetime:
        return utc(v)


class SchemaBaseline(Frozen):
    """The accepted schema of a table: learned on first sight, replaced when an operator accepts."""

    source: str
    table: str
    columns: list[ColumnInfo]
    accepted_at: datetime
    accepted_by: str  # "learned" or an operator name


class RunCommit(Frozen):
    """Everything one run decided, written to the store in one atomic step.

    `states` carry the version they were read at (`expected_versions[fingerprint]`, 0 = new);
    the store refuses the commit (StateConflict) if another writer moved any of them.
    `context_version` is the version of the source's partition the run was judged on
    (`SourceContext.version`); a store that versions partitions refuses the commit (StateConflict)
    if anything moved it since, so the run is judged again on what is current.
    `fits` are the fitted baselines detection keeps per series (by fingerprint; opaque JSON to the
    store): written with the run, each replacing that series' earlier fit, and handed back by
    `Store.load_source` (`SourceContext.fits`).
    """

    run: RunRecord
    snapshot: Snapshot | None
    points: list[MetricPoint] = Field(default_factory=list)
    states: list[AlertState] = Field(default_factory=list)
    expected_versions: dict[str, int] = Field(default_factory=dict)
    transitions: list[Transition] = Field(default_factory=list)
    notifications: list[Notification] = Field(default_factory=list)  # the outbox
    grouped: list[GroupedNotice] = Field(default_factory=list)  # notices waiting for their group
    schema_baselines: list[SchemaBaseline] = Field(default_factory=list)  # learned on first sight
    context_version: int | None = None
    fits: dict[str, dict[str, Any]] = Field(default_factory=dict)  # by fingerprint: Fitted.to_json()
