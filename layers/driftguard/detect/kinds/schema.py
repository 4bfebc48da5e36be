"""Schema: the table's columns against the configured or the accepted (learned) schema. No series."""

from __future__ import annotations

from collections.abc import Sequence

from driftguard.config import SchemaCheck, TableChecks
from driftguard.detect.kinds.base import Judged, KeyOf, Run, TableCheckKind
from driftguard.detect.schema import diff_columns, expected_schema
from driftguard.model import (
    CheckKey,
    CheckKind,
    Explanation,
    Finding,
    FindingStatus,
    SchemaBaseline,
    Severity,
    TableSnapshot,
)

SCHEMA = "schema"


class Schema(TableCheckKind[SchemaCheck]):
    kind = CheckKind.SCHEMA
    config_key = "schema"
    has_series = False

    def configured(self, checks: TableChecks) -> Sequence[SchemaCheck]:
        return [checks.schema_] if checks.schema_ else []

    def keys(self, key_of: KeyOf, check: SchemaCheck) -> list[tuple[CheckKey, Severity]]:
        return [(key_of(self.kind, SCHEMA, None), Severity.WARNING)]

    def judge(self, run: Run, table: str, check: SchemaCheck, snap: TableSnapshot) -> None:
        key = run.key(table, self.kind, SCHEMA)
        if snap.columns is None:
            run.status(
                key, FindingStatus.NO_DATA, Severity.WARNING, f"the columns of {table} were not collected"
            )
            return
        accepted = run.schema_baseline(table)
        expected = expected_schema(check.expected, accepted)
        if expected is None:
            run.baselines.append(
                SchemaBaseline(
                    source=run.source.name,
                    table=table,
                    columns=snap.columns,
                    accepted_at=run.at,
                    accepted_by="learned",
                )
            )
            reason = f"first sight of {table}: its {len(snap.columns)} columns are now the accepted schema"
            explained = Explanation(observed=len(snap.columns), method="schema diff", reason=reason)
            run.add(
                Judged(
                    Finding(
                        key=key,
                        ts=run.at,
                        status=FindingStatus.OK,
                        severity=Severity.INFO,
                        explanation=explained,
                    )
                )
            )
            return
        changes = diff_columns(snap.columns, expected, check.severity)
        against = "the configured schema" if check.expected is not None else "the accepted schema"
        details: dict[str, object] = {"changes": [c.as_dict() for c in changes], "compared_with": against}
        if check.expected is None and accepted is not None:
            details["accepted_at"] = accepted.accepted_at.isoformat()
            details["accepted_by"] = accepted.accepted_by
        if changes:
            worst = max((c.severity for c in changes), key=lambda s: s.rank)
            listed = "; ".join(c.describe() for c in changes)
            reason = f"{table} no longer matches {against}: {listed}. Fix the table or accept the new schema."
            status = FindingStatus.ANOMALY
        else:
            worst = Severity.INFO
            reason = f"{table} matches {against} ({len(snap.columns)} columns)"
            status = FindingStatus.OK
        explained = Explanation(
            observed=len(snap.columns),
            expected=len(expected),
            score=float(len(changes)),
            method="schema diff",
            reason=reason,
            details=details,
        )
        run.add(Judged(Finding(key=key, ts=run.at, status=status, severity=worst, explanation=explained)))
