"""Learned SQL metrics: a read-only query returning `value` (optionally `segment` and `ts`), each
segment its own series named after the metric (`CheckKey.segment` set), judged like volume:
seasonal baseline, hard-limit-free, the same explanations.

With `ts`, the first run keeps every row before the latest as the series' history (the query is
its own backfill) and judges the latest; later runs judge each row newer than the newest point
already learned. Without `ts`, the value is the metric at the scheduled time.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

from driftguard.config import Source, SqlMetric
from driftguard.detect.explain import number
from driftguard.detect.kinds.base import Judged, Run, SourceCheckKind, history_limit, labelled
from driftguard.detect.kinds.volume import series_judged
from driftguard.detect.seasonal import SeasonalStrategy
from driftguard.model import CheckKey, CheckKind, FindingStatus, MetricPoint, SqlMetricRow


class SqlMetricKind(SourceCheckKind[SqlMetric]):
    kind = CheckKind.SQL_METRIC
    config_key = "sql_metrics"
    has_series = True

    def series_strategy(self, metric: str, period: timedelta | None) -> SeasonalStrategy:
        return SeasonalStrategy(period=period)

    def configured(self, source: Source) -> Sequence[SqlMetric]:
        return source.sql_metrics

    def judge(self, run: Run, check: SqlMetric) -> None:
        whole = run.key(check.table or "", self.kind, check.name)
        error = run.snapshot.sql_errors.get(check.name)
        result = next((r for r in run.snapshot.sql_metrics if r.name == check.name), None)
        if error is not None or result is None:
            reason = (
                f"sql metric {check.name} failed: {error}"
                if error
                else f"sql metric {check.name} was not run"
            )
            run.status(whole, FindingStatus.ERROR, check.severity, reason)
            return
        if not result.rows:
            reason = f"sql metric {check.name} returned no rows: there is no value to judge"
            run.status(whole, FindingStatus.NO_DATA, check.severity, reason)
            return
        segments: dict[str | None, list[SqlMetricRow]] = {}
        for row in result.rows:
            segments.setdefault(row.segment, []).append(row)
        if None not in segments:
            # the metric as a whole ran: an ERROR of an earlier run (keyed without segment) resolves
            run.status(whole, FindingStatus.OK, check.severity, f"sql metric {check.name} ran")
        for segment, rows in segments.items():
            key = whole.model_copy(update={"segment": segment})
            self._judge_segment(run, check, key, rows)

    def _judge_segment(self, run: Run, check: SqlMetric, key: CheckKey, rows: list[SqlMetricRow]) -> None:
        name = check.description or check.name
        if key.segment is not None:
            name += f" for {key.segment}"
        values = [r for r in rows if r.value is not None and (r.ts is None or r.ts <= run.at)]
        if not values:
            run.status(key, FindingStatus.NO_DATA, check.severity, f"{name} has no value up to this run")
            return
        timed = [r for r in values if r.ts is not None]
        if (timed and len(timed) != len(values)) or (not timed and len(values) > 1):
            reason = (
                f"sql metric {check.name} returned {len(values)} rows for "
                f"{'segment ' + key.segment if key.segment else 'the metric'}, not all with a ts; return "
                "one row per segment, or a ts column giving every row its time"
            )
            run.status(key, FindingStatus.ERROR, check.severity, reason)
            return
        period = check.period or run.run_period
        settings = run.settings(check.detection)
        strategy = self.series_strategy(check.name, period)

        def judged(point: MetricPoint, earlier: list[MetricPoint]) -> Judged:
            judgement = run.judge_series(key, strategy, point.ts, point.value, settings, period, earlier)
            when = f" at {point.ts:%a %d %b %H:%M}" if timed else ""
            subject = f"{name} was {number(point.value)}{when}"
            return series_judged(run, key, judgement, [point], subject, check.severity)

        if not timed:
            value = values[0].value
            assert value is not None  # rows without a value were left out above
            run.add(judged(MetricPoint(key=key, ts=run.at, value=value), []))
            return
        known = run.history(key, run.at, 1)
        if known:
            fresh = [r for r in timed if r.ts is not None and r.ts > known[-1].ts] or timed[-1:]
            earlier: list[MetricPoint] = []
        else:  # first sight: the rows before the latest are the series' history, not judged
            earlier = [_point(key, r) for r in timed[:-1][-history_limit(settings, period) :]]
            fresh = timed[-1:]
        *before, latest = fresh
        for row in before:
            point = _point(key, row)
            earlier.append(labelled(point, judged(point, earlier).finding.status))
        last = judged(_point(key, latest), earlier)
        last.judged_earlier = earlier
        run.add(last)


def _point(key: CheckKey, row: SqlMetricRow) -> MetricPoint:
    assert row.ts is not None and row.value is not None
    return MetricPoint(key=key, ts=row.ts, value=row.value)
