"""One check of one source, start to finish: collect → detect → decide → commit → deliver.

The engine is the only place that sequences the steps. Everything that decides (detect, alerts)
is pure; everything that touches the world comes in through constructor arguments, so the CLI,
the Lambda handlers and the tests run the same code with different adapters.

Failure semantics (nothing is lost):
- a source that cannot be collected yields a source-level ERROR finding that goes through the
  alert lifecycle like any other, so an outage alerts once (after `error_after_failures`);
  with `raise_retryable=True` (the Step Functions path) retryable errors are raised instead so
  the state machine retries, and its Catch calls `record_failure` with the final error;
- the run's snapshot, points, states, transitions and notifications are committed atomically,
  and idempotently per (source, scheduled_time): a duplicate run changes nothing;
- notifications are committed to the outbox before any delivery, so a crash between commit and
  delivery is repaired by `flush_outbox` (the CLI's run, check and redeliver call it first); a
  delivery that finally fails is parked, not dropped;
- every delivery goes through the delivery ledger (driftguard.ledger, via
  notify.delivery.deliver_once): claimed before it is sent and marked after, so overlapping
  senders (threads, concurrent CLI processes, a run after a crash) send it at most once. A claim of
  a process that died (kill -9 between claim and mark) is taken over by the next sender on the
  same host at once, and by any sender when its lease expires.
- notices of routes that group (group_by, group_wait, group_interval) are committed to wait for
  their group instead of the outbox; `flush_groups` seals each due group into one outbox message
  (once, whoever else flushes) and delivers it through the same ledger.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, NamedTuple, Protocol

from driftguard import alerts, detect, ledger
from driftguard.config import ChannelConfig, Config, Source, TableConfig
from driftguard.errors import (
    DriftGuardError,
    RunMissed,
    SourceUnavailable,
    StateConflict,
    UnexpectedSourceError,
)
from driftguard.model import (
    AlertNotice,
    AlertState,
    AlertStateName,
    CheckKey,
    CheckKind,
    DeliveryRecord,
    DeliveryStatus,
    Explanation,
    Finding,
    FindingStatus,
    GroupedNotice,
    LastRead,
    MetricPoint,
    Notification,
    RunCommit,
    RunRecord,
    RunStatus,
    SchemaBaseline,
    Severity,
    Silence,
    Snapshot,
    TableHistory,
    utc,
    utcnow,
)
from driftguard.secrets import SecretResolver
from driftguard.store.base import SourceContext, Store

SOURCE_METRIC = "availability"
# How long a local claim holds before any sender may take it over: longer than a send with all its
# retries. A claim of a dead process on this host is taken over at once (`claimer_gone`).
LOCAL_CLAIM_LEASE = timedelta(minutes=15)
_STATE_CONFLICT_RETRIES = 3
_RECENT_VALUES = 12


class SourceCollector(Protocol):
    """What the engine needs of driftguard.collect.Collector (a fake in unit tests)."""

    def collect(
        self,
        scheduled_time: datetime,
        last_reads: LastReads | None = None,
        known_segments: Callable[[str], Sequence[str]] | None = None,
        segment_backfill: timedelta | None = None,
    ) -> Snapshot: ...

    def backfill(self, table: TableConfig, *, since: datetime, until: datetime) -> TableHistory: ...

    def __enter__(self) -> SourceCollector: ...

    def __exit__(self, *exc: object) -> None: ...


CollectorFactory = Callable[[Source, timedelta, SecretResolver], AbstractContextManager[SourceCollector]]
LastReads = Callable[[str], "LastRead | None"]  # table -> its last full read (detect.last_read)


class ChannelSender(Protocol):
    """Delivers one notification to one channel, returning what happened (never raises for
    delivery failures: a FAILED record is parked by the engine)."""

    def __call__(self, notification: Notification) -> DeliveryRecord: ...


def _default_collector(source: Source, timeout: timedelta, secrets: SecretResolver) -> Any:
    from driftguard.collect import Collector

    return Collector(source, statement_timeout=timeout, secrets=secrets)


@dataclass
class RunOutcome:
    """What one check did. `duplicate` means (source, scheduled_time) had already been committed."""

    source: str
    scheduled_time: datetime
    run: RunRecord
    snapshot: Snapshot | None = None
    findings: list[Finding] = field(default_factory=list)
    notifications: list[Notification] = field(default_factory=list)
    deliveries: list[DeliveryRecord] = field(default_factory=list)
    grouped: list[GroupedNotice] = field(default_factory=list)  # waiting for their group (flush_groups)
    duplicate: bool = False
    dry_run: bool = False
    firing: int = 0  # alerts of this source FIRING after the run

    @property
    def anomalies(self) -> list[Finding]:
        return [f for f in self.findings if f.status in (FindingStatus.ANOMALY, FindingStatus.ERROR)]

    def summary(self) -> dict[str, Any]:
        """A JSON-friendly summary (CLI --json, Lambda output)."""
        return {
            "source": self.source,
            "scheduled_time": self.scheduled_time.isoformat(),
            "status": self.run.status.value,
            "duplicate": self.duplicate,
            "dry_run": self.dry_run,
            "error": self.run.error,
            "findings": [f.model_dump(mode="json") for f in self.findings],
            "notifications": [n.model_dump(mode="json") for n in self.notifications],
            "deliveries": [d.model_dump(mode="json", exclude={"notification"}) for d in self.deliveries],
            "grouped": [g.model_dump(mode="json") for g in self.grouped],
        }


class _Judgement(NamedTuple):
    """What a run found on one load of its source: findings, points and learned baselines to
    commit, and the history they were judged on (for the recent values in notifications)."""

    findings: list[Finding]
    points: list[MetricPoint]
    baselines: list[SchemaBaseline]
    history: detect.HistoryReader
    fits: dict[str, dict[str, Any]] = {}  # fits made anew, kept with their series (never mutated)


def source_key(source: str) -> CheckKey:
    return CheckKey(source=source, table="", check=CheckKind.SOURCE, metric=SOURCE_METRIC)


def source_finding(source: str, at: datetime, error: DriftGuardError | None) -> Finding:
    """The source-level finding: OK when collection worked, ERROR with the reason otherwise."""
    if error is None:
        return Finding(
            key=source_key(source),
            ts=at,
            status=FindingStatus.OK,
            severity=Severity.CRITICAL,
            explanation=Explanation(method="collection", reason="the source was collected"),
        )
    return Finding(
        key=source_key(source),
        ts=at,
        status=FindingStatus.ERROR,
        severity=Severity.CRITICAL,
        explanation=Explanation(
            method="collection",
            observed=error.kind.value,
            reason=f"the check could not run: {error}",
            details={"error_kind": error.kind.value, "error_type": type(error).__name__},
        ),
    )


class Engine:
    def __init__(
        self,
        config: Config,
        store: Store,
        *,
        secrets: SecretResolver | None = None,
        collector_factory: CollectorFactory | None = None,
        senders: dict[str, ChannelSender] | None = None,
        clock: Callable[[], datetime] = utcnow,
        raise_retryable: bool = False,
        deliver_inline: bool = True,
        precheck_duplicates: bool = True,
        claimer: str | None = None,
        claim_lease: timedelta = LOCAL_CLAIM_LEASE,
    ) -> None:
        self.config = config
        self.store = store
        self.secrets = secrets or SecretResolver()
        self._collector_factory = collector_factory or _default_collector
        self._senders = senders  # None: built lazily from config channels
        # Who this engine's delivery claims name, and how long one holds: a Lambda caller passes its
        # request id and what is left of its timeout (a claim must not outlive its holder by much).
        self._claimer = claimer or local_claimer()
        self._claim_lease = claim_lease
        self._clock = clock
        self._raise_retryable = raise_retryable
        self._deliver_inline = deliver_inline  # False in AWS: the state machine delivers the outbox
        # Look for an existing run before collecting (saves the SQL work of a duplicate). In AWS,
        # Powertools idempotency stops duplicates first and the commit refuses any that get past it.
        self._precheck_duplicates = precheck_duplicates

    # ------------------------------------------------------------------ one check

    def check(self, source_name: str, scheduled_time: datetime, *, dry_run: bool = False) -> RunOutcome:
        """Collect, judge, decide, commit and deliver for one source at one scheduled time."""
        source = self.config.source(source_name)
        scheduled_time = utc(scheduled_time).replace(microsecond=0)
        if self._precheck_duplicates and not dry_run:
            previous = self.store.get_run(source.name, scheduled_time)
            if previous is not None:
                return RunOutcome(source.name, scheduled_time, previous, duplicate=True)

        started = self._clock()
        overlay: dict[str, list[MetricPoint]] = {}
        # Read once: the states say which tables were seen before and seed the decision below; the
        # baselines and the series tails feed detection. If another writer moves the source before
        # the commit, the store refuses it and the run is judged again on a fresh load.
        context = self.store.load_source(source.name)
        try:
            with self._collector_factory(
                source, self.config.statement_timeout_of(source), self.secrets
            ) as col:
                seen = {s.key.table for s in context.states.values()}
                stored = self._backfill_new_tables(
                    col, source, scheduled_time, seen, overlay, dry_run=dry_run
                )
                last_reads = self._last_reads(source, context, scheduled_time)
                if any(t.segment_by for t in source.tables):
                    snapshot = col.collect(
                        scheduled_time,
                        last_reads,
                        known_segments=detect.kinds.known_segments(context.states.values()),
                        segment_backfill=self.config.detection_for(source).training_window,
                    )
                else:
                    snapshot = col.collect(scheduled_time, last_reads)
        except Exception as raised:
            # Whatever stopped the collection (a cut connection at any step, a driver error no
            # rule classifies) is this source's failed run, never the end of everyone's run.
            error = (
                raised if isinstance(raised, DriftGuardError) else UnexpectedSourceError.of(source, raised)
            )
            if self._raise_retryable and error.retryable:
                raise
            return self._record_source_error(
                source, scheduled_time, started, error, dry_run=dry_run, context=context
            )
        if stored:  # the backfill moved the source: judge on what it stored
            context = self.store.load_source(source.name)

        def judge(context: SourceContext) -> _Judgement:
            history = self._history_reader(context, overlay)
            values = self._values_reader(context, overlay)
            evaluation = detect.evaluate_snapshot(
                self.config, source, snapshot, history, context.baselines.get, values, context.fits
            )
            judged = detect.say_what_was_kept(evaluation.findings, snapshot)
            findings = [*judged, source_finding(source.name, scheduled_time, None)]
            points = [*evaluation.points, *detect.marker_points(snapshot)]
            return _Judgement(findings, points, evaluation.schema_baselines, history, evaluation.fits)

        return self._decide_and_commit(
            source, scheduled_time, started, snapshot, judge, error=None, dry_run=dry_run, context=context
        )

    def record_failure(
        self, source_name: str, scheduled_time: datetime, error: DriftGuardError
    ) -> RunOutcome:
        """Record a check that failed for good (after the orchestrator's retries) as an ERROR
        finding through the alert lifecycle. Idempotent like `check`."""
        source = self.config.source(source_name)
        scheduled_time = utc(scheduled_time).replace(microsecond=0)
        previous = self.store.get_run(source.name, scheduled_time)
        if previous is not None:
            return RunOutcome(source.name, scheduled_time, previous, duplicate=True)
        return self._record_source_error(source, scheduled_time, self._clock(), error, dry_run=False)

    def record_missed(self, source_name: str, scheduled_time: datetime, reason: str) -> RunOutcome:
        """Record that no check ran for a scheduled time (driftguard.watchdog): a FAILED run whose
        source-level finding is NO_DATA, through the alert lifecycle, so the source's blindness pages
        once and resolves with the next check. Idempotent like `check`."""
        source = self.config.source(source_name)
        scheduled_time = utc(scheduled_time).replace(microsecond=0)
        previous = self.store.get_run(source.name, scheduled_time)
        if previous is not None:
            return RunOutcome(source.name, scheduled_time, previous, duplicate=True)
        finding = Finding(
            key=source_key(source.name),
            ts=scheduled_time,
            status=FindingStatus.NO_DATA,
            severity=Severity.CRITICAL,
            explanation=Explanation(method="watchdog", observed="missed", reason=reason),
        )

        def judge(context: SourceContext) -> _Judgement:
            return _Judgement([finding], [], [], self._history_reader(context))

        return self._decide_and_commit(
            source, scheduled_time, self._clock(), None, judge, error=RunMissed(reason), dry_run=False
        )

    def _record_source_error(
        self,
        source: Source,
        scheduled_time: datetime,
        started: datetime,
        error: DriftGuardError,
        *,
        dry_run: bool,
        context: SourceContext | None = None,
    ) -> RunOutcome:
        """A run that collected nothing: its only finding is the source-level ERROR."""
        findings = [source_finding(source.name, scheduled_time, error)]

        def judge(context: SourceContext) -> _Judgement:
            return _Judgement(findings, [], [], self._history_reader(context))

        return self._decide_and_commit(
            source, scheduled_time, started, None, judge, error=error, dry_run=dry_run, context=context
        )

    # ------------------------------------------------------------------ steps

    def _history_reader(
        self, context: SourceContext, overlay: dict[str, list[MetricPoint]] | None = None
    ) -> detect.HistoryReader:
        """The series as loaded with the source (the store's own read where the loaded tail cannot
        answer), plus points backfilled in this (dry) run that were not stored."""
        overlay = overlay or {}

        def read(key: CheckKey, before: datetime, limit: int) -> list[MetricPoint]:
            stored = context.series(key, before=before, limit=limit)
            if stored is None:
                stored = self.store.series(key, before=before, limit=limit)
            extra = [p for p in overlay.get(key.fingerprint, []) if p.ts < before]
            if not extra:
                return stored
            merged = {p.ts: p for p in extra}
            merged.update({p.ts: p for p in stored})
            return [merged[t] for t in sorted(merged)][-limit:]

        return read

    def _values_reader(
        self, context: SourceContext, overlay: dict[str, list[MetricPoint]] | None = None
    ) -> detect.ValuesReader:
        """`_history_reader`'s windows as columns of values: from the loaded tails, the store's own
        column read, or (for a series this dry run backfilled) the merged points."""
        overlay = overlay or {}
        points = self._history_reader(context, overlay)

        def read(key: CheckKey, before: datetime, limit: int) -> list[float]:
            if key.fingerprint in overlay:
                return [p.value for p in points(key, before, limit)]
            stored = context.series_values(key, before=before, limit=limit)
            if stored is None:
                stored = self.store.series_values(key, before=before, limit=limit)
            return stored

        return read

    def _last_reads(self, source: Source, context: SourceContext, at: datetime) -> LastReads:
        """Tables' last full reads for collection, at no remote cost: a store that loads series tails
        with the source (DynamoDB) answers from them alone, and a series they lack (or a window they
        cannot tell) means no reuse this run: a full read, as without the feature. A store without
        tails (SQLite) reads locally."""

        def from_tails(key: CheckKey, before: datetime, limit: int) -> list[MetricPoint]:
            return context.series(key, before=before, limit=limit) or []

        history: detect.HistoryReader = from_tails if context.loads_tails else self._history_reader(context)

        def last_read(table: str) -> LastRead | None:
            return detect.last_read(history, source.name, table, at)

        return last_read

    def _backfill_new_tables(
        self,
        collector: SourceCollector,
        source: Source,
        scheduled_time: datetime,
        seen: set[str],
        overlay: dict[str, list[MetricPoint]],
        *,
        dry_run: bool,
    ) -> bool:
        """Seed detection from a table's own rows the first time the table is seen (it has no
        alert state yet), so a new table with a timestamp column is judged on day one instead of
        learning for weeks. True if points were stored (a dry run keeps them in `overlay`)."""
        stored = False
        for table in source.tables:
            if table.name in seen or not detect.kinds.backfills(table):
                continue
            window = self.config.detection_for(source).training_window
            try:
                history = collector.backfill(table, since=scheduled_time - window, until=scheduled_time)
            except SourceUnavailable:
                raise  # the source itself is gone: its run fails, not only this table's history
            except DriftGuardError:
                # The table's own check will report the problem with full context; a failed
                # backfill only means this table learns from scratch.
                continue
            points = detect.points_from_history(source, table, history, scheduled_time)
            if dry_run:
                for p in points:
                    overlay.setdefault(p.key.fingerprint, []).append(p)
            elif points:
                self.store.put_points(points)
                stored = True
        return stored

    def _decide_and_commit(
        self,
        source: Source,
        scheduled_time: datetime,
        started: datetime,
        snapshot: Snapshot | None,
        judge: Callable[[SourceContext], _Judgement],
        *,
        error: DriftGuardError | None,
        dry_run: bool,
        context: SourceContext | None = None,
    ) -> RunOutcome:
        """Judge on the context, decide and commit; when another writer moved the source since it
        was loaded (StateConflict), load it again and judge anew: the findings too depend on what
        was read (series, schema baselines), not only the decision."""
        for attempt in range(_STATE_CONFLICT_RETRIES):
            if context is None or attempt > 0:
                context = self.store.load_source(source.name)
            findings, points, baselines, history, fits = judge(context)
            states = context.states
            decision = self._decide(source, findings, states, scheduled_time)
            notifications = [
                self._with_recent_values(n, scheduled_time, history) for n in decision.notifications
            ]
            grouped = [
                g.model_copy(
                    update={"notification": self._with_recent_values(g.notification, scheduled_time, history)}
                )
                for g in decision.grouped
            ]
            after = {**states, **{s.fingerprint: s for s in decision.states}}
            firing = sum(s.state == AlertStateName.FIRING for s in after.values())
            run = self._run_record(
                source.name, scheduled_time, started, snapshot, findings, notifications, error
            )
            outcome = RunOutcome(
                source.name,
                scheduled_time,
                run,
                snapshot,
                findings,
                notifications,
                dry_run=dry_run,
                firing=firing,
                grouped=grouped,
            )
            if dry_run:
                return outcome
            commit = RunCommit(
                run=run,
                snapshot=snapshot,
                points=points,
                states=decision.states,
                expected_versions=decision.expected_versions,
                transitions=decision.transitions,
                notifications=notifications,
                grouped=grouped,
                schema_baselines=baselines,
                context_version=context.version,
                fits=fits,
            )
            try:
                committed = self.store.commit_run(commit)
            except StateConflict:
                if attempt == _STATE_CONFLICT_RETRIES - 1:
                    raise
                continue  # another writer moved the source: load it again, judge and decide anew
            if not committed:
                previous = self.store.get_run(source.name, scheduled_time)
                return RunOutcome(source.name, scheduled_time, previous or run, duplicate=True)
            for silence in decision.expired_silences:  # they ended with the alert they muted
                self.store.put_silence(silence)
            if self._deliver_inline:
                outcome.deliveries = self.deliver(notifications)
            return outcome
        raise AssertionError("unreachable")  # pragma: no cover

    def _decide(
        self, source: Source, findings: list[Finding], states: dict[str, AlertState], at: datetime
    ) -> alerts.Decision:
        """The alert decision. Silences only mute notices and annotate transitions, so a decision
        without either is the same with or without them: the (global) silences are read only when
        there is something they could change, which a quiet run never has."""

        def decide(silences: list[Silence]) -> alerts.Decision:
            return alerts.decide(
                config=self.config, source=source, findings=findings, states=states, silences=silences, now=at
            )

        quiet = decide([])
        if not quiet.transitions and not quiet.notifications and not quiet.grouped:
            return quiet
        return decide(self.store.silences(active_at=at))

    def _run_record(
        self,
        source: str,
        scheduled_time: datetime,
        started: datetime,
        snapshot: Snapshot | None,
        findings: list[Finding],
        notifications: list[Notification],
        error: DriftGuardError | None,
    ) -> RunRecord:
        if error is not None:
            status = RunStatus.FAILED
        elif any(f.status == FindingStatus.ERROR for f in findings):
            status = RunStatus.PARTIAL
        else:
            status = RunStatus.OK
        return RunRecord(
            source=source,
            scheduled_time=scheduled_time,
            started_at=started,
            finished_at=self._clock(),
            status=status,
            error=str(error) if error else None,
            error_kind=(error.kind.value if error else None),
            findings=len(findings),
            anomalies=sum(f.status == FindingStatus.ANOMALY for f in findings),
            notifications=len(notifications),
            results=findings,
        )

    def _with_recent_values(
        self, notification: Notification, at: datetime, history: detect.HistoryReader
    ) -> Notification:
        """Attach each alert's recent values so messages can show a small table or chart."""
        alerts_with_values: list[AlertNotice] = []
        for notice in notification.alerts:
            if notice.recent or not detect.kinds.has_series(notice.key.check):
                alerts_with_values.append(notice)
                continue
            recent = [(p.ts, p.value) for p in history(notice.key, at, _RECENT_VALUES - 1)]
            observed = notice.finding.explanation.observed if notice.finding else None
            if isinstance(observed, int | float):
                recent.append((at, float(observed)))
            alerts_with_values.append(notice.model_copy(update={"recent": recent}))
        return notification.model_copy(update={"alerts": alerts_with_values})

    # ------------------------------------------------------------------ delivery

    def _sender_for(self, channel: str) -> ChannelSender:
        if self._senders is None:
            self._senders = {}
        if channel not in self._senders:
            self._senders[channel] = build_sender(self.config.channel(channel), self.secrets)
        return self._senders[channel]

    def deliver(
        self, notifications: Sequence[Notification], *, retry_parked: bool = False
    ) -> list[DeliveryRecord]:
        """Deliver committed outbox entries through the ledger; every outcome is recorded (delivered
        or parked). A delivered notification is never sent twice; a parked one only with
        `retry_parked`; one another sender holds is left to it (and not in the result)."""
        from driftguard.notify.delivery import deliver_once

        records: list[DeliveryRecord] = []
        for n in notifications:
            request = ledger.ClaimRequest(
                self._claimer,
                self._clock(),
                self._claim_lease,
                retry_parked=retry_parked,
                orphaned=claimer_gone,
            )
            claim, record = deliver_once(self.store, n.id, self._send, request)
            if record is None and claim.verdict != ledger.Verdict.IN_FLIGHT:
                record = claim.record  # delivered or parked before: its outcome stands
            if record is not None:
                records.append(record)
        return records

    def _send(self, n: Notification) -> DeliveryRecord:
        try:
            return self._sender_for(n.channel)(n)
        except DriftGuardError as e:  # the channel cannot even be built (missing secret ...)
            return DeliveryRecord(
                notification_id=n.id,
                channel=n.channel,
                status=DeliveryStatus.FAILED,
                attempts=0,
                at=self._clock(),
                error=str(e),
                notification=n,
            )

    def flush_outbox(self, source: str | None = None) -> list[DeliveryRecord]:
        """Deliver anything committed but not yet delivered: what a crash left between commit and
        send, or between claim and mark. Entries another live sender holds are left to it."""
        return self.deliver(self.store.pending_notifications(source))

    def flush_groups(self, now: datetime | None = None) -> list[DeliveryRecord]:
        """Send every group whose time has come (driftguard.alerts.grouping) as one message per group
        and channel: seal it (its merged message joins the outbox, its notices leave the waiting list,
        at once and only if no other flusher sealed it first), then deliver the groups' messages in
        the outbox through the ledger, so a message sealed by a flusher that died is sent here. A
        group another flusher sealed meanwhile is left to it; its message, if still in the outbox,
        is sent by whichever flusher claims it first."""
        now = utc(now or self._clock())
        for group in self.store.pending_groups():
            parts = alerts.sealable(group.parts, max_parts=self.store.max_sealed_parts)
            window = alerts.group_due(parts, group.last_notified)
            if window > now:
                continue
            merged = alerts.merge(parts, window)
            self.store.seal_group(replace(group, parts=parts), merged)
        return self.deliver([n for n in self.store.pending_notifications() if n.group is not None])


