"""The configuration: one pydantic model used by the CLI, the Lambda runtime and the CDK stack.

`load_config(path)` parses YAML, validates it, and on any problem raises `ConfigError` whose
message names the file, the line, the key, what is wrong and what to do. Unknown keys are errors.
Credentials are never written in the file: only references (`password_env`, `password_secret`).
"""

from __future__ import annotations

import math
import re
from collections import Counter
from datetime import date, datetime, timedelta
from functools import cache
from itertools import pairwise
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from driftguard.errors import ConfigError
from driftguard.model import CheckKind, Severity, utc

if TYPE_CHECKING:
    import yaml

# --------------------------------------------------------------------------- small types

_DURATION_RE = re.compile(
    r"^\s*(\d+(?:\.\d+)?)\s*(s|sec|secs|second|seconds|m|min|mins|minute|minutes|h|hr|hrs|hour|hours|"
    r"d|day|days|w|week|weeks)\s*$",
    re.IGNORECASE,
)
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


# pydantic writes a timedelta as e.g. 'P1Y35D' (a year = 365 days) or 'PT15M'.
_ISO_DURATION_RE = re.compile(r"^P(?:(\d+)Y)?(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+(?:\.\d+)?)S)?)?$")


def parse_duration(value: Any) -> timedelta:
    """'90s', '15m', '15 minutes', '2h', '1d', '1w', a number of seconds, or ISO 8601 ('PT15M',
    how a compiled JSON config writes durations) -> timedelta."""
    if isinstance(value, timedelta):
        return value
    if isinstance(value, bool):
        raise ValueError("expected a duration such as '15m', '2h' or '1d', not a boolean")
    if isinstance(value, int | float):
        if not value > 0:  # also NaN
            raise ValueError("a duration must be positive")
        return _bounded(value)
    if isinstance(value, str) and (iso := _ISO_DURATION_RE.match(value)) and value != "P":
        years, days, hours, minutes, seconds = (float(g) if g else 0.0 for g in iso.groups())
        total = (years * 365 + days) * 86400 + hours * 3600 + minutes * 60 + seconds
        if total > 0:
            return _bounded(total)
    if isinstance(value, str):
        m = _DURATION_RE.match(value)
        if m:
            amount = float(m.group(1))
            unit = m.group(2).lower()
            unit_key = "m" if unit.startswith("min") or unit == "m" else unit[0]
            if amount <= 0:
                raise ValueError("a duration must be positive")
            return _bounded(amount * _UNIT_SECONDS[unit_key])
    raise ValueError(f"{value!r} is not a duration: write e.g. '30s', '15m', '2h', '1d' or '1w'")


def _any_case(pattern: str) -> str:
    """`pattern` matching letters in either case, for JSON Schema (whose patterns take no flags)."""
    out, escaped = [], False
    for ch in pattern:
        if escaped or not ch.isalpha():
            out.append(ch)
        else:
            out.append(f"[{ch.lower()}{ch.upper()}]")
        escaped = ch == "\\" and not escaped
    return "".join(out)


# The schema says what `parse_duration` takes, as users write it: '4h', '15 minutes', seconds, or
# ISO 8601 ('PT4H'), so an editor and `jsonschema` accept and refuse what the loader does.
_DURATION_SCHEMA: dict[str, Any] = {
    "anyOf": [
        {"type": "string", "pattern": _any_case(_DURATION_RE.pattern)},
        {"type": "string", "pattern": _ISO_DURATION_RE.pattern},
        {"type": "number", "exclusiveMinimum": 0},
    ],
    "description": "a duration: '30s', '15m', '2h', '1d', '1w', a number of seconds, or ISO 8601",
}

Duration = Annotated[timedelta, BeforeValidator(parse_duration), WithJsonSchema(_DURATION_SCHEMA)]

MAX_DURATION = timedelta(days=3660)  # ten years: no setting of DriftGuard means anything longer


def _bounded(seconds: float) -> timedelta:
    if not math.isfinite(seconds) or seconds > MAX_DURATION.total_seconds():
        raise ValueError(
            f"a duration must be at most {MAX_DURATION.days} days; write e.g. '30s', '2h' or '7d'"
        )
    return timedelta(seconds=seconds)


MAX_STATEMENT_TIMEOUT = timedelta(hours=6)
StatementTimeout = Annotated[
    timedelta,
    BeforeValidator(parse_duration),
    WithJsonSchema(_DURATION_SCHEMA),
    Field(le=MAX_STATEMENT_TIMEOUT, description="how long one statement may run before it is cancelled"),
]

NAME_RE = r"^[a-z0-9][a-z0-9_-]{0,62}$"
Name = Annotated[str, Field(pattern=NAME_RE)]
_NAME_HINT = (
    "use lower-case letters, digits, '-' and '_' (at most 63 characters, starting with a letter or digit)"
)


