"""The one SELECT that collects freshness and volume of one table, and how to read its row.

Identifiers reach SQL only through SQLAlchemy Core (sa.table/sa.column with schema=), so the
dialect quotes them; configured names are first matched against the catalog and the catalog's
spelling is what gets quoted.

Plan: when the table needs an exact count of all its rows, a full scan is needed anyway, so
max(freshness) is folded into that one scan. Otherwise each metric is its own scalar subquery of
one SELECT, so max() and the bounded period count can each use an index and a large table is not
scanned. Either way it is one round trip. Column metrics are statements of their own over a
bounded slice of the table (see column_metrics).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.sql.elements import ColumnElement

from driftguard.collect.dialects import DialectRules
from driftguard.collect.periods import latest_complete_period, period_seconds
from driftguard.collect.types import NUMBER_FAMILIES, TIME_FAMILIES
from driftguard.config import TableConfig
from driftguard.errors import CheckDefinitionError
from driftguard.model import ColumnInfo, LastRead, PeriodCount, utc

# SQLite keeps times as ISO-8601 text or epoch numbers under any declared type.
SQLITE_TIME_FAMILIES = TIME_FAMILIES | NUMBER_FAMILIES | {"text", "other"}


def to_utc_datetime(value: Any) -> datetime | None:
    """A max(time column) value as an aware UTC datetime: datetimes (naive ones are UTC), dates
    (midnight UTC) and epoch seconds (SQLite's comparable form)."""
    if value is None:
        return None
    if isinstance(value, datetime):
        return utc(value)
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=UTC)
    if isinstance(value, int | float | Decimal):
        return datetime.fromtimestamp(float(value), tz=UTC)
    raise TypeError(f"cannot read {value!r} as a time")


@dataclass
class TableTarget:
    """A configured table resolved against the catalog."""

    config: TableConfig
    schema: str | None  # as configured (None: the connection's default schema)
    columns: list[ColumnInfo]
    row_estimate: float | None
    where: str  # "source s, table t" for messages
    change_marker: int | None = None  # collect.changes

    def sa_table(self) -> sa.TableClause:
        return sa.table(self.config.name, schema=self.schema)

    def column(self, configured: str, *, purpose: str, case_sensitive: bool) -> ColumnInfo:
        """The catalog column a configured name refers to, or CheckDefinitionError naming `purpose`."""
        exact = next((c for c in self.columns if c.name == configured), None)
        if exact is not None or case_sensitive:
            found = exact
        else:
            found = next((c for c in self.columns if c.name.lower() == configured.lower()), None)
        if found is None:
            names = ", ".join(c.name for c in self.columns) or "(none)"
            raise CheckDefinitionError(
                f"{self.where}: column {configured} does not exist (its columns: {names}); fix {purpose}"
            )
        return found

    def time_column(self, configured: str, *, purpose: str, rules: DialectRules) -> ColumnInfo:
        info = self.column(configured, purpose=purpose, case_sensitive=rules.name == "postgresql")
        allowed = SQLITE_TIME_FAMILIES if rules.name == "sqlite" else TIME_FAMILIES
        if info.type not in allowed:
            raise CheckDefinitionError(
                f"{self.where}: column {info.name} is {info.type} ({info.raw_type}), not a time type; "
                f"point {purpose} at a timestamp column"
            )
        return info


