"""Segments of a table (`tables[].segment_by`): the statements that find them, count them, date
them and profile them, each bounded in the rows it returns.

A segment is named by its column values as SQL writes them, `country=DE` (two columns:
`country=DE,device=ios`; NULL is `(null)`); the name is computed in SQL (cast to text, coalesced,
cut to MAX_VALUE_CHARS, concatenated), so Python and every statement agree on it and a known
segment is matched by name.

Discovery, one statement per run: every segment's rows in the latest complete volume period (and,
with freshness, its latest time since that period began), ranked by rows. The `segment_limit`
segments with the most rows, and the segments the table had before (`known`, at most
`segment_limit` of them), keep their own row; every other segment is summed into one `(other)`
row. The server groups and ranks; at most 2 x segment_limit + 1 rows leave it, however many
distinct values the column has. A known segment with no row at all is missing.

Column metrics run one statement per metric as without segments, grouped by the tracked segments
(the rest as `(other)`): at most segment_limit x 2 + 1 rows each. A segment seen for the first time
is backfilled from the training window in one GROUP BY (period bucket, segment) restricted to the
new segments: at most (periods in the window) x (new segments + 1) rows.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.sql.elements import ColumnElement

from driftguard.collect.column_metrics import ColumnMetrics, Run, _aggregates, _inapplicable, _read
from driftguard.collect.dialects import DialectRules
from driftguard.collect.periods import counts_since_first_row, latest_complete_period, period_seconds
from driftguard.collect.table_query import MAX_UPDATE_TIMES, TableTarget, to_utc_datetime
from driftguard.errors import CheckDefinitionError, DriftGuardError, SourceUnavailable
from driftguard.model import ColumnInfo, ColumnProfile, PeriodCount, SegmentSnapshot, TableHistory

OTHER = "(other)"
NULL_VALUE = "(null)"
# A segment's name keeps this much of each value: it is in every key, label and explanation of the
# segment (values that agree this far are one segment).
MAX_VALUE_CHARS = 100


@dataclass
class SegmentCollection:
    """Plans and reads the segments of one segmented table at one scheduled time."""

    target: TableTarget
    rules: DialectRules
    scheduled_time: datetime
    known: Sequence[str] = ()  # segments the table had before (they have series)
    training_window: timedelta | None = None  # backfill window for new segments; None: no backfill

    def __post_init__(self) -> None:
        table = self.target.config
        volume = table.checks.volume
        assert table.segment_by is not None and volume is not None and volume.column is not None
        self.limit = table.segment_limit
        self.period = volume.effective_period or timedelta(hours=1)
        self.time_info = self.target.time_column(volume.column, purpose="volume.column", rules=self.rules)
        case_sensitive = self.rules.name == "postgresql"
        self.columns = [
            self.target.column(name, purpose="segment_by", case_sensitive=case_sensitive)
            for name in table.segment_by
        ]
        freshness = table.checks.freshness
        self.fresh_info = (
            self.target.time_column(freshness.column, purpose="freshness.column", rules=self.rules)
            if freshness is not None
            else None
        )
        # (other) known before needs no backfill; the known segments the statement keeps apart are
        # bounded like the discovered ones (the first `limit`, in the order given)
        self.other_known = OTHER in self.known
        self.known = [k for k in dict.fromkeys(self.known) if self._named_by_columns(k)][: self.limit]
        self.start, self.end = latest_complete_period(self.scheduled_time, self.period)

    # -------------------------------------------------------------- naming

    def _named_by_columns(self, segment: str) -> bool:
        """Whether a known segment's name has the shape the segment_by columns give names: one
        named by other columns (segment_by was changed since) is not this table's, nor missing."""
        first, *rest = (re.escape(info.name) for info in self.columns)
        other_name = r",[A-Za-z_][A-Za-z0-9_$]*="
        shape = rf"{first}=.*,{rest[0]}=.*" if rest else rf"{first}=(?!.*{other_name}).*"
        return re.fullmatch(shape, segment, re.IGNORECASE | re.DOTALL) is not None

    def name(self) -> ColumnElement[Any]:
        """The segment's name as SQL computes it: `col=value[,col2=value2]`."""
        parts: list[ColumnElement[Any]] = []
        for i, info in enumerate(self.columns):
            value = sa.func.coalesce(sa.cast(sa.column(info.name), sa.String), sa.literal(NULL_VALUE))
            text: ColumnElement[Any] = sa.func.substr(value, 1, MAX_VALUE_CHARS)
            parts += [sa.literal(("," if i else "") + f"{info.name}="), text]
        name = parts[0]
        for part in parts[1:]:
            name = name + part  # || on PostgreSQL and SQLite, concat() on MySQL
        return name

    def _time(self) -> ColumnElement[Any]:
        return self.rules.comparable_time(sa.column(self.time_info.name))

    def _param(self, at: datetime) -> Any:
        return self.rules.time_param(at, self.time_info.type)

    # -------------------------------------------------------------- discovery

    def discovery(self) -> sa.Select[Any]:
        """Rows per segment in the latest period (and latest time since it began), ranked; the top
        `limit` and the known segments by name, the rest summed under a NULL name."""
        value = self._time()
        in_period = sa.and_(value >= self._param(self.start), value < self._param(self.end))
        selected: list[ColumnElement[Any]] = [
            self.name().label("segment"),
            sa.func.sum(sa.case((in_period, 1), else_=0)).label("rows"),
        ]
        if self.fresh_info is not None:
            latest = sa.func.max(self.rules.comparable_time(sa.column(self.fresh_info.name)))
            selected.append(latest.label("latest"))
        per_segment = (
            sa.select(*selected)
            .select_from(self.target.sa_table())
            .where(value >= self._param(self.start))
            .group_by(sa.literal_column("1"))
            .subquery("per_segment")
        )
        rank = sa.func.row_number().over(order_by=(per_segment.c.rows.desc(), per_segment.c.segment))
        ranked = sa.select(*per_segment.c, rank.label("rank")).subquery("ranked")
        keep = ranked.c["rank"] <= self.limit
        if self.known:
            keep = sa.or_(keep, ranked.c.segment.in_(self.known))
        kept = sa.select(
            sa.case((keep, ranked.c.segment), else_=sa.null()).label("kept"),
            *(c for c in ranked.c if c.name != "segment"),
        ).subquery("kept")
        out: list[ColumnElement[Any]] = [kept.c.kept, sa.func.sum(kept.c.rows).label("rows")]
        if self.fresh_info is not None:
            out.append(sa.func.max(kept.c.latest).label("latest"))
        out.append(sa.func.count().label("segments"))
        return sa.select(*out).group_by(kept.c.kept)

    def read_discovery(self, rows: Sequence[Any]) -> list[SegmentSnapshot]:
        """Segments from the discovery rows: the tracked ones by rows (most first), `(other)` last,
        then the known segments that had no row (missing)."""
        found: list[SegmentSnapshot] = []
        other: SegmentSnapshot | None = None
        for row in rows:
            m = row._mapping
            latest = to_utc_datetime(m.get("latest"))
            count = int(m["rows"] or 0)
            if m["kept"] is None:
                other = SegmentSnapshot(
                    segment=OTHER,
                    period_start=self.start,
                    row_count=count,
                    last_modified=latest,
                    folded=int(m["segments"]),
                )
            else:
                found.append(
                    SegmentSnapshot(
                        segment=str(m["kept"]), period_start=self.start, row_count=count, last_modified=latest
                    )
                )
        found.sort(key=lambda s: (-s.row_count, s.segment))
        names = {s.segment for s in found}
        missing = [
            SegmentSnapshot(segment=k, present=False, period_start=self.start)
            for k in self.known
            if k not in names
        ]
        return found + ([other] if other is not None else []) + missing

    # -------------------------------------------------------------- column metrics

    def _grouped(self, tracked: Sequence[str]) -> ColumnElement[Any]:
        """The segment a row counts under: its name when tracked, else NULL (`(other)`)."""
        name = self.name()
        return sa.case((name.in_(list(tracked)), name), else_=sa.null()) if tracked else sa.null()

    def profiles(self, tracked: Sequence[str], run: Run) -> dict[str, list[ColumnProfile]]:
        """Each configured column metric over the latest period, per segment: one statement per
        metric grouped by segment; a metric that fails is recorded for that metric (every segment)."""
        value = self._time()
        in_period = sa.and_(value >= self._param(self.start), value < self._param(self.end))
        by_segment: dict[str, dict[str, dict[str, Any]]] = {}  # segment -> column -> profile fields
        errors: dict[str, dict[str, str]] = {}  # column -> metric -> error
        case_sensitive = self.rules.name == "postgresql"
        segments = [*tracked, OTHER]
        for check in self.target.config.checks.columns:
            try:
                info = self.target.column(
                    check.name, purpose=f"columns[{check.name}].name", case_sensitive=case_sensitive
                )
            except CheckDefinitionError as e:
                errors[check.name] = dict.fromkeys(check.metrics, str(e))
                continue
            for metric in check.metrics:
                problem = _inapplicable(metric, info, self.rules, self.target.where, check.name)
                if problem:
                    errors.setdefault(check.name, {})[metric] = problem
                    continue
                rows_in = (
                    sa.select(self._grouped(tracked).label("segment"), sa.column(info.name).label("v"))
                    .select_from(self.target.sa_table())
                    .where(in_period)
                    .subquery("in_period")
                )
                v = rows_in.c.v
                selected = {"rows": sa.func.count(), "values": sa.func.count(v), **_aggregates(metric, v)}
                statement = sa.select(rows_in.c.segment, *(e.label(k) for k, e in selected.items())).group_by(
                    rows_in.c.segment
                )
                try:
                    result = run(statement)
                except SourceUnavailable:
                    raise
                except DriftGuardError as e:
                    errors.setdefault(check.name, {})[metric] = str(e)
                    continue
                for r in result:
                    m = r._mapping
                    segment = OTHER if m["segment"] is None else str(m["segment"])
                    fields = by_segment.setdefault(segment, {}).setdefault(info.name, {})
                    fields.setdefault("row_count", int(m["rows"]))
                    fields.setdefault("null_count", int(m["rows"]) - int(m["values"]))
                    fields.update(_read(metric, m, info))
        out: dict[str, list[ColumnProfile]] = {}
        for segment in segments:
            profiles = []
            for check in self.target.config.checks.columns:
                fields = by_segment.get(segment, {}).get(self._spelled(check.name), {})
                profiles.append(
                    ColumnProfile(
                        column=self._spelled(check.name),
                        row_count=fields.pop("row_count", 0),
                        null_count=fields.pop("null_count", 0),
                        period_start=self.start,
                        errors=errors.get(check.name, {}),
                        **fields,
                    )
                )
            out[segment] = profiles
        return out

    def _spelled(self, configured: str) -> str:
        """The catalog's spelling of a configured column (as profiles name it), or as configured."""
        return next(
            (c.name for c in self.target.columns if c.name == configured),
            next((c.name for c in self.target.columns if c.name.lower() == configured.lower()), configured),
        )

    # -------------------------------------------------------------- backfill of new segments

    def backfill(self, tracked: Sequence[str], new: Sequence[str], since: datetime) -> sa.Select[Any]:
        """Rows (and latest time) per period bucket and segment over [since, start of the latest
        period), for the `new` segments only (`(other)` among them: every untracked segment)."""
        bucket = self.rules.bucket_start(sa.column(self.time_info.name), period_seconds(self.period))
        value = self._time()
        selected: list[ColumnElement[Any]] = [bucket.label("bucket"), self._grouped(tracked).label("segment")]
        if self.fresh_info is not None:
            selected.append(self.rules.comparable_time(sa.column(self.fresh_info.name)).label("at"))
        where = [value >= self._param(since), value < self._param(self.start), *self._only(new)]
        rows = sa.select(*selected).select_from(self.target.sa_table()).where(*where).subquery("in_window")
        out: list[ColumnElement[Any]] = [rows.c.bucket, rows.c.segment, sa.func.count().label("rows")]
        if self.fresh_info is not None:
            out.append(self.rules.latest_time(rows.c.at).label("latest"))
        return sa.select(*out).group_by(rows.c.bucket, rows.c.segment)

    def _only(self, new: Sequence[str]) -> list[ColumnElement[Any]]:
        """The condition that keeps the rows of the `new` segments (none: (other) is among them,
        whose rows are every untracked segment's)."""
        return [] if OTHER in new else [self.name().in_(list(new))]

    def read_backfill(
        self, rows: Sequence[Any], new: Sequence[str], since: datetime
    ) -> dict[str, TableHistory]:
        """Each new segment's history: rows per complete period from its first row on (zero where
        none), and its update times."""
        counts: dict[str, dict[datetime, int]] = {s: {} for s in new}
        latest: dict[str, set[datetime]] = {s: set() for s in new}
        for row in rows:
            m = row._mapping
            segment = OTHER if m["segment"] is None else str(m["segment"])
            if segment not in counts:
                continue
            start = datetime.fromtimestamp(float(m["bucket"]), UTC)
            counts[segment][start] = int(m["rows"])
            at = m.get("latest")
            when = datetime.fromtimestamp(at, UTC) if type(at) is float else to_utc_datetime(at)
            if when is not None:
                latest[segment].add(when)
        histories: dict[str, TableHistory] = {}
        for segment in new:
            period_counts = [
                PeriodCount(start=s, count=n)
                for s, n in counts_since_first_row(counts[segment], since, self.start, self.period)
            ]
            histories[segment] = TableHistory(
                table=self.target.config.name,
                period_seconds=self.period.total_seconds(),
                period_counts=period_counts,
                update_times=sorted(latest[segment])[-MAX_UPDATE_TIMES:],
            )
        return histories

    # -------------------------------------------------------------- everything, in order

    def collect(self, run: Run) -> list[SegmentSnapshot]:
        """Discovery, then column metrics and the backfill of new segments (each its own statement,
        under the session's statement timeout)."""
        segments = self.read_discovery(run(self.discovery()))
        tracked = [s.segment for s in segments if s.present and s.segment != OTHER]
        if self.target.config.checks.columns:
            profiles = self.profiles(tracked, run)
            segments = [
                s.model_copy(update={"profiles": profiles.get(s.segment)}) if s.present else s
                for s in segments
            ]
        known = {*self.known, *([OTHER] if self.other_known else [])}
        new = [s.segment for s in segments if s.present and s.segment not in known]
        if not new or self.training_window is None:
            return segments
        since = self.scheduled_time - self.training_window
        if since >= self.start:
            return segments
        try:
            histories = self.histories(tracked, new, since, run)
        except SourceUnavailable:
            raise
        except DriftGuardError:
            # a backfill that fails (a timeout on a large window) only means that these segments
            # learn from their runs, as a table whose backfill failed does
            return segments
        return [s.model_copy(update={"history": histories.get(s.segment)}) for s in segments]

    def histories(
        self, tracked: Sequence[str], new: Sequence[str], since: datetime, run: Run
    ) -> dict[str, TableHistory]:
        """The past of each new segment over [since, start of the latest period): rows per period
        and update times in one GROUP BY, column metrics per period in another."""
        histories = self.read_backfill(run(self.backfill(tracked, new, since)), new, since)
        if not self.target.config.checks.columns:
            return histories
        profiles = ColumnMetrics(self.target, self.rules).backfill_by(
            since, self.start, run, self._grouped(tracked), self._only(new)
        )
        return {
            segment: history.model_copy(
                update={"profiles": profiles.get(None if segment == OTHER else segment, [])}
            )
            for segment, history in histories.items()
        }


KnownSegments = Callable[[str], Sequence[str]]
"""table name -> the segments it had before (those with series), for `Collector.collect`."""


def no_known_segments(table: str) -> Sequence[str]:
    return ()


__all__ = ["NULL_VALUE", "OTHER", "ColumnInfo", "KnownSegments", "SegmentCollection", "no_known_segments"]
