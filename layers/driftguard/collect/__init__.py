"""SQL snapshot collection: what a source's tables look like right now, read safely and cheaply.

Public API
----------
`Collector(source, *, statement_timeout, secrets=None)` - one per source, a context manager
that reuses one connection (from its database server's shared, bounded pool: see
`driftguard.collect.connect`) for all tables of the source.

- `collect(scheduled_time) -> Snapshot`: for every `source.tables` entry a `TableSnapshot`
  (row_count + row_count_method "statistics" | "exact" | "exact (no statistics)" | "period",
  last_modified, period_counts = the latest complete period, columns, profiles, round_trips)
  and for every `source.sql_checks` entry a `SqlCheckResult`. Cost, counted in `round_trips`:
  one session setup statement per connection, one catalog query per collect (schema and row
  statistics of all tables), at most one aggregate query per table (none when the catalog
  answers everything), and three statements per custom check (begin read-only, query, rollback).
- `backfill(table, *, since, until) -> TableHistory`: per-period counts of complete periods in
  [since, until) (missing periods are zero) and the arrival times of new data, from the table's
  own rows, to seed detection on day one.
- `close()`.

Errors (driftguard.errors)
--------------------------
Source-level failures raise: `SourceUnavailable` (refused, DNS, too many connections, lost
connection), `PermissionDenied` (authentication), `SecretError` (missing password reference),
`ConfigError` (unknown database, unsupported connection option). Table-level failures (missing
table or column, a freshness column that is not a time type, no privilege on the table, a
statement timeout) are recorded on the TableSnapshot (`error`, `error_kind`) and the other
tables still collect; a custom SQL failure goes into `Snapshot.sql_errors[name]`.

Safety: every statement runs in a read-only transaction with a statement timeout; identifiers
are quoted by SQLAlchemy Core, never pasted into SQL; custom SQL must be one read-only query
(`driftguard.collect.readonly_sql`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from driftguard.collect.collector import Collector

__all__ = ["Collector"]


def __getattr__(name: str) -> Any:
    # Lazily: validating a config uses readonly_sql, which must not cost an SQLAlchemy import.
    if name == "Collector":
        from driftguard.collect.collector import Collector

        return Collector
    raise AttributeError(name)