@dataclass
class TableQuery:
    """What to ask about one table at one scheduled time, and how to read the answer."""

    target: TableTarget
    rules: DialectRules
    scheduled_time: datetime
    # The last full read, when the table's write counters have not moved since (collect.changes):
    # freshness and the whole-table count are taken from it instead of read again.
    reuse: LastRead | None = None
    statement: sa.Select[Any] | None = None
    _scan: dict[str, ColumnElement[Any]] = field(default_factory=dict)  # aggregates of one full scan
    _scalars: dict[str, ColumnElement[Any]] = field(default_factory=dict)  # independent subqueries
    _period: tuple[datetime, datetime] | None = None

    def __post_init__(self) -> None:
        if self.target.config.checks.columns or not self._reuse_covers_the_checks():
            # column metrics read the table's rows anyway (collect.changes); a partial memory is no memory
            self.reuse = None
        if self._counts_every_row() and self.reuse is None:
            self._scan["rows"] = sa.func.count()
        self._plan_freshness()
        self._plan_volume()
        self.statement = self._build_statement()

    # -------------------------------------------------------------- planning

    def _plan_freshness(self) -> None:
        freshness = self.target.config.checks.freshness
        if freshness is None:
            return
        info = self.target.time_column(freshness.column, purpose="freshness.column", rules=self.rules)
        if self.reuse is not None:
            return
        latest = sa.func.max(self.rules.comparable_time(sa.column(info.name)))
        if self._scan:
            self._scan["last_modified"] = latest
        else:
            self._scalars["last_modified"] = (
                sa.select(latest).select_from(self.target.sa_table()).scalar_subquery()
            )

    def _plan_volume(self) -> None:
        volume = self.target.config.checks.volume
        if volume is None:
            return
        period = volume.effective_period
        if volume.column is not None and period is not None:
            info = self.target.time_column(volume.column, purpose="volume.column", rules=self.rules)
            self._period = latest_complete_period(self.scheduled_time, period)
            value = self.rules.comparable_time(sa.column(info.name))
            if self._period_is_known_empty(volume.column):
                return
            start, end = (self.rules.time_param(t, info.type) for t in self._period)
            in_period = sa.and_(value >= start, value < end)
            if self._scan:
                self._scan["period_count"] = sa.func.sum(sa.case((in_period, 1), else_=0))
            else:
                count = sa.select(sa.func.count()).select_from(self.target.sa_table()).where(in_period)
                self._scalars["period_count"] = count.scalar_subquery()
        # Otherwise an exact count is the scan's count(*) (`_counts_every_row`), or none is needed.

    def _reuse_covers_the_checks(self) -> bool:
        if self.reuse is None:
            return True
        if self.target.config.checks.freshness is not None and self.reuse.last_modified is None:
            return False
        return not self._counts_every_row() or self.reuse.row_count is not None

    def _period_is_known_empty(self, column: str) -> bool:
        """No write since the last full read, whose latest time on this column came before the
        period: no row can be in it."""
        freshness = self.target.config.checks.freshness
        if self.reuse is None or freshness is None or freshness.column != column or self._period is None:
            return False
        latest = self.reuse.last_modified
        return latest is not None and latest < self._period[0]

    def _counts_every_row(self) -> bool:
        """An exact count of the whole table: a full scan, into which freshness's max() folds."""
        volume = self.target.config.checks.volume
        if volume is None or (volume.column is not None and volume.effective_period is not None):
            return False
        return volume.exact or self._row_count_needs_scan()

    def _row_count_needs_scan(self) -> bool:
        return not self.rules.has_statistics or self.target.row_estimate is None

    def _build_statement(self) -> sa.Select[Any] | None:
        if self._scan:
            return sa.select(*(e.label(k) for k, e in self._scan.items())).select_from(self.target.sa_table())
        if self._scalars:
            return sa.select(*(e.label(k) for k, e in self._scalars.items()))
        return None

    # -------------------------------------------------------------- reading

    def fields(self, row: Mapping[str, Any] | None) -> dict[str, Any]:
        """TableSnapshot fields from the aggregate row (None when no statement was needed)."""
        values: Mapping[str, Any] = row or {}
        checks = self.target.config.checks
        out: dict[str, Any] = {}
        if checks.freshness is not None:
            if self.reuse is not None:
                out["last_modified"] = self.reuse.last_modified
            else:
                out["last_modified"] = to_utc_datetime(values.get("last_modified"))
        if checks.volume is not None:
            out.update(self._volume_fields(values))
        if self.reuse is not None:
            out["reused_from"] = self.reuse.at
        out["change_marker"] = self.target.change_marker
        if checks.schema_ is not None:
            out["columns"] = self.target.columns
        return out

    def _volume_fields(self, values: Mapping[str, Any]) -> dict[str, Any]:
        if self._period is not None:
            count = int(values.get("period_count") or 0)
            return {
                "row_count": count,
                "row_count_method": "period",
                "period_counts": [PeriodCount(start=self._period[0], count=count)],
            }
        volume = self.target.config.checks.volume
        if self._counts_every_row() and self.reuse is not None:
            return {"row_count": self.reuse.row_count, "row_count_method": "exact (no writes since)"}
        if volume is not None and volume.exact:
            return {"row_count": int(values["rows"]), "row_count_method": "exact"}
        if self._row_count_needs_scan():
            return {"row_count": int(values["rows"]), "row_count_method": "exact (no statistics)"}
        assert self.target.row_estimate is not None
        return {"row_count": round(self.target.row_estimate), "row_count_method": "statistics"}


MAX_UPDATE_TIMES = 2000  # a backfill keeps the newest arrival times, enough for weeks of hourly loads


@dataclass(frozen=True)
class Bucket:
    start: datetime
    count: int
    latest: datetime | None


def bucket_query(
    target: TableTarget,
    info: ColumnInfo,
    rules: DialectRules,
    period: timedelta,
    since: datetime,
    until: datetime,
) -> sa.Select[Any]:
    """Rows per epoch-aligned period bucket of `info` within [since, until), with each bucket's
    latest time, in no order (`read_buckets` sorts them). The bucket is computed in SQL, so only
    buckets leave the server."""
    seconds = period_seconds(period)
    column: ColumnElement[Any] = sa.column(info.name)
    value = rules.comparable_time(column)
    lower, upper = rules.time_param(since, info.type), rules.time_param(until, info.type)
    rows = (
        sa.select(rules.bucket_start(column, seconds).label("bucket"), value.label("at"))
        .select_from(target.sa_table())
        .where(value >= lower, value < upper)
        .subquery("rows_in_window")
    )
    # No ORDER BY: it would forbid a hash aggregate, and the few thousand buckets sort faster here.
    return sa.select(
        rows.c.bucket, sa.func.count().label("rows"), rules.latest_time(rows.c.at).label("latest")
    ).group_by(rows.c.bucket)


def read_buckets(rows: Sequence[Sequence[Any]]) -> list[Bucket]:
    # A first check reads tens of thousands of buckets: rows unpacked as tuples, and the float
    # epochs PostgreSQL sends (dialects.latest_time) converted directly.
    at = datetime.fromtimestamp
    buckets = [
        Bucket(
            at(float(start), UTC),
            int(count),
            at(latest, UTC) if type(latest) is float else to_utc_datetime(latest),
        )
        for start, count, latest in rows
    ]
    buckets.sort(key=lambda b: b.start)
    return buckets
