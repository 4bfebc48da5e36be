"""Builders shared by the alerts tests (imported by test_alerts_*.py; holds no tests itself)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

from driftguard.alerts import Decision, decide
from driftguard.config import Config, Source
from driftguard.model import (
    AlertState,
    CheckKey,
    CheckKind,
    Explanation,
    Finding,
    FindingStatus,
    Severity,
    Silence,
)

T0 = datetime(2024, 5, 6, 9, 0, tzinfo=UTC)
RUN = timedelta(minutes=15)

ORDERS_ROWS = CheckKey(source="orders_db", table="orders", check=CheckKind.VOLUME, metric="row_count")
ORDERS_LAG = CheckKey(source="orders_db", table="orders", check=CheckKind.FRESHNESS, metric="lag_seconds")
ITEMS_NULLS = CheckKey(
    source="orders_db", table="items", check=CheckKind.COLUMN, metric="null_rate", column="sku"
)
SOURCE_KEY = CheckKey(source="orders_db", check=CheckKind.SOURCE, metric="source")


def make_config(
    *,
    channels: Iterable[dict[str, Any]] = ({"name": "console", "type": "console"},),
    route: dict[str, Any] | None = None,
    alerting: dict[str, Any] | None = None,
    tags: Iterable[str] = ("tier1", "sales"),
    owner: str | None = "data-team",
    tables: Iterable[str] = (),
) -> Config:
    channel_list = list(channels)
    return Config.model_validate(
        {
            "sources": [
                {
                    "name": "orders_db",
                    "kind": "sqlite",
                    "connection": {"path": "/tmp/orders.db"},
                    "tags": list(tags),
                    "owner": owner,
                    "tables": [{"name": t} for t in tables],
                }
            ],
            "channels": channel_list,
            "route": route or {"receivers": [c["name"] for c in channel_list]},
            "alerting": alerting or {},
        }
    )


def finding(
    status: FindingStatus,
    *,
    key: CheckKey = ORDERS_ROWS,
    at: datetime = T0,
    severity: Severity = Severity.WARNING,
    observed: float | None = None,
    reason: str = "",
) -> Finding:
    return Finding(
        key=key,
        ts=at,
        status=status,
        severity=severity,
        explanation=Explanation(observed=observed, reason=reason),
    )


class Runner:
    """Feeds decide() its own states back, like the engine and store do (versions included)."""

    def __init__(self, config: Config, source: Source | None = None) -> None:
        self.config = config
        self.source = source or config.sources[0]
        self.states: dict[str, AlertState] = {}
        self.silences: list[Silence] = []
        self.decisions: list[Decision] = []

    def run(self, findings: list[Finding], at: datetime) -> Decision:
        decision = decide(
            config=self.config,
            source=self.source,
            findings=findings,
            states=dict(self.states),
            silences=list(self.silences),
            now=at,
        )
        self.commit(decision)
        return decision

    def commit(self, decision: Decision) -> None:
        for state in decision.states:
            stored = self.states.get(state.fingerprint)
            assert (stored.version if stored else 0) == decision.expected_versions[state.fingerprint]
            self.states[state.fingerprint] = state.model_copy(
                update={"version": (stored.version if stored else 0) + 1}
            )
        ended = {s.id: s for s in decision.expired_silences}  # stored as the engine does
        self.silences = [ended.get(s.id, s) for s in self.silences]
        self.decisions.append(decision)

    def state(self, key: CheckKey = ORDERS_ROWS) -> AlertState:
        return self.states[key.fingerprint]