def format_duration(td: timedelta) -> str:
    seconds = int(td.total_seconds())
    for unit, size in (("w", 604800), ("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % size == 0 and seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


# --------------------------------------------------------------------------- schedule


class Schedule(Strict):
    """When a source is checked: exactly one of `cron` (standard 5 fields) or `rate`."""

    cron: str | None = None
    rate: Duration | None = None
    timezone: str = "UTC"
    flexible_window: Duration | None = None

    @field_validator("timezone")
    @classmethod
    def _tz(cls, v: str) -> str:
        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"unknown time zone {v!r}: use an IANA name such as 'UTC' or 'Europe/Berlin'"
            ) from None
        return v

    @field_validator("cron")
    @classmethod
    def _cron(cls, v: str | None) -> str | None:
        if v is None:
            return v
        from croniter import croniter

        fields = v.split()
        if len(fields) != 5:
            raise ValueError(
                f"cron {v!r} has {len(fields)} fields; write the standard 5 fields "
                "'minute hour day-of-month month day-of-week', e.g. '0 * * * *'"
            )
        if not croniter.is_valid(v):
            raise ValueError(
                f"cron {v!r} is not a valid cron expression, e.g. '*/15 * * * *' or '0 6 * * 1-5'"
            )
        dom, dow = fields[2], fields[4]
        if dom not in ("*", "?") and dow not in ("*", "?"):
            raise ValueError(
                f"cron {v!r} restricts both day-of-month and day-of-week; EventBridge Scheduler "
                "cannot express that: restrict only one of them"
            )
        try:  # croniter searches a bounded span of years and gives up on a date that never comes
            start = datetime(2024, 1, 1)
            croniter(v, start).get_next(datetime)
            croniter(v, start).get_prev(datetime)
        except Exception:  # CroniterBadDateError and its kin: the expression names no real date
            raise ValueError(
                f"cron {v!r} never fires (no such date, e.g. 31 February); check day-of-month and month"
            ) from None
        return v

    @model_validator(mode="after")
    def _one_of(self) -> Schedule:
        if (self.cron is None) == (self.rate is None):
            raise ValueError("a schedule needs exactly one of 'cron' or 'rate', e.g. rate: 15m")
        if self.rate is not None and self.rate < timedelta(minutes=1):
            raise ValueError("rate must be at least 1 minute (EventBridge Scheduler's finest rate)")
        return self

    @property
    def period(self) -> timedelta:
        """The nominal time between two runs (for cron: the smallest gap in the next week's fires)."""
        if self.rate is not None:
            return self.rate
        start = datetime(2024, 1, 1, tzinfo=ZoneInfo(self.timezone))
        fires = self.fires_between(start, start + timedelta(days=8))
        gaps = [b - a for a, b in pairwise(fires)]
        return min(gaps) if gaps else timedelta(days=7)

    def aws_expression(self) -> str:
        """This schedule as an EventBridge Scheduler expression."""
        if self.rate is not None:
            minutes = int(self.rate.total_seconds() // 60)
            for unit, size in (("day", 1440), ("hour", 60)):
                if minutes % size == 0:
                    n = minutes // size
                    return f"rate({n} {unit}{'s' if n > 1 else ''})"
            return f"rate({minutes} minute{'s' if minutes > 1 else ''})"
        assert self.cron is not None
        minute, hour, dom, month, dow = self.cron.split()
        if dow in ("*", "?"):
            dow = "?"
        else:
            dom = "?"
            dow = re.sub(
                r"\d+", lambda m: str(int(m.group()) % 7 + 1), dow
            )  # cron 0-6 (Sun=0) -> AWS 1-7 (Sun=1)
        return f"cron({minute} {hour} {dom} {month} {dow} *)"

    def fires_between(self, start: datetime, end: datetime) -> list[datetime]:
        """Scheduled times t with start < t <= end, as aware UTC datetimes."""
        tz = ZoneInfo(self.timezone)
        start, end = utc(start), utc(end)
        out: list[datetime] = []
        if self.rate is not None:
            step = self.rate.total_seconds()
            epoch = start.timestamp()
            t = (epoch // step + 1) * step
            while t <= end.timestamp():
                out.append(datetime.fromtimestamp(t, tz=utc(start).tzinfo))
                t += step
            return out
        from croniter import croniter

        assert self.cron is not None  # rate returned above; the validator guarantees one of them
        it = croniter(self.cron, start.astimezone(tz))
        while True:
            nxt: datetime = it.get_next(datetime)
            if utc(nxt) > end:
                return out
            out.append(utc(nxt))

    def latest_fire(self, at: datetime) -> datetime:
        """The most recent scheduled time at or before `at`."""
        at = utc(at)
        if self.rate is not None:
            step = self.rate.total_seconds()
            return datetime.fromtimestamp((at.timestamp() // step) * step, tz=at.tzinfo)
        from croniter import croniter

        tz = ZoneInfo(self.timezone)
        assert self.cron is not None
        it = croniter(self.cron, (at + timedelta(seconds=1)).astimezone(tz))
        prev: datetime = it.get_prev(datetime)
        return utc(prev)


# --------------------------------------------------------------------------- detection settings


def _known_calendar(v: str) -> str:
    from driftguard.detect.calendar import check_calendar  # the holidays library loads only when used

    check_calendar(v)
    return v.upper()  # as explanations name it: 'US holidays', 'DE-BY holidays'


def _known_timezone(v: str) -> str:
    try:
        ZoneInfo(v)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {v!r}; use an IANA name such as 'America/New_York'") from None
    return v


CalendarName = Annotated[str, AfterValidator(_known_calendar)]
TimezoneName = Annotated[str, AfterValidator(_known_timezone)]


class DetectionSettings(Strict):
    """How a learned baseline judges a series. Every field has a sensible default."""

    sensitivity: float = Field(
        default=4.0, gt=0, description="robust z-score (MAD units) beyond which a point is anomalous"
    )
    direction: Literal["both", "drop", "spike"] = "both"
    min_relative_change: float = Field(
        default=0.2, ge=0, description="ignore changes smaller than this share of expected"
    )
    min_absolute_change: float = Field(
        default=0.0, ge=0, description="ignore changes smaller than this absolute amount"
    )
    training_window: Duration = Field(
        default=timedelta(days=56), description="how far back the baseline learns"
    )
    min_points: int = Field(default=14, ge=3, description="points needed before the check leaves LEARNING")
    seasonality: Literal["auto", "none", "daily", "weekly"] = "auto"
    level_shift_confirm_runs: int = Field(
        default=6, ge=1, description="a shift that persists this many runs becomes the new normal"
    )
    calendar: CalendarName | None = Field(
        default=None,
        description="public holidays of this country, as the `holidays` library names it ('US', 'GB', "
        "'DE-BY' for a subdivision): kept out of training and judged against their own kind of day",
    )
    special_days: tuple[date, ...] = Field(
        default=(), description="more dates treated like holidays (sales, closures), as YYYY-MM-DD"
    )
    calendar_timezone: TimezoneName = Field(
        default="UTC", description="the time zone in which holidays are dates"
    )


class DetectionOverrides(Strict):
    """Per-check overrides of DetectionSettings (any subset)."""

    sensitivity: float | None = Field(default=None, gt=0)
    direction: Literal["both", "drop", "spike"] | None = None
    min_relative_change: float | None = Field(default=None, ge=0)
    min_absolute_change: float | None = Field(default=None, ge=0)
    training_window: Duration | None = None
    min_points: int | None = Field(default=None, ge=3)
    seasonality: Literal["auto", "none", "daily", "weekly"] | None = None
    level_shift_confirm_runs: int | None = Field(default=None, ge=1)
    calendar: CalendarName | None = None
    special_days: tuple[date, ...] | None = None
    calendar_timezone: TimezoneName | None = None

    def apply(self, base: DetectionSettings) -> DetectionSettings:
        return base.model_copy(update=self.model_dump(exclude_none=True))


# --------------------------------------------------------------------------- checks


class FreshnessCheck(Strict):
    column: str = Field(description="timestamp column whose maximum is the table's last update")
    max_age: Duration | None = Field(default=None, description="hard limit: alert when older than this")
    severity: Severity = Severity.WARNING
    detection: DetectionOverrides = Field(default_factory=DetectionOverrides)


class VolumeCheck(Strict):
    column: str | None = Field(default=None, description="timestamp column: count rows per period")
    period: Duration | None = Field(default=None, description="period of the per-period count (default 1h)")
    min_rows: int | None = Field(default=None, ge=0, description="hard limit")
    max_rows: int | None = Field(default=None, ge=0, description="hard limit")
    exact: bool = Field(default=False, description="count(*) the whole table instead of engine statistics")
    severity: Severity = Severity.WARNING
    detection: DetectionOverrides = Field(default_factory=DetectionOverrides)

    @model_validator(mode="after")
    def _limits(self) -> VolumeCheck:
        if self.min_rows is not None and self.max_rows is not None and self.min_rows > self.max_rows:
            raise ValueError(f"min_rows ({self.min_rows}) is larger than max_rows ({self.max_rows})")
        if self.period is not None and self.column is None:
            raise ValueError("'period' needs 'column': the timestamp column that places rows in periods")
        return self

    @property
    def effective_period(self) -> timedelta | None:
        if self.column is None:
            return None
        return self.period or timedelta(hours=1)


class ExpectedColumn(Strict):
    name: str
    type: str | None = None  # a normalised type family (integer, text, timestamp ...) or a raw type
    nullable: bool | None = None


class SchemaChangeSeverity(Strict):
    added: Severity = Severity.WARNING
    removed: Severity = Severity.CRITICAL
    type_changed: Severity = Severity.CRITICAL
    nullability_changed: Severity = Severity.WARNING
    order_changed: Severity = Severity.INFO


class SchemaCheck(Strict):
    expected: list[ExpectedColumn] | None = Field(default=None, description="omit to learn the schema")
    severity: SchemaChangeSeverity = Field(default_factory=SchemaChangeSeverity)


ColumnMetric = Literal["null_rate", "distinct_count", "mean", "min", "max", "quantiles"]


class ColumnCheck(Strict):
    name: str
    metrics: list[ColumnMetric] = Field(
        default_factory=lambda: list[ColumnMetric](["null_rate", "distinct_count"])
    )
    max_null_rate: float | None = Field(default=None, ge=0, le=1, description="hard limit")
    severity: Severity = Severity.WARNING
    detection: DetectionOverrides = Field(default_factory=DetectionOverrides)


def _true_means_defaults(v: Any) -> Any:
    return {} if v is True else (None if v is False else v)


def _true_allowed(schema: dict[str, Any]) -> None:
    """The JSON Schema of a check that `true` switches on with its defaults (`schema: true`)."""
    schema.setdefault("anyOf", []).append({"type": "boolean"})


class TableChecks(Strict):
    freshness: FreshnessCheck | None = None
    volume: Annotated[VolumeCheck | None, BeforeValidator(_true_means_defaults)] = Field(
        default=None, json_schema_extra=_true_allowed
    )
    schema_: Annotated[SchemaCheck | None, BeforeValidator(_true_means_defaults)] = Field(
        default=None, alias="schema", json_schema_extra=_true_allowed
    )
    columns: list[ColumnCheck] = Field(default_factory=list)

    @property
    def column_metrics_period(self) -> tuple[str, timedelta] | None:
        """The timestamp column and period column metrics are computed per (the volume column and
        period, else the freshness column hourly); None: the table has none, metrics are sampled."""
        if self.volume is not None and self.volume.column is not None:
            return self.volume.column, self.volume.effective_period or timedelta(hours=1)
        if self.freshness is not None:
            return self.freshness.column, timedelta(hours=1)
        return None


MAX_SEGMENT_LIMIT = 600
# Every run records each series' finding in its run record, one DynamoDB item (400 KB): with
# segment_limit segments on their own (up to twice as many while known segments keep theirs), at
# about 185 bytes a finding compressed (tests/unit/test_segments.py), 600 series per table stay far
# below it even when the known segments double them.
MAX_SEGMENT_SERIES = 600


def _one_or_two_columns(v: Any) -> Any:
    return [v] if isinstance(v, str) else v


def _column_allowed(schema: dict[str, Any]) -> None:
    """The JSON Schema of `segment_by`, which also takes one column name as a string."""
    schema.setdefault("anyOf", []).append({"type": "string"})


class TableConfig(Strict):
    name: str = Field(min_length=1, max_length=128)
    schema_: str | None = Field(default=None, alias="schema", description="database schema (namespace)")
    checks: TableChecks = Field(
        default_factory=lambda: TableChecks.model_validate({"volume": {}, "schema": {}})
    )
    segment_by: Annotated[
        tuple[Annotated[str, Field(min_length=1, max_length=128)], ...] | None,
        BeforeValidator(_one_or_two_columns),
    ] = Field(
        default=None,
        description="a column (or a list of two, combined) whose values split volume, freshness and "
        "column metrics into one series per value (segment), each with its own baseline and alerts",
        json_schema_extra=_column_allowed,
    )
    segment_limit: int = Field(
        default=100,
        ge=1,
        le=MAX_SEGMENT_LIMIT,
        description="segments judged on their own per run: the most rows in the volume period; the "
        "rest are one 'other' segment",
    )

    @property
    def db_schema(self) -> str | None:
        return self.schema_

    @model_validator(mode="after")
    def _segments_fit(self) -> TableConfig:
        if self.segment_by is None:
            return self
        columns = self.segment_by
        if not 1 <= len(columns) <= 2:
            raise ValueError(
                f"segment_by takes one column or a list of two, not {len(columns)}; e.g. segment_by: country"
            )
        if len(set(columns)) != len(columns):
            raise ValueError(f"segment_by names {columns[0]!r} twice; give two different columns")
        volume = self.checks.volume
        if volume is None or volume.column is None:
            raise ValueError(
                "segment_by ranks segments by their rows per volume period: add checks.volume with a "
                "timestamp column, e.g. volume: {column: created_at}"
            )
        per_segment = 1 + (self.checks.freshness is not None)
        per_segment += sum(3 if m == "quantiles" else 1 for c in self.checks.columns for m in c.metrics)
        if self.segment_limit * per_segment > MAX_SEGMENT_SERIES:
            raise ValueError(
                f"segment_limit {self.segment_limit} x {per_segment} series a segment (volume, freshness, "
                f"column metrics) is {self.segment_limit * per_segment:,} series, above the "
                f"{MAX_SEGMENT_SERIES} a segmented table may have (each run records every one in an item "
                f"of at most 400 KB): lower segment_limit to {MAX_SEGMENT_SERIES // per_segment} or "
                "judge fewer column metrics"
            )
        return self


class SqlCheck(Strict):
    """A custom check: one read-only query returning `status` (ALERT|OK), optional `actual`,
    `threshold`; other columns are kept as context."""

    name: Name
    sql: str = Field(min_length=1)
    table: str | None = Field(
        default=None, description="the table the check is about (for routing and display)"
    )
    description: str = ""
    severity: Severity = Severity.WARNING
    max_rows: int = Field(
        default=1000,
        ge=1,
        le=100_000,
        description="rows read at most (the server is asked for no more); a longer result is truncated",
    )


class SqlMetric(Strict):
    """A learned custom metric: one read-only query returning a numeric `value` column, optionally
    `segment` (one series per value) and `ts` (the time each value describes: the first run keeps
    the rows before the latest as history, later runs judge every row newer than the last one
    seen). Judged by the same detectors as volume."""

    name: Name
    sql: str = Field(min_length=1)
    table: str | None = Field(
        default=None, description="the table the metric is about (for routing and display)"
    )
    description: str = ""
    period: Duration | None = Field(
        default=None, description="spacing of the `ts` values (default: the source's schedule period)"
    )
    severity: Severity = Severity.WARNING
    detection: DetectionOverrides = Field(default_factory=DetectionOverrides)
    max_rows: int = Field(
        default=10_000,  # a first run's 8 weeks of hourly values (per segment) fit
        ge=1,
        le=100_000,
        description="rows read at most (the server is asked for no more); a longer result is an error: "
        "aggregate it or bound its ts range",
    )


# --------------------------------------------------------------------------- sources


_FORBIDDEN_SECRET_KEYS = {
    "password", "passwd", "pwd", "pass", "secret", "token", "api_key", "apikey", "access_key",
    "secret_key", "private_key", "sslpassword", "url_with_password", "credentials",
}  # fmt: skip
# A URL with user:password@, or a bare "user:password@host" as some tools accept for a host.
_INLINE_CREDENTIALS = re.compile(r"(?:^|//)[^/@\s:]+:[^/@\s]*@")
_SECRET_QUERY = re.compile(
    r"[?&](?:password|passwd|pwd|secret|token|access_token|api_key|apikey|key|sig|signature)=[^&\s]+",
    re.IGNORECASE,
)


def credential_in_text(value: str) -> str | None:
    """What credential `value` carries in plain sight (user:password@, a secret query parameter)."""
    if _INLINE_CREDENTIALS.search(value):
        return "a user and password (user:password@)"
    if _SECRET_QUERY.search(value):
        return "a secret query parameter"
    return None


def _reject_inline_secrets(data: Any, where: str, path: str = "") -> Any:
    """Refuse credentials written anywhere in a mapping (nested ones such as `options` too)."""
    if not isinstance(data, dict):
        return data
    for key, value in data.items():
        name = f"{path}{key}"
        if str(key).lower() in _FORBIDDEN_SECRET_KEYS:
            raise ValueError(
                f"'{name}' must not be written in the config file: keep credentials out of it. "
                f"Use {where}_env: NAME (an environment variable, locally) or {where}_secret: "
                "NAME_OR_ARN (a Secrets Manager secret, in AWS)"
            )
        if isinstance(value, str) and (found := credential_in_text(value)):
            raise ValueError(
                f"'{name}' holds {found}; remove the credentials from the file and reference them with "
                f"{where}_env or {where}_secret instead"
            )
        if isinstance(value, dict):
            _reject_inline_secrets(value, where, f"{name}.")
    return data


class Connection(Strict):
    host: str | None = None
    port: int | None = Field(default=None, ge=1, le=65535)
    database: str | None = None
    user: str | None = None
    password_env: str | None = Field(default=None, description="environment variable holding the password")
    password_secret: str | None = Field(
        default=None,
        description="Secrets Manager secret name or ARN: a plain password or JSON with "
        "password (and optionally username, host, port, dbname)",
    )
    path: str | None = Field(default=None, description="SQLite or DuckDB database file")
    connect_timeout: Duration = timedelta(seconds=10)
    max_connections: int = Field(
        default=2,
        ge=1,
        le=100,
        description="connections held at most to this database server, shared by every source on it",
    )
    options: dict[str, str] = Field(
        default_factory=dict, description="extra driver options, e.g. ssl: 'true'"
    )

    @model_validator(mode="before")
    @classmethod
    def _no_inline_secrets(cls, data: Any) -> Any:
        return _reject_inline_secrets(data, "password")


SourceKind = Literal["postgres", "mysql", "sqlite", "duckdb", "clickhouse"]
FILE_KINDS = ("sqlite", "duckdb")  # sources that are a database file: connection.path
_SQL_DIALECTS: dict[str, Literal["postgresql", "mysql", "sqlite", "duckdb", "clickhouse"]] = {
    "postgres": "postgresql",
    "mysql": "mysql",
    "sqlite": "sqlite",
    "duckdb": "duckdb",
    "clickhouse": "clickhouse",
}


class Source(Strict):
    name: Name
    kind: SourceKind
    connection: Connection
    schedule: Schedule | None = None  # default: config.defaults.schedule
    tags: list[str] = Field(default_factory=list)
    owner: str | None = None
    description: str = ""
    statement_timeout: StatementTimeout | None = None  # default: config.defaults.statement_timeout
    max_concurrency: int = Field(
        default=2, ge=1, le=100, description="concurrent checks against this database"
    )
    dashboard: bool = Field(default=False, description="add per-source panels to the CloudWatch dashboard")
    skip_unchanged_tables: bool = Field(
        default=False,
        description=(
            "PostgreSQL: keep a table's last full read (freshness, exact count) while its write counters "
            "stand still, instead of scanning it again; a write committed within about a minute of a check "
            "may be seen one run late (the server publishes counters shortly after a commit)"
        ),
    )
    detection: DetectionOverrides = Field(default_factory=DetectionOverrides)
    tables: list[TableConfig] = Field(default_factory=list)
    sql_checks: list[SqlCheck] = Field(default_factory=list)
    sql_metrics: list[SqlMetric] = Field(default_factory=list)

    @model_validator(mode="after")
    def _connection_fits_kind(self) -> Source:
        c = self.connection
        if self.kind in FILE_KINDS:
            if not c.path:
                raise ValueError(f"a {self.kind} source needs connection.path (the database file)")
            if c.host or c.password_env or c.password_secret:
                raise ValueError(
                    f"a {self.kind} source takes only connection.path; remove host and password references"
                )
        else:
            missing = [k for k in ("host", "database") if not getattr(c, k)]
            if not c.user and not c.password_secret:  # only a JSON secret can supply the user name
                missing.append("user")
            if missing:
                raise ValueError(f"a {self.kind} source needs connection.{' and connection.'.join(missing)}")
            if c.path:
                raise ValueError(
                    f"connection.path is for {' and '.join(FILE_KINDS)} sources; a {self.kind} source uses "
                    "host/port/database"
                )
        seen: set[tuple[str | None, str]] = set()
        for t in self.tables:
            ident = (t.db_schema, t.name)
            if ident in seen:
                raise ValueError(f"table {t.name!r} is listed twice in source {self.name!r}")
            seen.add(ident)
        segmented = [t.name for t in self.tables if t.segment_by is not None]
        if self.kind == "clickhouse" and segmented:
            # Segments are ranked with a window function in one statement; the ClickHouse release this
            # project is tested against (18.16) has none, so say so at load rather than fail each run.
            raise ValueError(
                f"segment_by is not supported on clickhouse sources yet (table(s) {', '.join(segmented)}): "
                "remove segment_by, or monitor each segment with a learned sql_metrics query returning "
                "`segment` and `value`"
            )
        names = [c.name for c in self.sql_checks] + [m.name for m in self.sql_metrics]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"sql check/metric name(s) {', '.join(dup)} used twice in source {self.name!r}")
        self._sql_is_one_read_only_query()
        return self

    def _sql_is_one_read_only_query(self) -> None:
        """The check a run makes before sending custom SQL, made at validate time already."""
        from driftguard.collect.readonly_sql import read_only_statement
        from driftguard.errors import CheckDefinitionError

        dialect = _SQL_DIALECTS[self.kind]
        queries = [(f"sql_checks[{i}] ({c.name})", c.sql) for i, c in enumerate(self.sql_checks)]
        queries += [(f"sql_metrics[{i}] ({m.name})", m.sql) for i, m in enumerate(self.sql_metrics)]
        for where, sql in queries:
            try:
                read_only_statement(sql, dialect, where=where)
            except CheckDefinitionError as e:
                raise ValueError(str(e)) from None

    @property
    def default_port(self) -> int | None:
        return {"postgres": 5432, "mysql": 3306, "clickhouse": 9000}.get(
            self.kind
        )  # ClickHouse: native protocol


# --------------------------------------------------------------------------- channels and routes


class _Channel(Strict):
    name: Name
    send_resolved: bool = True
    resolved_when_silenced: bool = Field(
        default=False,
        description="also tell this channel that an incident it heard of ended while the alert was silenced",
    )
    max_attempts: int = Field(default=5, ge=1, le=20, description="delivery attempts before parking")


class ConsoleChannel(_Channel):
    type: Literal["console"]


class FileChannel(_Channel):
    type: Literal["file"]
    path: str


class SnsSubscription(Strict):
    protocol: Literal["email", "sqs", "https", "lambda"]
    endpoint: str
    filter_severity: list[Severity] | None = None

    @field_validator("endpoint")
    @classmethod
    def _no_credentials(cls, v: str) -> str:
        if found := credential_in_text(v):
            raise ValueError(
                f"the endpoint holds {found}, which the CDK stack would publish in the subscription; "
                "use an endpoint that authenticates another way (e.g. a signed webhook channel with "
                "secret_env/secret_secret)"
            )
        return v


class SnsChannel(_Channel):
    type: Literal["sns"]
    topic_arn: str | None = Field(default=None, description="omit to use the stack's alerts topic")
    subscriptions: list[SnsSubscription] = Field(default_factory=list, description="created by the CDK stack")


class SesChannel(_Channel):
    type: Literal["ses"]
    sender: str = Field(alias="from")
    to: list[str] = Field(min_length=1)
    configuration_set: str | None = None

    @field_validator("to")
    @classmethod
    def _emails(cls, v: list[str]) -> list[str]:
        bad = [a for a in v if not re.match(r"^[^@\s]+@[^@\s]+\.[^@\s]+$", a)]
        if bad:
            raise ValueError(f"not an email address: {', '.join(bad)}")
        return v


class SlackChannel(_Channel):
    type: Literal["slack"]
    webhook_url_env: str | None = None
    webhook_url_secret: str | None = None
    token_env: str | None = Field(default=None, description="environment variable holding a bot token")
    token_secret: str | None = Field(default=None, description="Secrets Manager secret holding a bot token")
    channel: str | None = Field(default=None, description="Slack channel ID the bot posts to (with a token)")
    update_in_place: bool = Field(
        default=False, description="edit the message that announced alerts when they resolve (bot token)"
    )

    @model_validator(mode="before")
    @classmethod
    def _no_inline_url(cls, data: Any) -> Any:
        if isinstance(data, dict) and ("webhook_url" in data or "url" in data):
            raise ValueError(
                "a Slack webhook URL is a credential: do not write it in the file; use "
                "webhook_url_env: NAME or webhook_url_secret: NAME_OR_ARN"
            )
        return data

    @model_validator(mode="after")
    def _one_ref(self) -> SlackChannel:
        webhook = bool(self.webhook_url_env or self.webhook_url_secret)
        bot = bool(self.token_env or self.token_secret)
        if webhook == bot:
            raise ValueError(
                "a slack channel needs either webhook_url_env/webhook_url_secret (an incoming webhook) or "
                "token_env/token_secret with channel (a bot token), not both"
            )
        if bot and not self.channel:
            raise ValueError("a slack channel with a bot token needs channel: the Slack channel ID (C...)")
        if self.update_in_place and not bot:
            raise ValueError(
                "update_in_place needs a bot token (token_env or token_secret, and channel): an incoming "
                "webhook cannot edit the messages it posted"
            )
        return self


class WebhookChannel(_Channel):
    type: Literal["webhook"]
    url: str = Field(pattern=r"^https?://")
    secret_env: str | None = Field(default=None, description="Standard Webhooks signing secret (whsec_...)")
    secret_secret: str | None = None
    allow_private: bool = Field(default=False, description="allow private, loopback and link-local targets")
    timeout: Duration = timedelta(seconds=10)

    @model_validator(mode="before")
    @classmethod
    def _no_inline(cls, data: Any) -> Any:
        if isinstance(data, dict) and "secret" in data:
            raise ValueError(
                "the signing secret must not be written in the file; use secret_env or secret_secret"
            )
        if isinstance(data, dict) and isinstance(data.get("url"), str) and credential_in_text(data["url"]):
            raise ValueError(
                "the webhook url holds credentials; remove them and sign with secret_env/secret_secret"
            )
        return data


ChannelConfig = ConsoleChannel | FileChannel | SnsChannel | SesChannel | SlackChannel | WebhookChannel
Channel = Annotated[ChannelConfig, Field(discriminator="type")]


class RouteMatch(Strict):
    """All given fields must match (exact). `tags`: the source has any of these tags."""

    source: str | None = None
    table: str | None = None
    check: CheckKind | None = None
    severity: Severity | None = None
    owner: str | None = None
    tags: list[str] | None = None
    segment: str | None = Field(default=None, description="a segment of a segmented table, e.g. country=DE")


class RouteMatchRegex(Strict):
    source: str | None = None
    table: str | None = None
    owner: str | None = None
    tag: str | None = None
    segment: str | None = None

    @model_validator(mode="after")
    def _compiles(self) -> RouteMatchRegex:
        for k, v in self.model_dump(exclude_none=True).items():
            try:
                re.compile(v)
            except re.error as e:
                raise ValueError(f"match_re.{k}: {v!r} is not a valid regular expression ({e})") from None
        return self


# The labels an alert carries (driftguard.alerts.labels): what silences match and routes group on.
LABEL_NAMES: tuple[str, ...] = (
    "source",
    "table",
    "check",
    "metric",
    "column",
    "severity",
    "owner",
    "tag",
    "segment",
)
ALL_LABELS = "..."  # group_by: [...] groups by every label (Alertmanager's spelling)


def _group_by(value: list[str]) -> list[str]:
    unknown = [v for v in value if v not in LABEL_NAMES and v != ALL_LABELS]
    if unknown:
        raise ValueError(
            f"{', '.join(repr(u) for u in unknown)} is not a label to group by; labels are "
            f"{', '.join(LABEL_NAMES)}, or '...' alone for all of them"
        )
    if ALL_LABELS in value and len(value) > 1:
        raise ValueError("'...' already groups by every label: write group_by: ['...'] alone")
    repeated = sorted({v for v in value if value.count(v) > 1})
    if repeated:
        raise ValueError(f"label(s) {', '.join(repeated)} named more than once in group_by")
    return value


def _wait(value: Any) -> timedelta:
    """A duration that may also be zero ('0s', 0): a new group's first message then goes at once."""
    if isinstance(value, int | float) and not isinstance(value, bool) and value == 0:
        return timedelta(0)
    if isinstance(value, str) and (m := _DURATION_RE.match(value)) and float(m.group(1)) == 0:
        return timedelta(0)
    iso = _ISO_DURATION_RE.match(value) if isinstance(value, str) else None
    if iso and any(g is not None for g in iso.groups()) and not any(float(g or 0) for g in iso.groups()):
        return timedelta(0)  # 'PT0S': how a compiled JSON config writes it
    return parse_duration(value)


# What `_wait` takes: any duration, and zero.
_WAIT_SCHEMA: dict[str, Any] = {
    "anyOf": [*_DURATION_SCHEMA["anyOf"], {"type": "number", "minimum": 0, "maximum": 0}],
    "description": "a duration ('0s', '30s', '2m', a number of seconds, or ISO 8601), zero included",
}


GroupWait = Annotated[timedelta, BeforeValidator(_wait), WithJsonSchema(_WAIT_SCHEMA)]

# Alertmanager's defaults, for a route that groups but leaves these out.
DEFAULT_GROUP_WAIT = timedelta(seconds=30)
DEFAULT_GROUP_INTERVAL = timedelta(minutes=5)


class Route(Strict):
    """An Alertmanager-style routing tree node."""

    receivers: list[str] = Field(default_factory=list, description="channel names")
    match: RouteMatch = Field(default_factory=RouteMatch)
    match_re: RouteMatchRegex = Field(default_factory=RouteMatchRegex)
    continue_: bool = Field(default=False, alias="continue")
    repeat_interval: Duration | None = None
    end_silences_on_resolve: bool | None = Field(
        default=None,
        description="a silence that muted an alert of this route ends when the alert resolves "
        "(inherited; default false)",
    )
    inhibit_when_source_down: bool | None = Field(
        default=None,
        description="while the alert's source is in ERROR (unreachable), its table alerts are not "
        "notified, as if silenced (inherited; default false)",
    )
    group_by: Annotated[list[str], AfterValidator(_group_by)] | None = Field(
        default=None,
        description="labels whose values split this route's notices into groups, one message per group "
        "and channel (inherited; e.g. [table] or [owner, check]; [] = one group; ['...'] = every label). "
        "Without any of group_by, group_wait, group_interval: one message per source and run, sent at once",
    )
    group_wait: GroupWait | None = Field(
        default=None,
        description="how long a new group waits for more notices before its first message "
        "(inherited; default 30s when the route groups; may be 0s)",
    )
    group_interval: Duration | None = Field(
        default=None,
        description="how long after a group's message the next one about notices added to it may go "
        "(inherited; default 5m when the route groups)",
    )
    routes: list[Route] = Field(default_factory=list)


class Alerting(Strict):
    pending_runs: int = Field(default=1, ge=1, description="consecutive anomalous runs before FIRING")
    repeat_interval: Duration = timedelta(hours=4)
    error_after_failures: int = Field(
        default=2, ge=1, description="consecutive failed runs before an ERROR alert"
    )


class Defaults(Strict):
    schedule: Schedule = Field(default_factory=lambda: Schedule(rate=timedelta(minutes=15)))
    statement_timeout: StatementTimeout = timedelta(seconds=30)
    detection: DetectionSettings = Field(default_factory=DetectionSettings)


class LocalState(Strict):
    path: str = ".driftguard/state.db"
    retention: Duration = Field(
        default=timedelta(days=400),
        description="history kept in the local state (runs, snapshots, points, delivered notifications); "
        "the same default as aws.retention_days",
    )


class VpcSettings(Strict):
    subnet_ids: list[str] = Field(min_length=1)
    security_group_ids: list[str] = Field(min_length=1)


class AwsSettings(Strict):
    """Settings the CDK stack and the Lambda runtime read."""

    stack_name: str | None = Field(
        default=None, description="the CloudFormation stack: one per deployment, required to deploy"
    )
    retention_days: int = Field(default=400, ge=1, description="TTL of snapshots and history")
    log_retention_days: int = Field(default=90, ge=1)
    alarm_email: str | None = None
    vpc: VpcSettings | None = None
    check_memory_mb: int = Field(
        default=512,
        ge=128,
        le=10240,
        description="the check function's memory; unset, it is sized from the config (at least 512: "
        "infra/constructs/memory.py)",
    )
    notify_memory_mb: int | None = Field(
        default=None,
        ge=128,
        le=10240,
        description="the notify function's memory; unset, it is sized from the config (at least 256)",
    )
    map_concurrency: int = Field(
        default=40, ge=1, le=1000, description="database servers checked at once by one firing, at most"
    )
    check_concurrency: int = Field(
        default=10,
        ge=1,
        le=10000,
        description="checks the schedules may run at once, all together, when none is reserved: a new "
        "account's whole Lambda concurrency can be 10 (docs/scaling.md)",
    )
    check_reserved_concurrency: int | None = Field(
        default=None,
        ge=1,
        le=10000,
        description="reserve this much Lambda concurrency for checks (the account must keep 100 "
        "unreserved); replaces check_concurrency as the schedules' budget. Default: none reserved",
    )
    ses_identity: str | None = Field(default=None, description="domain or address to verify for SES")
    ses_create_identity: bool = Field(
        default=True,
        description="false when ses_identity is already verified in the account (by another stack or "
        "by hand): the stack then only grants sending from it",
    )


class Config(Strict):
    version: Literal[1] = 1
    defaults: Defaults = Field(default_factory=Defaults)
    alerting: Alerting = Field(default_factory=Alerting)
    sources: list[Source] = Field(default_factory=list)
    channels: list[Channel] = Field(
        default_factory=lambda: list[ChannelConfig]([ConsoleChannel(name="console", type="console")])
    )
    route: Route = Field(default_factory=lambda: Route(receivers=["console"]))
    state: LocalState = Field(default_factory=LocalState)
    aws: AwsSettings = Field(default_factory=AwsSettings)

    @model_validator(mode="after")
    def _cross_checks(self) -> Config:
        dup = sorted(n for n, k in Counter(s.name for s in self.sources).items() if k > 1)
        if dup:
            raise ValueError(
                f"source name(s) {', '.join(repr(d) for d in dup)} used more than once; names must be unique"
            )
        channel_names = [c.name for c in self.channels]
        dupc = sorted({n for n in channel_names if channel_names.count(n) > 1})
        if dupc:
            raise ValueError(f"channel name(s) {', '.join(dupc)} used more than once")
        known = set(channel_names)

        def walk(route: Route, path: str) -> None:
            for r in route.receivers:
                if r not in known:
                    raise ValueError(
                        f"{path}.receivers names channel {r!r}, which is not defined; "
                        f"defined channels: {', '.join(sorted(known)) or '(none)'}"
                    )
            for i, child in enumerate(route.routes):
                walk(child, f"{path}.routes[{i}]")

        walk(self.route, "route")
        self._servers_agree()
        self._retention_covers_training()
        return self

    def _retention_covers_training(self) -> None:
        """Pruned history must not take away what a baseline learns from."""
        windows = [self.defaults.detection.training_window]
        windows += [s.detection.training_window for s in self.sources if s.detection.training_window]
        longest = max(windows)
        if self.state.retention < longest:
            raise ValueError(
                f"state.retention ({format_duration(self.state.retention)}) is shorter than the training "
                f"window baselines learn from ({format_duration(longest)}); keep history at least that long"
            )

    def _servers_agree(self) -> None:
        """Sources on one database server share one connection pool, opened with one set of
        connection settings: they must not ask for different ones."""
        by_server: dict[tuple[object, ...], list[Source]] = {}
        for s in self.sources:
            c = s.connection
            server = (s.kind, (c.host or "").lower(), c.port or s.default_port, c.database, c.user, c.path)
            by_server.setdefault(server, []).append(s)
        for group in by_server.values():
            first = group[0]
            for other in group[1:]:
                for key in ("max_connections", "connect_timeout", "options"):
                    mine, theirs = getattr(first.connection, key), getattr(other.connection, key)
                    if mine != theirs:
                        raise ValueError(
                            f"sources {first.name!r} and {other.name!r} use the same database server but "
                            f"set connection.{key} differently ({mine!r} and {theirs!r}); they share one "
                            "connection pool: give them the same value"
                        )

    def source(self, name: str) -> Source:
        for s in self.sources:
            if s.name == name:
                return s
        known = ", ".join(s.name for s in self.sources) or "(none)"
        raise ConfigError(f"no source named {name!r}; configured sources: {known}")

    def channel(self, name: str) -> ChannelConfig:
        for c in self.channels:
            if c.name == name:
                return c
        raise ConfigError(f"no channel named {name!r}")

    def schedule_of(self, source: Source) -> Schedule:
        return source.schedule or self.defaults.schedule

    def statement_timeout_of(self, source: Source) -> timedelta:
        return source.statement_timeout or self.defaults.statement_timeout

    def detection_for(self, source: Source, overrides: DetectionOverrides | None = None) -> DetectionSettings:
        settings = source.detection.apply(self.defaults.detection)
        return overrides.apply(settings) if overrides else settings


# --------------------------------------------------------------------------- loading with line numbers


# PyYAML is imported only to read YAML: a Lambda loads the compiled JSON config and never needs it.


@cache
def _yaml_loaders() -> tuple[type[yaml.SafeLoader], type[yaml.SafeLoader]]:
    """(the base safe loader, libyaml's when present; the strict loader built on it)."""
    import yaml

    base: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

    class StrictLoader(base):  # type: ignore[valid-type,misc]
        """Safe loading that refuses a key written twice in one mapping (PyYAML keeps the last one
        silently, which would hide half of a user's edit)."""

        def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
            seen: set[str] = set()
            for key_node, _ in node.value:
                if isinstance(key_node, yaml.ScalarNode):  # compare the key as written: no construction
                    if key_node.value in seen:
                        raise ConfigError(
                            f"{key_node.start_mark.line + 1}: key {key_node.value!r} appears twice in "
                            "one mapping; keep one"
                        )
                    seen.add(key_node.value)
            return super().construct_mapping(node, deep=deep)

    return base, StrictLoader


# A config for 10,000 sources is a few hundred thousand YAML nodes; aliases that would expand to
# more than this are a "billion laughs" document, refused before anything is built from it.
MAX_YAML_NODES = 2_000_000


def _expanded_size(root: yaml.Node) -> int:
    """How many nodes the document has once every alias is expanded (as validation would walk
    it), counted over the distinct nodes only, so a bomb is measured without being expanded."""
    import yaml

    sizes: dict[int, int] = {}
    entered: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        if id(node) in sizes:
            continue
        if not children_done:
            if id(node) in entered:  # a node inside itself (a recursive alias): endless when walked
                return MAX_YAML_NODES + 1
            entered.add(id(node))
        if isinstance(node, yaml.MappingNode):
            children = [n for pair in node.value for n in pair]
        elif isinstance(node, yaml.SequenceNode):
            children = list(node.value)
        else:
            children = []
        if children_done:
            sizes[id(node)] = min(1 + sum(sizes[id(c)] for c in children), MAX_YAML_NODES + 1)
        else:
            stack.append((node, True))
            stack.extend((c, False) for c in children if id(c) not in sizes)
    return sizes[id(root)]


def _load_yaml(text: str) -> Any:
    loader = _yaml_loaders()[1](text)  # a SafeLoader subclass: no arbitrary objects
    try:
        root = loader.get_single_node()
        if root is None:
            return None
        if _expanded_size(root) > MAX_YAML_NODES:
            raise ConfigError(
                f"{root.start_mark.line + 1}: the document expands to more than {MAX_YAML_NODES:,} nodes "
                "through its aliases (&anchor / *alias); write the repeated parts out or use fewer aliases"
            )
        return loader.construct_document(root)
    finally:
        loader.dispose()


def _line_index(text: str) -> dict[tuple[Any, ...], int]:
    """The line of every mapping key and sequence item, by path. Only computed to report errors:
    walking the node tree costs far more than loading."""
    import yaml

    root = yaml.compose(text, Loader=_yaml_loaders()[0])
    lines: dict[tuple[Any, ...], int] = {}
    stack: list[tuple[yaml.Node, tuple[Any, ...]]] = [(root, ())] if root is not None else []
    while stack:
        node, path = stack.pop()
        lines.setdefault(path, node.start_mark.line + 1)
        if isinstance(node, yaml.MappingNode):
            for key_node, value_node in node.value:
                key = key_node.value if isinstance(key_node, yaml.ScalarNode) else None
                lines[(*path, key)] = key_node.start_mark.line + 1
                stack.append((value_node, (*path, key)))
        elif isinstance(node, yaml.SequenceNode):
            stack.extend((item, (*path, i)) for i, item in enumerate(node.value))
    return lines


def _loc_to_path(loc: tuple[Any, ...]) -> tuple[Any, ...]:
    """Drop pydantic's union/discriminator tags so a loc maps onto the YAML path."""
    known_tags = {"console", "file", "sns", "ses", "slack", "webhook", "function-after", "function-before"}
    return tuple(p for p in loc if not (isinstance(p, str) and (p in known_tags or "[" in p)))


def _format_loc(path: tuple[Any, ...]) -> str:
    out = ""
    for p in path:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out or "(top level)"


def _line_for(path: tuple[Any, ...], lines: dict[tuple[Any, ...], int]) -> int | None:
    while path:
        if path in lines:
            return lines[path]
        path = path[:-1]
    return lines.get(())


_UNKNOWN_KEY_HINT = "remove it or check its spelling (`driftguard schema` lists every key)"


def _describe(err: dict[str, Any]) -> str:
    msg = str(err.get("msg", "invalid"))
    msg = msg.removeprefix("Value error, ")
    etype = err.get("type", "")
    if etype == "extra_forbidden":
        return f"unknown key; {_UNKNOWN_KEY_HINT}"
    if etype == "missing":
        return "required key is missing; add it"
    if "pattern" in etype and "name" in str(err.get("loc", ())):
        return f"{msg}: {_NAME_HINT}"
    inp = err.get("input")
    if (
        etype not in ("value_error", "assertion_error")
        and not isinstance(inp, dict | list)
        and inp is not None
    ):
        return f"{msg} (got {inp!r})"
    return msg


def parse_config(text: str, filename: str = "<config>") -> Config:
    """Parse and validate config text. Raises ConfigError listing every problem with file:line."""
    import yaml

    try:
        data = _load_yaml(text)
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        where = f"{filename}:{mark.line + 1}:{mark.column + 1}" if mark else filename
        context = ""
        if e.context and e.context_mark and e.context_mark is not mark:
            context = f" ({e.context} that starts at line {e.context_mark.line + 1})"
        raise ConfigError(
            f"{where}: malformed YAML: {e.problem or e}{context}. Check indentation and quoting."
        ) from None
    except yaml.YAMLError as e:
        raise ConfigError(f"{filename}: malformed YAML: {e}") from None
    except ConfigError as e:
        raise ConfigError(f"{filename}:{e}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(
            f"{filename}:1: the config must be a mapping with keys such as 'sources' and 'channels'"
        )
    try:
        return Config.model_validate(data)
    except ValidationError as e:
        lines = _line_index(text)
        problems = []
        for err in e.errors():
            path = _loc_to_path(tuple(err["loc"]))
            line = _line_for(path, lines)
            where = f"{filename}:{line}" if line else filename
            problems.append(f"{where}: {_format_loc(path)}: {_describe(dict(err))}")
        problems = list(dict.fromkeys(problems))
        head = f"{filename}: {len(problems)} problem(s) in the configuration:"
        raise ConfigError(head + "\n  " + "\n  ".join(problems), problems=problems) from None


def load_config(path: str | Path) -> Config:
    """Load a config file. Relative paths in it (SQLite databases, file channels, the state
    file) are taken relative to the config file's folder, wherever the command runs from.

    A `.json` file is a compiled config (`compile_config`): already validated once, it loads an
    order of magnitude faster than YAML, which matters for a Lambda cold start with 10,000 sources."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{p}: config file not found; create one with `driftguard init`") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"{p}: cannot read the config file: {e}") from None
    if p.suffix == ".json":
        try:
            config = Config.model_validate_json(text)
        except ValidationError as e:
            problems = [
                f"{p}: {_format_loc(_loc_to_path(tuple(err['loc'])))}: {_describe(dict(err))}"
                for err in e.errors()
            ]
            raise ConfigError(
                f"{p}: invalid compiled config:\n  " + "\n  ".join(problems), problems=problems
            ) from None
    else:
        config = parse_config(text, str(p))
    return resolve_paths(config, p.resolve().parent)


def compile_config(config: Config) -> str:
    """The config as JSON that `load_config` reads back to an equal Config (for deployment)."""
    return config.model_dump_json(by_alias=True)


def resolve_paths(config: Config, base: Path) -> Config:
    def absolute(value: str) -> str:
        return value if Path(value).is_absolute() else str(base / value)

    sources = []
    for s in config.sources:
        if s.connection.path:
            connection = s.connection.model_copy(update={"path": absolute(s.connection.path)})
            s = s.model_copy(update={"connection": connection})
        sources.append(s)
    channels = [
        c.model_copy(update={"path": absolute(c.path)}) if isinstance(c, FileChannel) else c
        for c in config.channels
    ]
    state = config.state.model_copy(update={"path": absolute(config.state.path)})
    return config.model_copy(update={"sources": sources, "channels": channels, "state": state})


def json_schema() -> dict[str, Any]:
    """The JSON Schema of the config file, for editor completion."""
    schema = Config.model_json_schema(by_alias=True, mode="validation")
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "DriftGuard configuration"
    return schema


# --------------------------------------------------------------------------- per-source slices


def compile_source(source: Source) -> str:
    """One source as JSON: its slice of the compiled config. The check function ships the config
    without sources (`compile_config`) plus one slice per source, and reads only the slice of the
    source an invocation checks (driftguard.lambda_runtime.ConfigSlices)."""
    return source.model_dump_json(by_alias=True)


def load_source_slice(shared: Config, path: str | Path, base: Path) -> Config:
    """`shared` (a compiled config without its sources, as `load_config` read it) with the one source
    compiled at `path` (`compile_source`), validated as `load_config` validates a compiled config:
    the source's own rules, then the config's cross-checks over it (a ConfigError naming the file
    and the key otherwise). Relative paths are taken relative to `base`, the config file's folder."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"{p}: cannot read the source's compiled config: {e}") from None
    try:
        source = Source.model_validate_json(text)
        fields = {name: getattr(shared, name) for name in Config.model_fields}
        config = Config.model_validate({**fields, "sources": [source]})
    except ValidationError as e:
        problems = [
            f"{p}: {_format_loc(_loc_to_path(tuple(err['loc'])))}: {_describe(dict(err))}"
            for err in e.errors()
        ]
        raise ConfigError(
            f"{p}: invalid compiled config:\n  " + "\n  ".join(problems), problems=problems
        ) from None
    return resolve_paths(config, base)
