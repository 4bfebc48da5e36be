"""The one interface every series strategy implements, and what it returns.

A strategy judges one new value against the history of its series. It never sees the new
value in its training data (out-of-sample scoring), and it leaves out points labelled as
anomalies or by an operator. Adding a strategy means adding one class in one file.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from driftguard.config import DetectionSettings
from driftguard.model import FindingStatus, MetricPoint

if TYPE_CHECKING:
    from driftguard.detect.seasonal import Fitted


@dataclass(frozen=True)
class Judgement:
    """A strategy's verdict on one value, with everything an explanation needs."""

    status: FindingStatus  # OK, ANOMALY or LEARNING
    observed: float
    method: str
    expected: float | None = None
    lower: float | None = None
    upper: float | None = None
    score: float = 0.0  # >= 0, larger is more anomalous
    p_value: float = 1.0  # chance of a deviation this large in the learned noise (for FDR control)
    training_start: datetime | None = None
    training_end: datetime | None = None
    training_points: int = 0
    slot: str | None = None
    effect: float | None = None  # (observed - expected) / |expected|
    direction: str | None = None  # "drop" | "spike"
    needed_points: int | None = None
    note: str = ""  # a remark for the reason, e.g. "a level shift was adopted as the new normal"
    noise: str = ""  # the noise model the range came from, e.g. "counts, variance 12x Poisson"
    calendar: str = ""  # the calendar rule applied, e.g. "US holidays kept out of training"
    seasonality: str = ""  # a seasonality the history is too short for, e.g. "weekly: needs 14 days ..."
    # the fit this judgement was made with, kept with the series so that the next plainly normal
    # value is judged without refitting (SeasonalStrategy.reuse); None where none can be kept
    fitted: Fitted | None = field(default=None, repr=False)

    @property
    def anomaly(self) -> bool:
        return self.status == FindingStatus.ANOMALY


class Strategy(Protocol):
    """Judges `value` observed at `at`, given the series' `history` (ts < at, oldest first)."""

    def judge(
        self, history: Sequence[MetricPoint], at: datetime, value: float, settings: DetectionSettings
    ) -> Judgement: ...


@runtime_checkable
class KeepsFits(Protocol):
    """A strategy whose full judgements make a fit (`Judgement.fitted`) that later judgements of
    plainly normal values may reuse instead of reading and refitting the training window."""

    def reuse_tail(self, settings: DetectionSettings) -> int:
        """How many of the newest points `reuse` reads."""
        ...

    def reuse(
        self,
        fitted: Fitted | None,
        recent: Sequence[MetricPoint],
        at: datetime,
        value: float,
        settings: DetectionSettings,
    ) -> Judgement | None:
        """The judgement of `value` by `fitted`, or None: judge in full."""
        ...
