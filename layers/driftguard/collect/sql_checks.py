"""Reading the result of a custom SQL check under the SQL-alert contract, and of a learned SQL
metric (a `value` column, optionally `segment` and `ts`).

The result must have a `status` column (any case) holding ALERT or OK; any ALERT row makes the
check ALERT. Optional `actual` and `threshold` columns are taken from the first ALERT row (or
the first row when all are OK). Other columns of the first 20 rows are kept as context. A query
that returns no rows is OK. At most `sql_checks[].max_rows` rows are read (the server is asked
for no more): a result cut there is judged on the rows read and says it was truncated.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from driftguard.errors import CheckDefinitionError
from driftguard.model import SqlCheckResult, SqlMetricResult, SqlMetricRow, utc

STATUSES = ("ALERT", "OK")
CONTEXT_ROWS = 20
SPECIAL_COLUMNS = ("status", "actual", "threshold")


def json_safe(value: Any) -> Any:
    """A value a JSON encoder and the store accept: numbers, strings, booleans or None."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, datetime):
        return utc(value).isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).hex()
    return str(value)


def _measure(value: Any) -> float | str | None:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, int | float | Decimal):
        return float(value)
    return str(json_safe(value))


def interpret_result(
    name: str,
    columns: Sequence[str],
    rows: Iterable[Sequence[Any]],
    *,
    where: str,
    truncated: bool = False,
) -> SqlCheckResult:
    """The SqlCheckResult of check `name` from its result set, or CheckDefinitionError."""
    lowered = [c.lower() for c in columns]
    if "status" not in lowered:
        shown = ", ".join(columns) or "(none)"
        raise CheckDefinitionError(
            f"{where}: the result has no status column (it has: {shown}); "
            "return a column named status holding ALERT or OK"
        )
    index = {special: lowered.index(special) for special in SPECIAL_COLUMNS if special in lowered}
    context_columns = [(i, c) for i, c in enumerate(columns) if lowered[i] not in SPECIAL_COLUMNS]
    count = 0
    chosen: Sequence[Any] | None = None
    alert = False
    context: list[dict[str, Any]] = []
    for row in rows:
        count += 1
        raw_status = row[index["status"]]
        status = str(raw_status).strip().upper() if raw_status is not None else None
        if status not in STATUSES:
            raise CheckDefinitionError(
                f"{where}: row {count} has status {raw_status!r}; status must be ALERT or OK"
            )
        if chosen is None or (status == "ALERT" and not alert):
            chosen = row
        alert = alert or status == "ALERT"
        if count <= CONTEXT_ROWS:
            context.append({column: json_safe(row[i]) for i, column in context_columns})

    def pick(special: str) -> float | str | None:
        return _measure(chosen[index[special]]) if chosen is not None and special in index else None

    return SqlCheckResult(
        name=name,
        status="ALERT" if alert else "OK",
        actual=pick("actual"),
        threshold=pick("threshold"),
        context=context,
        rows=count,
        truncated=truncated,
    )


METRIC_COLUMNS = ("value", "segment", "ts")


def _timestamp(value: Any, *, where: str, row: int) -> datetime | None:
    """A UTC datetime from a timestamp, a date (its midnight) or ISO-8601 text (SQLite and MySQL
    expressions return times as text)."""
    if value is None:
        return None
    parsed = value
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            parsed = None
    if isinstance(parsed, datetime):
        return utc(parsed)
    if isinstance(parsed, date):
        return datetime(parsed.year, parsed.month, parsed.day, tzinfo=UTC)
    raise CheckDefinitionError(f"{where}: row {row} has ts {value!r}; ts must be a timestamp (UTC)")


def interpret_metric(
    name: str, columns: Sequence[str], rows: Sequence[Sequence[Any]], *, where: str
) -> SqlMetricResult:
    """The SqlMetricResult of metric `name` from its result set (rows ordered by `ts` when the
    query returns one), or CheckDefinitionError naming what to change."""
    lowered = [c.lower() for c in columns]
    if "value" not in lowered:
        shown = ", ".join(columns) or "(none)"
        raise CheckDefinitionError(
            f"{where}: the result has no value column (it has: {shown}); return a numeric column named value "
            "(and optionally segment and ts)"
        )
    index = {c: lowered.index(c) for c in METRIC_COLUMNS if c in lowered}
    read: list[SqlMetricRow] = []
    for number, row in enumerate(rows, start=1):
        raw = row[index["value"]]
        value = _measure(raw)
        if isinstance(value, str):
            raise CheckDefinitionError(f"{where}: row {number} has value {raw!r}; value must be a number")
        ts = _timestamp(row[index["ts"]], where=where, row=number) if "ts" in index else None
        segment = row[index["segment"]] if "segment" in index else None
        read.append(
            SqlMetricRow(
                value=value,
                segment=None if segment is None else str(json_safe(segment)),
                ts=ts,
            )
        )
    if "ts" in index:
        read.sort(key=lambda r: (r.ts is None, r.ts or datetime.min.replace(tzinfo=UTC)))
    return SqlMetricResult(name=name, rows=read)
