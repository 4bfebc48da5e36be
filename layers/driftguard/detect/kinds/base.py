"""What every check kind is made of, and the run context its judgement writes into.

A check kind is one module in this package: the config key it reads (under `tables[].checks` for
a table kind, under `sources[]` for a source kind), how it judges what was collected, the keys of
the findings it produces, and whether those findings have a numeric series (recent values in
notifications, day-one backfill). Adding a kind means adding a module and one line in the
registry (`driftguard.detect.kinds`); the evaluator, the engine and the CLI read the registry.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, ClassVar, Generic, TypeVar

from driftguard.config import Config, DetectionOverrides, DetectionSettings, Source, TableChecks
from driftguard.detect.base import HistoryReader, SchemaBaselineReader, ValuesReader, values_of
from driftguard.detect.explain import number
from driftguard.detect.seasonal import MAX_TRAINING_POINTS, Fitted
from driftguard.detect.strategy import Judgement, KeepsFits, Strategy
from driftguard.model import (
    CheckKey,
    CheckKind,
    Explanation,
    Finding,
    FindingStatus,
    MetricPoint,
    PointLabel,
    SchemaBaseline,
    SegmentSnapshot,
    Severity,
    Snapshot,
    TableHistory,
    TableSnapshot,
    stored_point,
    utc,
)

CheckT = TypeVar("CheckT")
KeyOf = Callable[[CheckKind, str, str | None], CheckKey]
"""(kind, metric, column) -> the key of a finding of one table."""


@dataclass
class Judged:
    """A finding and the points it judged (labelled ANOMALY if the finding ends up ANOMALY)."""

    finding: Finding
    points: list[MetricPoint] = field(default_factory=list)  # labelled by the finding's final status
    judged_earlier: list[MetricPoint] = field(default_factory=list)  # already labelled by their own judgement
    p_value: float | None = None  # set for column metrics judged by a baseline (FDR control)
    settings: DetectionSettings | None = None


def status_finding(
    key: CheckKey, at: datetime, status: FindingStatus, severity: Severity, reason: str
) -> Finding:
    return Finding(key=key, ts=at, status=status, severity=severity, explanation=Explanation(reason=reason))


def history_limit(settings: DetectionSettings, period: timedelta, cap: int = MAX_TRAINING_POINTS) -> int:
    runs = int(settings.training_window / period) if period.total_seconds() > 0 else cap
    return max(settings.min_points, min(cap, runs + 1))


def labelled(point: MetricPoint, status: FindingStatus) -> MetricPoint:
    """Points of an anomalous finding stay out of future training."""
    return point.model_copy(
        update={"label": PointLabel.ANOMALY if status == FindingStatus.ANOMALY else PointLabel.NONE}
    )


def segment_name(segment: SegmentSnapshot) -> str:
    """A segment as explanations name it; `(other)` says what it sums."""
    if segment.folded is not None:
        return f"{segment.segment} ({number(segment.folded)} segments beyond the segment_limit)"
    return segment.segment


def first_sight_points(
    run: Run, key: CheckKey, before: datetime, history: list[tuple[datetime, float]], limit: int
) -> list[MetricPoint]:
    """A segment's backfilled past as points of `key`, when the series has none yet (its first
    run): they are stored with the run and the latest value is judged against them."""
    if not history or run.history(key, before, 1):
        return []
    # built as stored points are: a first sight brings weeks of them per series, already typed
    return [
        stored_point(key, utc(ts), float(value), PointLabel.NONE) for ts, value in history if ts < before
    ][-limit:]


class Run:
    """One snapshot being judged: what every kind reads (config, history, baselines) and the
    findings, points and learned schemas it adds."""

    def __init__(
        self,
        config: Config,
        source: Source,
        snapshot: Snapshot,
        history: HistoryReader,
        schema_baseline: SchemaBaselineReader,
        values: ValuesReader | None = None,
        fits: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> None:
        self.config = config
        self.source = source
        self.snapshot = snapshot
        self.at = snapshot.scheduled_time
        self.history = history
        self.values = values or values_of(history)
        self.schema_baseline = schema_baseline
        self.run_period = config.schedule_of(source).period
        self.judged: list[Judged] = []
        self.baselines: list[SchemaBaseline] = []
        # Asked once per table and check: index them once (a source may have hundreds of tables).
        self._tables: dict[str, TableSnapshot] = {}
        for table in snapshot.tables:
            self._tables.setdefault(table.table, table)  # the first, as Snapshot.table answers
        self._settings: dict[DetectionOverrides, DetectionSettings] = {}
        self._segmented = {t.name for t in source.tables if t.segment_by is not None}
        # the fits kept with each series (by fingerprint), read when a series is first judged; what
        # this run fitted anew is written back with it (`new_fits`)
        self._stored_fits = fits or {}
        self._fits: dict[str, Fitted | None] = {}
        self.new_fits: dict[str, dict[str, Any]] = {}

    def key(
        self,
        table: str,
        check: CheckKind,
        metric: str,
        column: str | None = None,
        segment: str | None = None,
    ) -> CheckKey:
        return CheckKey(
            source=self.source.name, table=table, check=check, metric=metric, column=column, segment=segment
        )

    def segmented(self, table: str) -> bool:
        """Whether `table` is judged per segment (tables[].segment_by)."""
        return table in self._segmented

    def table(self, name: str) -> TableSnapshot | None:
        """`snapshot.table(name)`, from the run's index."""
        return self._tables.get(name)

    def settings(self, overrides: DetectionOverrides) -> DetectionSettings:
        """The source's settings with `overrides` applied, worked out once per distinct overrides
        in a run (each takes two model copies, and most checks have the same, empty, overrides)."""
        settings = self._settings.get(overrides)
        if settings is None:
            settings = self._settings[overrides] = self.config.detection_for(self.source, overrides)
        return settings

    def judge_series(
        self,
        key: CheckKey,
        strategy: Strategy,
        at: datetime,
        value: float,
        settings: DetectionSettings,
        period: timedelta,
        earlier: list[MetricPoint] | None = None,
        cap: int = MAX_TRAINING_POINTS,
    ) -> Judgement:
        """The judgement of `value`: by the series' kept fit when the strategy keeps fits and the
        value is plainly normal under it (reading only the newest few points), else by a full fit on
        the training window, whose fit is then kept (SeasonalStrategy.reuse)."""
        keeper = strategy if isinstance(strategy, KeepsFits) else None
        fingerprint = key.fingerprint
        if keeper is not None:
            fitted = self._fit(fingerprint)
            if fitted is not None:
                tail = keeper.reuse_tail(settings)
                recent = (self.history(key, at, tail) + (earlier or []))[-tail:]
                judged = keeper.reuse(fitted, recent, at, value, settings)
                if judged is not None:
                    return judged
        past = self.history(key, at, history_limit(settings, period, cap)) + (earlier or [])
        judgement = strategy.judge(past, at, value, settings)
        if keeper is not None and judgement.fitted is not None:
            self._fits[fingerprint] = judgement.fitted
            self.new_fits[fingerprint] = judgement.fitted.to_json()
        return judgement

    def _fit(self, fingerprint: str) -> Fitted | None:
        if fingerprint not in self._fits:
            stored = self._stored_fits.get(fingerprint)
            self._fits[fingerprint] = None if stored is None else Fitted.from_json(stored)
        return self._fits[fingerprint]

    def history_values(
        self, key: CheckKey, at: datetime, settings: DetectionSettings, period: timedelta, cap: int
    ) -> list[float]:
        """The values of the series window `judge_series` would read, as a column."""
        return self.values(key, at, history_limit(settings, period, cap))

    def add(self, judged: Judged) -> None:
        self.judged.append(judged)

    def status(self, key: CheckKey, status: FindingStatus, severity: Severity, reason: str) -> None:
        """A finding without a measured value (NO_DATA, ERROR)."""
        self.add(Judged(status_finding(key, self.at, status, severity, reason)))