def local_claimer() -> str:
    """A claimer id naming this host and process (`claimer_gone` reads them back), unique per call."""
    return f"local:{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:12]}"


def claimer_gone(claimer: str) -> bool:
    """True for a claim of a local process on this host that no longer runs (it crashed between
    claim and mark): its claim is taken over at once instead of at lease expiry. Unknown claimers
    (another host, AWS) are never judged gone: their claims wait for the lease."""
    kind, _, rest = claimer.partition(":")
    host, _, rest = rest.partition(":")
    pid, _, _ = rest.partition(":")
    if kind != "local" or host != socket.gethostname() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # it exists, as another user
        return False
    return False


def build_sender(channel: ChannelConfig, secrets: SecretResolver) -> ChannelSender:
    """A sender for one configured channel: the adapter plus retrying delivery."""
    from driftguard import notify

    adapter = notify.build_channel(channel, secrets=secrets)

    def send(notification: Notification) -> DeliveryRecord:
        return notify.deliver(notification, adapter, max_attempts=channel.max_attempts)

    return send


# ------------------------------------------------------------------ scheduling helpers


def due_runs(
    config: Config, store: Store, now: datetime, sources: Sequence[str] | None = None
) -> Iterator[tuple[str, datetime]]:
    """(source, scheduled_time) for every selected source whose latest scheduled time has no run."""
    for source in config.sources:
        if sources and source.name not in sources:
            continue
        at = config.schedule_of(source).latest_fire(now)
        if store.get_run(source.name, at) is None:
            yield source.name, at
