"""The Collector: one source, one connection, every table and custom check of it."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from types import TracebackType
from typing import Any, NoReturn

import sqlalchemy as sa

from driftguard.collect.changes import may_reuse
from driftguard.collect.column_metrics import ColumnMetrics
from driftguard.collect.connect import lease_pool
from driftguard.collect.dialects import Catalog
from driftguard.collect.periods import counts_since_first_row
from driftguard.collect.readonly_sql import as_derived_table, read_only_statement
from driftguard.collect.segments import KnownSegments, SegmentCollection, no_known_segments
from driftguard.collect.session import SourceSession
from driftguard.collect.sql_checks import interpret_metric, interpret_result
from driftguard.collect.table_query import (
    MAX_UPDATE_TIMES,
    Bucket,
    TableQuery,
    TableTarget,
    bucket_query,
    read_buckets,
)
from driftguard.collect.types import normalise_type
from driftguard.config import Source, SqlCheck, TableConfig
from driftguard.errors import CheckDefinitionError, DriftGuardError, SourceUnavailable
from driftguard.model import (
    ColumnInfo,
    LastRead,
    PeriodCount,
    Snapshot,
    SqlCheckResult,
    SqlMetricResult,
    TableHistory,
    TableSnapshot,
    utc,
    utcnow,
)
from driftguard.secrets import SecretResolver

DEFAULT_FRESHNESS_BUCKET = timedelta(hours=1)


def _no_last_read(table: str) -> LastRead | None:
    return None


class Collector:
    """Collects snapshots of one source over one reused connection.

    Construction resolves credentials and leases the server's shared pool (SecretError,
    ConfigError for unsupported options); the connection opens on first use (SourceUnavailable,
    PermissionDenied, ConfigError for an unknown database). Use as a context manager, or call
    close(), which returns the connection and the lease (the last lease closes the pool).
    """

    def __init__(
        self,
        source: Source,
        *,
        statement_timeout: timedelta,
        secrets: SecretResolver | None = None,
    ) -> None:
        self.source = source
        self.statement_timeout = statement_timeout
        self._lease = lease_pool(source, resolver=secrets or SecretResolver())
        self._session: SourceSession | None = None
        self._backfill_catalog: Catalog | None = None
        self._segments: tuple[KnownSegments, timedelta | None] = (no_known_segments, None)

    def __enter__(self) -> Collector:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        """Return the connection and the lease on the server's pool (the last lease closes it)."""
        self._release_session()
        self._lease.release()

    def _release_session(self) -> None:
        self._backfill_catalog = None
        if self._session is not None:
            self._session.close()
            self._session = None

    @property
    def session(self) -> SourceSession:
        """The open session (opened on first use and kept until close)."""
        if self._session is None:
            self._session = SourceSession(self.source.name, self._lease.engine, self.statement_timeout)
        return self._session

    # ------------------------------------------------------------------ collect

    def collect(
        self,
        scheduled_time: datetime,
        last_reads: Callable[[str], LastRead | None] | None = None,
        known_segments: KnownSegments | None = None,
        segment_backfill: timedelta | None = None,
    ) -> Snapshot:
        """Every configured table and custom SQL check at `scheduled_time`.

        `last_reads(table name)` gives a table's last full read; it is asked only about tables whose
        engine keeps write counters, and one whose counters have not moved since keeps that read's
        freshness and row count (collect.changes).
        `known_segments(table name)` gives the segments a segmented table had before (a known one
        without rows is reported missing); a segment not among them is new, and is backfilled over
        `segment_backfill` (the training window) when that is given.
        Table and check failures are recorded in the snapshot; source-level failures raise."""
        started = time.perf_counter()
        collected_at = utcnow()
        self._backfill_catalog = None  # later backfills see the catalog as it is then
        first_use = self._session is None
        session = self.session
        trips_before = 0 if first_use else session.round_trips
        scheduled_time = utc(scheduled_time)
        try:
            self._segments = (known_segments or no_known_segments, segment_backfill)
            tables = self._collect_tables(scheduled_time, last_reads or _no_last_read)
            results, errors = self._run_sql_checks()
            metrics = self._run_sql_metrics(errors)
        except SourceUnavailable:
            self._release_session()  # the connection is gone: the next call reconnects
            raise
        return Snapshot(
            source=self.source.name,
            scheduled_time=scheduled_time,
            collected_at=collected_at,
            tables=tables,
            sql_checks=results,
            sql_errors=errors,
            sql_metrics=metrics,
            duration_ms=(time.perf_counter() - started) * 1000,
            round_trips=session.round_trips - trips_before,
        )

    def _collect_tables(
        self, scheduled_time: datetime, last_reads: Callable[[str], LastRead | None]
    ) -> list[TableSnapshot]:
        if not self.source.tables:
            return []
        catalog = self._read_catalog(self.source.tables)
        return [
            self._collect_table(table, catalog, scheduled_time, last_reads) for table in self.source.tables
        ]

    def _run_sql_checks(self) -> tuple[list[SqlCheckResult], dict[str, str]]:
        results: list[SqlCheckResult] = []
        errors: dict[str, str] = {}
        for check in self.source.sql_checks:
            try:
                results.append(self._run_sql_check(check))
            except SourceUnavailable:
                raise
            except DriftGuardError as e:
                errors[check.name] = str(e)
        return results, errors

    def _run_sql_metrics(self, errors: dict[str, str]) -> list[SqlMetricResult]:
        """Every learned metric's rows; a metric that fails is recorded in `errors`, by name."""
        results: list[SqlMetricResult] = []
        for metric in self.source.sql_metrics:
            where = f"source {self.source.name}, sql metric {metric.name}"
            try:
                columns, rows, truncated = self._read_only_query(metric.sql, where, max_rows=metric.max_rows)
                if truncated:  # a series cut short would be judged as if its values had stopped
                    raise CheckDefinitionError(
                        f"{where}: the query returned more than {metric.max_rows:,} rows (max_rows); "
                        "aggregate it or bound its ts range"
                    )
                results.append(interpret_metric(metric.name, columns, rows, where=where))
            except SourceUnavailable:
                raise
            except DriftGuardError as e:
                errors[metric.name] = str(e)
        return results

    def _read_only_query(
        self, sql: str, where: str, *, max_rows: int
    ) -> tuple[list[str], list[Sequence[Any]], bool]:
        """Custom SQL, checked to be one read-only query and run in a read-only transaction that is
        rolled back: (columns, at most `max_rows` rows, whether the result went on past them). The
        server is asked for one row past the limit, which tells a result that fits from one cut."""
        statement = read_only_statement(sql, self.session.rules.name, where=where)
        bounded = as_derived_table(statement, row_limit=max_rows + 1)
        with self.session.read_only_transaction(where=where):
            columns, rows, truncated = self.session.read_rows(bounded, limit=max_rows, where=where)
        if columns is None:
            raise CheckDefinitionError(f"{where}: the SQL returned no result set; it must be a query")
        return columns, rows, truncated

    def _catalog_for_backfill(self, table: TableConfig) -> Catalog:
        """A first check backfills each of the source's tables just before collecting: one catalog
        read serves them all (one round trip instead of one per table; the collect reads its own)."""
        if not any(t is table for t in self.source.tables):
            return self._read_catalog([table])
        if self._backfill_catalog is None:
            self._backfill_catalog = self._read_catalog(self.source.tables)
        return self._backfill_catalog

    def _read_catalog(self, tables: list[TableConfig]) -> Catalog:
        names = sorted({t.name for t in tables})
        schemas = sorted({t.db_schema for t in tables if t.db_schema})
        rules = self.session.rules
        result = self.session.execute(rules.catalog_query(names, schemas), where=f"source {self.source.name}")
        return rules.read_catalog(result.fetchall())

    def _where(self, table: TableConfig) -> str:
        label = f"{table.db_schema}.{table.name}" if table.db_schema else table.name
        return f"source {self.source.name}, table {label}"

    def _target(self, table: TableConfig, catalog: Catalog) -> TableTarget:
        """The table as the catalog sees it; if the catalog does not show it, ask the server why."""
        rules = self.session.rules
        schema = table.db_schema or catalog.default_schema
        fold = rules.name != "postgresql"  # MySQL/SQLite compare table names case-insensitively
        rows = catalog.of(schema, table.name, fold=fold)
        where = self._where(table)
        if not rows:
            self._explain_missing(table, where)
        named = [(r.column, r) for r in rows if r.column is not None]
        columns = [
            ColumnInfo(
                name=name,
                type=normalise_type(rules.name, r.raw_type),
                raw_type=r.raw_type,
                nullable=r.nullable,
                position=position,  # dense: PostgreSQL's attnum keeps gaps where columns were dropped
            )
            for position, (name, r) in enumerate(named, start=1)
        ]
        return TableTarget(
            config=table,
            schema=table.db_schema,
            columns=columns,
            row_estimate=rows[0].row_estimate,
            where=where,
            change_marker=rows[0].change_marker,
        )

    def _explain_missing(self, table: TableConfig, where: str) -> NoReturn:
        probe = (
            sa.select(sa.literal(1))
            .select_from(sa.table(table.name, schema=table.db_schema))
            .where(sa.false())
        )
        try:
            self.session.execute(probe, where=where)
        except CheckDefinitionError as e:
            raise CheckDefinitionError(
                f"{where}: the table does not exist or is not visible to this user; check tables[].name and "
                f"schema ({str(e).removeprefix(where + ': ')})"
            ) from None
        raise CheckDefinitionError(
            f"{where}: the table is readable but missing from the catalog; is it temporary?"
        )

    def _collect_table(
        self,
        table: TableConfig,
        catalog: Catalog,
        scheduled_time: datetime,
        last_reads: Callable[[str], LastRead | None],
    ) -> TableSnapshot:
        session = self.session
        before = session.round_trips
        target: TableTarget | None = None
        try:
            target = self._target(table, catalog)
            where = target.where
            asks = self.source.skip_unchanged_tables and target.change_marker is not None
            last = last_reads(table.name) if asks else None
            reuse = last if may_reuse(target.change_marker, last, scheduled_time) else None
            query = TableQuery(target, session.rules, scheduled_time, reuse)
            row: dict[str, Any] | None = None
            if query.statement is not None:
                row = dict(session.execute(query.statement, where=target.where).mappings().one())
            fields = query.fields(row)

            def run(statement: sa.Executable) -> Sequence[Any]:
                return session.execute(statement, where=where).fetchall()

            if table.segment_by is not None:  # volume, freshness and column metrics per segment
                known, window = self._segments
                segments = SegmentCollection(target, session.rules, scheduled_time, known(table.name), window)
                fields["segments"] = segments.collect(run)
            elif table.checks.columns:
                fields["profiles"] = ColumnMetrics(target, session.rules).collect(scheduled_time, run)
        except SourceUnavailable:
            raise
        except DriftGuardError as e:
            schema_known = target is not None and table.checks.schema_ is not None
            return TableSnapshot(
                table=table.name,
                db_schema=table.db_schema,
                columns=target.columns if target is not None and schema_known else None,
                error=str(e),
                error_kind=e.kind.value,
                round_trips=session.round_trips - before,
            )
        return TableSnapshot(
            table=table.name, db_schema=table.db_schema, round_trips=session.round_trips - before, **fields
        )

    def _run_sql_check(self, check: SqlCheck) -> SqlCheckResult:
        where = f"source {self.source.name}, sql check {check.name}"
        columns, rows, truncated = self._read_only_query(check.sql, where, max_rows=check.max_rows)
        return interpret_result(check.name, columns, rows, where=where, truncated=truncated)

    # ------------------------------------------------------------------ backfill

    def backfill(self, table: TableConfig, *, since: datetime, until: datetime) -> TableHistory:
        """What `table`'s own rows say about [since, until): per-period counts of its complete
        volume periods from its first row on (zero where no rows) and, for freshness, the latest
        time in each bucket.

        Errors raise (typed) rather than being recorded: backfill is one question about one table."""
        since, until = utc(since), utc(until)
        if since >= until:
            raise ValueError(f"backfill needs since < until (got {since.isoformat()} >= {until.isoformat()})")
        try:
            return self._backfill(table, since, until)
        except SourceUnavailable:
            self._release_session()  # the connection is gone: the next call reconnects
            raise

    def _backfill(self, table: TableConfig, since: datetime, until: datetime) -> TableHistory:
        target = self._target(table, self._catalog_for_backfill(table))
        rules = self.session.rules
        volume, freshness = table.checks.volume, table.checks.freshness
        period = volume.effective_period if volume is not None else None
        buckets_by_column: dict[str, list[Bucket]] = {}

        def buckets(column: str, purpose: str, bucket: timedelta) -> list[Bucket]:
            info = target.time_column(column, purpose=purpose, rules=rules)
            if info.name not in buckets_by_column:
                statement = bucket_query(target, info, rules, bucket, since, until)
                rows = self.session.execute(statement, where=target.where).fetchall()
                buckets_by_column[info.name] = read_buckets(rows)
            return buckets_by_column[info.name]

        counts: list[PeriodCount] = []
        if volume is not None and volume.column is not None and period is not None:
            counted = {b.start: b.count for b in buckets(volume.column, "volume.column", period)}
            counts = [
                PeriodCount(start=s, count=n)
                for s, n in counts_since_first_row(counted, since, until, period)
            ]
        update_times: list[datetime] = []
        if freshness is not None:
            same_column = volume is not None and volume.column == freshness.column
            bucket = period if same_column and period is not None else DEFAULT_FRESHNESS_BUCKET
            latest = {
                b.latest
                for b in buckets(freshness.column, "freshness.column", bucket)
                if b.latest is not None
            }
            update_times = sorted(latest)[-MAX_UPDATE_TIMES:]
        profiles = ColumnMetrics(target, rules).backfill(
            since, until, lambda statement: self.session.execute(statement, where=target.where).fetchall()
        )
        return TableHistory(
            table=table.name,
            period_seconds=period.total_seconds() if counts and period is not None else None,
            period_counts=counts,
            update_times=update_times,
            profiles=profiles,
        )
