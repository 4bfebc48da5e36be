"""Custom SQL checks: a read-only query that returns `status` (ALERT|OK), judged as it says; its
numeric `actual` is kept as a series named after the check (for display, not learning)."""

from __future__ import annotations

from collections.abc import Sequence

from driftguard.config import Source, SqlCheck
from driftguard.detect.explain import number
from driftguard.detect.kinds.base import Judged, Run, SourceCheckKind
from driftguard.model import CheckKind, Explanation, Finding, FindingStatus, MetricPoint


class Sql(SourceCheckKind[SqlCheck]):
    kind = CheckKind.SQL
    config_key = "sql_checks"
    has_series = False

    def configured(self, source: Source) -> Sequence[SqlCheck]:
        return source.sql_checks

    def judge(self, run: Run, check: SqlCheck) -> None:
        key = run.key(check.table or "", self.kind, check.name)
        error = run.snapshot.sql_errors.get(check.name)
        result = next((r for r in run.snapshot.sql_checks if r.name == check.name), None)
        if error is not None or result is None:
            reason = (
                f"custom check {check.name} failed: {error}"
                if error
                else f"custom check {check.name} returned no result"
            )
            run.status(key, FindingStatus.ERROR, check.severity, reason)
            return
        if result.status not in ("ALERT", "OK"):
            reason = (
                f"custom check {check.name} returned status {result.status!r}; it must return ALERT or OK"
            )
            run.status(key, FindingStatus.ERROR, check.severity, reason)
            return
        alert = result.status == "ALERT"
        what = check.description or check.name
        measured = ""
        if result.actual is not None:
            measured = f": actual {number(result.actual)}"
            if result.threshold is not None:
                measured += f" against threshold {number(result.threshold)}"
        reason = f"custom check {what} {'alerted' if alert else 'passed'}{measured}"
        if result.truncated:
            reason += f" (judged on the first {result.rows} rows only: raise max_rows or narrow the query)"
        explained = Explanation(
            observed=result.actual,
            expected=result.threshold,
            score=1.0 if alert else 0.0,
            method="custom SQL",
            reason=reason,
            details={"rows": result.rows, "truncated": result.truncated, "context": result.context},
        )
        status = FindingStatus.ANOMALY if alert else FindingStatus.OK
        finding = Finding(key=key, ts=run.at, status=status, severity=check.severity, explanation=explained)
        points = []
        if isinstance(result.actual, int | float):
            points.append(MetricPoint(key=key, ts=run.at, value=float(result.actual)))
        run.add(Judged(finding, points))
