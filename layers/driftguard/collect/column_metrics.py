"""Column metrics, each its own statement over a bounded slice of the table.

With a timestamp column (`TableChecks.column_metrics_period`: the volume column, else the
freshness column), a metric is computed over the latest complete period only, `column >= start
AND column < end`, which an index on the timestamp column serves without reading the rest of the
table; a first check backfills every metric per period of the training window in one GROUP BY
(one metric per statement if that fails). Without one, a metric reads a sample: PostgreSQL
`TABLESAMPLE SYSTEM (p) REPEATABLE (0)` sized from the table's statistics to about SAMPLE_ROWS
rows (every statement sees the same pages), other engines the first SAMPLE_ROWS rows; the rows a
sample read are stated with the metric.

Each metric is its own statement, so each runs under its own statement timeout, and a metric
that fails (timeout, missing column, a metric the column's type cannot have) is recorded for
that metric alone: the table's other checks and metrics still collect.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.selectable import FromClause

from driftguard.collect.dialects import DialectRules
from driftguard.collect.periods import latest_complete_period, period_seconds
from driftguard.collect.sql_checks import json_safe
from driftguard.collect.table_query import TableTarget
from driftguard.collect.types import NUMBER_FAMILIES, TIME_FAMILIES
from driftguard.config import ColumnCheck
from driftguard.errors import CheckDefinitionError, DriftGuardError, SourceUnavailable
from driftguard.model import ColumnInfo, ColumnProfile

SAMPLE_ROWS = 100_000
QUANTILES = (("p25", 0.25), ("p50", 0.5), ("p75", 0.75))
ORDERED_FAMILIES = NUMBER_FAMILIES | TIME_FAMILIES | {"text"}
METRIC_FAMILIES: dict[str, tuple[frozenset[str], str]] = {
    "mean": (NUMBER_FAMILIES, "a numeric column (integer, float or numeric)"),
    "quantiles": (NUMBER_FAMILIES, "a numeric column (integer, float or numeric)"),
    "min": (ORDERED_FAMILIES, "a number, text, date or timestamp column"),
    "max": (ORDERED_FAMILIES, "a number, text, date or timestamp column"),
}

Run = Callable[[sa.Executable], Sequence[Any]]
"""Runs one statement on the source session and returns its rows (errors raise, typed)."""


def _aggregates(metric: str, column: ColumnElement[Any]) -> dict[str, ColumnElement[Any]]:
    """The aggregates one metric needs besides count(*) and count(column)."""
    if metric == "distinct_count":
        return {"distinct": sa.func.count(sa.distinct(column))}
    if metric == "mean":
        return {"mean": sa.func.avg(column)}
    if metric == "min":
        return {"min": sa.func.min(column)}
    if metric == "max":
        return {"max": sa.func.max(column)}
    if metric == "quantiles":
        fractions = postgresql.array([sa.literal(q, sa.Float) for _, q in QUANTILES])
        return {"quantiles": sa.func.percentile_cont(fractions).within_group(column)}
    return {}  # null_rate: the two counts


@dataclass
class ColumnMetrics:
    """Plans and reads the column metrics of one table."""

    target: TableTarget
    rules: DialectRules

    def _find(self, name: str, purpose: str) -> ColumnInfo:
        return self.target.column(name, purpose=purpose, case_sensitive=self.rules.name == "postgresql")

    def _time_column(self, name: str) -> ColumnInfo:
        return self.target.time_column(
            name, purpose="the timestamp column of column metrics", rules=self.rules
        )

    def collect(self, scheduled_time: datetime, run: Run) -> list[ColumnProfile]:
        """One profile per configured column, each metric its own statement."""
        timing = self.target.config.checks.column_metrics_period
        period_start: datetime | None = None
        sampled = False
        if timing is not None:
            info = self._time_column(timing[0])
            period_start, end = latest_complete_period(scheduled_time, timing[1])
            value = self.rules.comparable_time(sa.column(info.name))
            lower, upper = (self.rules.time_param(t, info.type) for t in (period_start, end))

            def slice_of(name: str) -> FromClause:
                in_period = sa.and_(value >= lower, value < upper)  # a range the column's index serves
                return (
                    sa.select(sa.column(name)).select_from(self.target.sa_table()).where(in_period).subquery()
                )

        else:
            sampled = True
            slice_of = self._sample
        profiles: list[ColumnProfile] = []
        for check in self.target.config.checks.columns:
            profiles.append(self._profile(check, run, slice_of, period_start, sampled=sampled))
        return profiles

    @property
    def _tablesampled(self) -> bool:
        estimate = self.target.row_estimate or 0
        return self.rules.name == "postgresql" and estimate > SAMPLE_ROWS

    def _sample(self, name: str) -> FromClause:
        estimate = self.target.row_estimate or 0
        table = self.target.sa_table()
        if self._tablesampled:
            percent = 100.0 * SAMPLE_ROWS / estimate
            sampled = sa.tablesample(table, sa.func.system(percent), seed=sa.literal(0))
            return sa.select(sa.column(name)).select_from(sampled).subquery()
        return sa.select(sa.column(name)).select_from(table).limit(SAMPLE_ROWS).subquery()

    def _profile(
        self,
        check: ColumnCheck,
        run: Run,
        slice_of: Callable[[str], FromClause],
        period_start: datetime | None,
        *,
        sampled: bool,
    ) -> ColumnProfile:
        fields: dict[str, Any] = {}
        errors: dict[str, str] = {}
        try:
            info = self._find(check.name, f"columns[{check.name}].name")
        except CheckDefinitionError as e:
            errors = dict.fromkeys(check.metrics, str(e))
            return ColumnProfile(column=check.name, row_count=0, null_count=0, errors=errors)
        counted: tuple[int, int] | None = None
        for metric in check.metrics:
            problem = _inapplicable(metric, info, self.rules, self.target.where, check.name)
            if problem:
                errors[metric] = problem
                continue
            source = slice_of(info.name)
            value = source.c[info.name]
            selected = {
                "rows": sa.func.count(),
                "values": sa.func.count(value),
                **_aggregates(metric, value),
            }
            statement = sa.select(*(e.label(k) for k, e in selected.items())).select_from(source)
            try:
                row = dict(run(statement)[0]._mapping)
            except SourceUnavailable:
                raise
            except DriftGuardError as e:
                errors[metric] = str(e)
                continue
            counted = counted or (int(row["rows"]), int(row["rows"]) - int(row["values"]))
            fields.update(_read(metric, row, info))
        row_count, null_count = counted or (0, 0)
        return ColumnProfile(
            column=info.name,
            row_count=row_count,
            null_count=null_count,
            period_start=period_start,
            # the rows read, when they were a sample and not the whole table
            sample_rows=row_count if sampled and (self._tablesampled or row_count >= SAMPLE_ROWS) else None,
            errors=errors,
            **fields,
        )

    def backfill(self, since: datetime, until: datetime, run: Run) -> list[ColumnProfile]:
        """Per complete period of [since, until): every metric of every column in one GROUP BY (one
        scan of the window). If that fails (a timeout, one metric's error), each metric on its own,
        and a metric that still fails is left out: it learns from its runs instead."""
        return self.backfill_by(since, until, run).get(None, [])

    def backfill_by(
        self,
        since: datetime,
        until: datetime,
        run: Run,
        segment: ColumnElement[Any] | None = None,
        where: Sequence[ColumnElement[Any]] = (),
    ) -> dict[str | None, list[ColumnProfile]]:
        """`backfill`, grouped by `segment` as well when given (rows where it is NULL under None),
        over the rows `where` also selects: the profiles of each group."""
        timing = self.target.config.checks.column_metrics_period
        if timing is None:
            return {}
        wanted: list[tuple[ColumnInfo, str]] = []
        for check in self.target.config.checks.columns:
            try:
                column = self._find(check.name, f"columns[{check.name}].name")
            except CheckDefinitionError:
                continue
            wanted += [
                (column, m)
                for m in check.metrics
                if not _inapplicable(m, column, self.rules, self.target.where, check.name)
            ]
        if not wanted:
            return {}
        info = self._time_column(timing[0])
        seconds = period_seconds(timing[1])
        time_value = self.rules.comparable_time(sa.column(info.name))
        lower, upper = (self.rules.time_param(t, info.type) for t in (since, until))
        names = list(dict.fromkeys(column.name for column, _ in wanted))
        keys: list[ColumnElement[Any]] = [
            self.rules.bucket_start(sa.column(info.name), seconds).label("bucket")
        ]
        if segment is not None:
            keys.append(segment.label("segment"))
        in_window = (
            sa.select(*keys, *(sa.column(name).label(f"v{i}") for i, name in enumerate(names)))
            .select_from(self.target.sa_table())
            .where(time_value >= lower, time_value < upper, *where)
            .subquery("in_window")
        )
        groups = [in_window.c.bucket] + ([in_window.c.segment] if segment is not None else [])

        def grouped(pairs: list[tuple[ColumnInfo, str]]) -> sa.Select[Any]:
            selected: dict[str, ColumnElement[Any]] = {"rows": sa.func.count()}
            for column, metric in pairs:
                i = names.index(column.name)
                value = in_window.c[f"v{i}"]
                selected[f"c{i}_values"] = sa.func.count(value)
                selected.update({f"c{i}_{k}": e for k, e in _aggregates(metric, value).items()})
            labelled = (e.label(k) for k, e in selected.items())
            return sa.select(*groups, *labelled).group_by(*groups)

        Batch = list[tuple[ColumnInfo, str]]

        def attempt(batches: list[Batch]) -> list[tuple[Batch, Sequence[Any]]]:
            done: list[tuple[Batch, Sequence[Any]]] = []
            for batch in batches:
                try:
                    done.append((batch, run(grouped(batch))))
                except SourceUnavailable:
                    raise
                except DriftGuardError:
                    continue
            return done

        results = attempt([wanted]) or attempt([[pair] for pair in wanted])
        by_period: dict[tuple[str | None, str, datetime], dict[str, Any]] = {}
        for pairs, result in results:
            for r in result:
                row = dict(r._mapping)
                start = datetime.fromtimestamp(float(row["bucket"]), UTC)
                if start + timedelta(seconds=seconds) > until:
                    continue  # the period still running at `until` is not complete
                group = None if row.get("segment") is None else str(row["segment"])
                for column, metric in pairs:
                    i = names.index(column.name)
                    fields = by_period.setdefault((group, column.name, start), {})
                    fields.setdefault("row_count", int(row["rows"]))
                    fields.setdefault("null_count", int(row["rows"]) - int(row[f"c{i}_values"]))
                    fields.update(_read(metric, row, column, prefix=f"c{i}_"))
        profiles: dict[str | None, list[ColumnProfile]] = {}
        for (group, name, start), fields in sorted(by_period.items(), key=lambda item: item[0][2]):
            profiles.setdefault(group, []).append(ColumnProfile(column=name, period_start=start, **fields))
        return profiles


def _inapplicable(metric: str, info: ColumnInfo, rules: DialectRules, where: str, name: str) -> str | None:
    families, needs = METRIC_FAMILIES.get(metric, (None, ""))
    if families is not None and info.type not in families:
        return (
            f"{where}: column {info.name} is {info.type}; {metric} needs {needs}: "
            f"remove {metric!r} from columns[{name}].metrics"
        )
    if metric == "distinct_count" and info.type == "json":
        return (
            f"{where}: column {info.name} is json, whose values cannot be counted distinct; remove "
            f"'distinct_count' from columns[{name}].metrics"
        )
    if metric == "quantiles" and not rules.has_percentile_cont:
        return (
            f"{where}: {rules.name} has no percentile_cont aggregate; "
            f"remove 'quantiles' from columns[{name}].metrics"
        )
    return None


def _read(metric: str, row: Mapping[str, Any], info: ColumnInfo, prefix: str = "") -> dict[str, Any]:
    """The profile fields of `metric` from a result row whose aggregates are named `prefix` + key."""
    if metric == "distinct_count":
        return {"distinct_count": int(row[prefix + "distinct"])}
    if metric == "mean":
        mean = row[prefix + "mean"]
        return {"mean": None if mean is None else float(mean)}
    if metric in ("min", "max"):
        return {metric: _extreme(row[prefix + metric], info)}
    if metric == "quantiles":
        values = row[prefix + "quantiles"]
        return {
            "quantiles": None
            if values is None or any(v is None for v in values)
            else {label: float(v) for (label, _), v in zip(QUANTILES, values, strict=True)}
        }
    return {}


def _extreme(value: Any, info: ColumnInfo) -> float | str | None:
    if value is None:
        return None
    if info.type in NUMBER_FAMILIES and isinstance(value, int | float | Decimal):
        return float(value)
    safe = json_safe(value)
    return safe if isinstance(safe, str) else str(safe)
