"""What the engine asks of detection, and what detection gives back.

Detection is pure: it reads history only through the `HistoryReader` it is handed (the
store's `series` method in production, a list in tests and backtests) and does no I/O.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from pydantic import Field

from driftguard.model import CheckKey, Finding, Frozen, MetricPoint, SchemaBaseline

HistoryReader = Callable[[CheckKey, datetime, int], list[MetricPoint]]
"""(key, before, limit) -> the latest `limit` points with ts < before, oldest first."""

ValuesReader = Callable[[CheckKey, datetime, int], list[float]]
"""(key, before, limit) -> the values of the latest `limit` points with ts < before, oldest first:
history as a column, for a judgement that needs the values alone (freshness's arrival times) and
need not pay for building a point per value."""


def values_of(history: HistoryReader) -> ValuesReader:
    """A values reader answering from a points reader (tests, backtests, the report)."""

    def read(key: CheckKey, before: datetime, limit: int) -> list[float]:
        return [p.value for p in history(key, before, limit)]

    return read


SchemaBaselineReader = Callable[[str], SchemaBaseline | None]
"""table name -> the accepted schema of that table, if any."""


class Evaluation(Frozen):
    """The result of judging one snapshot."""

    findings: list[Finding] = Field(default_factory=list)
    points: list[MetricPoint] = Field(default_factory=list)  # new points at the snapshot's time
    schema_baselines: list[SchemaBaseline] = Field(default_factory=list)  # learned on first sight
    # fits made by this judgement's full fits, by series fingerprint (JSON): kept with the series
    fits: dict[str, dict[str, Any]] = Field(default_factory=dict)


class Verdict(Frozen):
    """One row of a backtest: the judgement of one point using only the points before it."""

    ts: datetime
    value: float
    expected: float | None = None  # None while learning
    lower: float | None = None
    upper: float | None = None
    score: float = 0.0  # >= 0, larger is more anomalous
    anomaly: bool = False