class CheckKindBase(ABC):
    """What the registry knows of every kind: its CheckKind, its config key, whether it has a series."""

    kind: ClassVar[CheckKind]
    config_key: ClassVar[str]
    has_series: ClassVar[bool]

    def series_strategy(self, metric: str, period: timedelta | None) -> Strategy | None:
        """The strategy that judges this kind's series `metric` (`period`: the spacing of its points
        when the check has one), for a display that learns the band again; None without a band."""
        return None


class TableCheckKind(CheckKindBase, Generic[CheckT]):
    """A kind of check configured per table under `tables[].checks.<config_key>`."""

    @abstractmethod
    def configured(self, checks: TableChecks) -> Sequence[CheckT]:
        """The checks of this kind configured on one table (none, one, or one per column)."""

    @abstractmethod
    def keys(self, key_of: KeyOf, check: CheckT) -> list[tuple[CheckKey, Severity]]:
        """The key and severity of every finding `check` produces (ERROR findings use them)."""

    @abstractmethod
    def judge(self, run: Run, table: str, check: CheckT, snap: TableSnapshot) -> None:
        """Judge what was collected of the table and add the findings to `run`."""

    def backfills(self, checks: TableChecks, check: CheckT) -> bool:
        """Whether the table's own rows can seed this check's series on first sight (`checks`: all
        of the table's checks, e.g. for the timestamp column another check names)."""
        return False

    def history_points(
        self, key_of: KeyOf, check: CheckT, history: TableHistory, until: datetime
    ) -> list[MetricPoint]:
        """The points of the table's backfilled history this check learns from."""
        return []


class SourceCheckKind(CheckKindBase, Generic[CheckT]):
    """A kind of check configured per source under `sources[].<config_key>` (custom SQL)."""

    @abstractmethod
    def configured(self, source: Source) -> Sequence[CheckT]: ...

    @abstractmethod
    def judge(self, run: Run, check: CheckT) -> None: ...
