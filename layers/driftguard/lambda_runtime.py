"""The AWS runtime behind the thin Lambda handlers in functions/: the same Engine as the CLI,
built once per container with AWS adapters (DynamoDB state, Secrets Manager credentials).

Check function actions (the event's `action`, default "check"):
- plan:               {"action": "plan", "cadence": ID, "shard": K, "scheduled_time": T, "started"?: S}
                      -> {"servers": [{"max_concurrency": C, "sources": [{"source": NAME,
                          "scheduled_time": T, "deadline": D}, ...]}, ...]}
- check:              {"source": NAME, "scheduled_time": T, "deadline"?: D}
                      -> {"source", "scheduled_time", "status", "duplicate", "findings", "anomalies",
                          "firing", "notified", "duration_ms", "notifications": [{"id", "channel"}]}
- record_failure:     {"action": "record_failure", "source", "scheduled_time", "error": {"Error", "Cause"}}
                      -> same shape as check (the failure goes through the alert lifecycle)
- record_deliveries:  {"action": "record_deliveries", "results": [{"id", "channel", "status", "error"?}]}
                      -> {"recorded": N}: parks the ones that failed for good
Notify function: {"id", "channel"} -> {"id", "channel", "status": "delivered" | "skipped"}
Watchdog function: {"action": "watchdog", "time": T} -> {"sources", "overdue", "recorded", "notifications"};
                   it also sends the grouped messages that are due (Engine.flush_groups)

Effectively once, whatever the number, order or overlap of executions:
- check and record_failure of one (source, scheduled time) run under one Powertools idempotency
  key: one of them runs, the others reuse its result. An execution that finds another in
  progress waits for it (`once_per_firing`) and, if it does not finish in time, raises
  CheckInProgress, which the state machine retries and never records as a failure. The store's
  commit is idempotent too, behind that.
- state passes notification ids, never bodies (a 500-alert run stays far below the 256 KB state
  limit): the notify function reads the body from the store when it claims the delivery.
- every delivery goes through the delivery ledger (notify.delivery.deliver_once): claimed with a
  conditional write before it is sent, marked after, so of two executions delivering one
  notification one sends and the other skips it. The claim's lease is the notify invocation's
  remaining time plus a margin: a claim of a notify that crashed is taken over by the next check
  of the source, which lists every outbox entry of the source still waiting. The watchdog's
  missed-run notices go through the same ledger (the engine's delivery, deliver_once).
Memory: with CheckEnvironment.config_slices (the check function, as the stack ships it) the
container loads the config without sources at init and, per invocation, only the slice of the source
it is about (`Runtime.source_config`, the last SLICE_CACHE_SIZE kept): memory follows the largest
source, not the fleet (infra/constructs/memory.py sizes the functions from that).
Retryable errors (SourceUnavailable, QueryTimeout, StateConflict, CheckInProgress) propagate with
their class name as the Lambda errorType so the state machine's Retry matches them.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from driftguard import errors, ledger
from driftguard.config import NAME_RE, Config, load_config, load_source_slice
from driftguard.contracts import CRITICAL_TAG, CheckEnvironment, FunctionEnvironment, NotifyEnvironment
from driftguard.errors import DeliveryError, DriftGuardError
from driftguard.model import DeliveryRecord, DeliveryStatus, Notification, utc, utcnow
from driftguard.notify.base import ChannelAdapter
from driftguard.secrets import SecretResolver
from driftguard.store.base import Store

if TYPE_CHECKING:  # the engine is imported by the invocations that use it
    from driftguard.engine import ChannelSender


class RetryableDeliveryError(DeliveryError):
    """The channel may accept the notification later (5xx, 429, timeout): the flow retries."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message, retryable=True, retry_after=retry_after)


class PermanentDeliveryError(DeliveryError):
    """The channel refused the notification for good (4xx, bad config): dead-letter it."""

    def __init__(self, message: str) -> None:
        super().__init__(message, retryable=False)


# How many sources' slices a warm container keeps parsed (the last ones it checked): a firing asks
# for one source in its check and again in its record_failure; more would only hold memory.
SLICE_CACHE_SIZE = 8


@dataclass
class ConfigSlices:
    """The compiled config's per-source slices, one file per source (`folder`/NAME.json, written at
    synth by infra: `driftguard.config.compile_source`). A check reads only its source's file, so its
    memory does not grow with the fleet: at 10,000 sources x 20 tables the whole config took 1.6 GB
    (bench/README.md, Function memory)."""

    folder: Path
    base: Path  # the config file's folder: relative paths in a slice are relative to it (load_config)
    loaded: OrderedDict[str, Config] = field(default_factory=OrderedDict)

    def config_of(self, shared: Config, name: str) -> Config:
        """`shared` with the source `name` only: its slice, parsed and validated on first use and kept
        for the next SLICE_CACHE_SIZE - 1 other sources. Another source's slice is never read."""
        if name in self.loaded:
            self.loaded.move_to_end(name)
            return self.loaded[name]
        path = self.folder / f"{name}.json"
        if re.fullmatch(NAME_RE, name) is None or not path.is_file():
            known = ", ".join(self.names()) or "(none)"
            raise errors.ConfigError(f"no source named {name!r}; configured sources: {known}")
        config = load_source_slice(shared, path, self.base)
        if [s.name for s in config.sources] != [name]:
            raise errors.ConfigError(
                f"{path}: holds source {config.sources[0].name!r}, not {name!r}: the deployment's "
                "config files do not match; deploy the stack again"
            )
        self.loaded[name] = config
        while len(self.loaded) > SLICE_CACHE_SIZE:
            self.loaded.popitem(last=False)
        return config

    def names(self) -> list[str]:
        return sorted(p.stem for p in self.folder.glob("*.json"))

    def whole(self, shared: Config) -> Config:
        """Every slice in one config, validated together (the cross-checks over all sources)."""
        sources = [self.config_of(shared, name).sources[0] for name in self.names()]
        fields = {name: getattr(shared, name) for name in Config.model_fields}
        return Config.model_validate({**fields, "sources": sources})


@dataclass
class Runtime:
    config: Config  # with the sources, or without them when they ship as `slices`
    store: Store
    secrets: SecretResolver
    # Channel adapters by name, built on first use and kept by the warm container (their clients too).
    channels: dict[str, ChannelAdapter] = field(default_factory=dict)
    slices: ConfigSlices | None = None

    def channel(self, name: str) -> ChannelAdapter:
        if name not in self.channels:
            from driftguard.notify import build_channel

            environment = NotifyEnvironment.from_environ()
            self.channels[name] = build_channel(
                self.config.channel(name),
                secrets=self.secrets,
                default_topic_arn=environment.alerts_topic_arn,
                ses_configuration_set=environment.ses_configuration_set,
            )
        return self.channels[name]

    def source_config(self, name: str) -> Config:
        """The config an invocation about the source `name` runs with: the config without sources
        plus that source's slice when the sources ship as slices, else the whole config."""
        return self.config if self.slices is None else self.slices.config_of(self.config, name)

    def whole_config(self) -> Config:
        """The config with every source (planning without a shipped plan): all slices, if sliced."""
        return self.config if self.slices is None else self.slices.whole(self.config)


def _config_path(name: str) -> Path:
    path = Path(name)
    if not path.is_absolute():
        path = Path(os.environ.get("LAMBDA_TASK_ROOT", ".")) / path
    return path


@cache
def runtime() -> Runtime:
    """Built once per container: config, store and secret resolver are reused by warm invocations.
    With per-source slices (CheckEnvironment.config_slices) the config read here has no sources:
    each invocation reads its source's slice (Runtime.source_config)."""
    env = FunctionEnvironment.from_environ()
    path = _config_path(env.config_file)
    config = load_config(path)
    folder = CheckEnvironment.slices_from_environ()  # CheckEnvironment.config_slices
    slices = ConfigSlices(_config_path(folder), path.resolve().parent) if folder else None
    from driftguard.store.dynamodb import DynamoStore

    store = DynamoStore(table_name=env.state_table, retention_days=config.aws.retention_days)
    return Runtime(config=config, store=store, secrets=SecretResolver(), slices=slices)


# The DB-API module behind each source kind (driftguard.collect.connect.DRIVERS, which imports
# SQLAlchemy: too heavy to read at init): what X-Ray patches to trace a check's SQL.
_DATABASE_DRIVERS = {"postgres": "pg8000", "mysql": "pymysql"}


def database_drivers(config: Config) -> tuple[str, ...]:
    """The database drivers the config's sources use, for X-Ray to patch."""
    return tuple(sorted({_DATABASE_DRIVERS[s.kind] for s in config.sources if s.kind in _DATABASE_DRIVERS}))


def parse_time(value: Any, field: str = "scheduled_time") -> datetime:
    if not isinstance(value, str):
        raise errors.ConfigError(f"event field {field!r} must be an ISO 8601 time string, got {value!r}")
    try:
        return utc(datetime.fromisoformat(value.replace("Z", "+00:00")))
    except ValueError:
        raise errors.ConfigError(f"event field {field!r}: {value!r} is not an ISO 8601 time") from None


def _required(event: dict[str, Any], field: str) -> Any:
    if field not in event:
        raise errors.ConfigError(f"event is missing {field!r}: got keys {sorted(event)}")
    return event[field]


# ------------------------------------------------------------------------------------ check function


def plan(rt: Runtime, event: dict[str, Any]) -> dict[str, Any]:
    """The firing's sources by database server, each with the firing's deadline, counted from the
    execution's start (`started`) so that time lost before the plan ran (throttling) counts too
    (docs/scaling.md)."""
    from driftguard.schedules import firing_for, firing_in_index

    scheduled = parse_time(_required(event, "scheduled_time")).isoformat()
    cadence, shard = str(_required(event, "cadence")), int(_required(event, "shard"))
    index = _plan_index()
    firing = (
        firing_in_index(index, cadence, shard) if index else firing_for(rt.whole_config(), cadence, shard)
    )
    started = parse_time(event["started"], "started") if event.get("started") else utcnow()
    deadline = firing.deadline_at(started).isoformat()
    return {
        "servers": [
            {
                "max_concurrency": b.max_concurrency,
                "sources": [
                    {"source": n, "scheduled_time": scheduled, "deadline": deadline} for n in b.sources
                ],
            }
            for b in firing.servers
        ]
    }


def _plan_index() -> str | None:
    """The schedule plan shipped beside the config (CheckEnvironment.plan_file), or None without one."""
    name = CheckEnvironment.from_environ().plan_file
    return _read_plan(name) if name else None


@cache
def _read_plan(name: str) -> str:
    """Read once per container (by name: a process that runs several deployments reads each)."""
    return _config_path(name).read_text(encoding="utf-8")


def check(rt: Runtime, event: dict[str, Any]) -> dict[str, Any]:
    """Run the check, or record its failure when the event carries the state machine's caught
    `error`: one function, so both sit behind one idempotency key (see functions/check). The
    summary has no notifications (see `undelivered`). An attempt that could not end before the
    firing's `deadline` is not started: the run is recorded as missed (a failure, so the lifecycle
    alerts after `error_after_failures` of them) and the firing ends in time."""
    source = str(_required(event, "source"))
    at = parse_time(_required(event, "scheduled_time"))
    config = rt.source_config(source)
    if "error" in event:
        return summarize(_engine(rt, config).record_failure(source, at, error_from_catch(event["error"])))
    late = _too_late(config, source, event.get("deadline"))
    if late is not None:
        return summarize(_engine(rt, config).record_failure(source, at, late))
    return summarize(_engine(rt, config).check(source, at))


def _too_late(config: Config, name: str, deadline: Any) -> errors.RunMissed | None:
    """Whether an attempt starting now could end, with the recording of its outcome, after the
    firing's deadline (driftguard.schedules.attempt_fits: the attempt, a throttled recording)."""
    from driftguard.schedules import attempt_fits

    if deadline is None:
        return None
    ends = parse_time(deadline, "deadline")
    source = config.source(name)
    if attempt_fits(source, config.statement_timeout_of(source), utcnow(), ends):
        return None
    return errors.RunMissed(
        f"not checked: the firing ran out of time (an attempt could not end before {ends.isoformat()}); "
        "the shard is planned to fit, so look for a slow or unreachable database and throttling, "
        "or raise aws.check_concurrency (docs/scaling.md)"
    )


# How often an execution that found the same check in progress in another asks again, and how much
# of its own time it keeps for answering (and for the state machine to retry it in a new invocation).
IN_PROGRESS_POLL_SECONDS = 0.25
IN_PROGRESS_MARGIN_SECONDS = 10.0


def once_per_firing(run_once: Callable[[], dict[str, Any]], remaining_ms: int) -> dict[str, Any]:
    """`run_once` (the idempotent check), waiting while another execution holds it: its result is
    reused as soon as it is stored, or this one runs the check if the other failed (Powertools
    then drops its record). Out of time, CheckInProgress: retried by the state machine, never
    recorded as a failure."""
    from aws_lambda_powertools.utilities.idempotency.exceptions import IdempotencyAlreadyInProgressError

    deadline = time.monotonic() + remaining_ms / 1000 - IN_PROGRESS_MARGIN_SECONDS
    while True:
        try:
            return run_once()
        except IdempotencyAlreadyInProgressError as e:
            if time.monotonic() + IN_PROGRESS_POLL_SECONDS > deadline:
                raise errors.CheckInProgress(
                    "another execution is checking this source at this scheduled time; "
                    "its result is reused when it finishes"
                ) from e
            time.sleep(IN_PROGRESS_POLL_SECONDS)


def record_deliveries(rt: Runtime, event: dict[str, Any], *, metrics: Any | None = None) -> dict[str, Any]:
    """Park what the state machine could not deliver (retries exhausted, refused), so `redeliver`
    can replay it. Delivered ones were marked by the notify function itself; a parked record
    never replaces a delivered one (driftguard.ledger.may_record)."""
    results = _required(event, "results") or []
    recorded = {"delivered": 0, "failed": 0}
    for result in results:
        nid = str(result.get("id", ""))
        status = result.get("status")
        if status == "delivered":
            recorded["delivered"] += 1
        if not nid or status != "failed":
            continue
        rt.store.record_delivery(
            DeliveryRecord(
                notification_id=nid,
                channel=str(result.get("channel", "")),
                status=DeliveryStatus.FAILED,
                attempts=int(result.get("attempts", 1)),
                at=utcnow(),
                error=_cause_text(result.get("error")),
            )
        )
        recorded["failed"] += 1
    if metrics is not None:
        _add(metrics, "NotificationsSent", recorded["delivered"])
        _add(metrics, "NotificationsFailed", recorded["failed"])
    return {"recorded": recorded["failed"], **recorded}


def _engine(rt: Runtime, config: Config) -> Any:
    from driftguard.engine import Engine

    # Deliveries are the state machine's job in AWS: the engine commits the outbox only.
    return Engine(
        config,
        rt.store,
        secrets=rt.secrets,
        raise_retryable=True,
        deliver_inline=False,
        precheck_duplicates=False,
    )


def summarize(outcome: Any) -> dict[str, Any]:
    run = outcome.run
    return {
        "source": outcome.source,
        "scheduled_time": outcome.scheduled_time.isoformat(),
        "status": run.status.value,
        "duplicate": outcome.duplicate,
        "error": run.error,
        "findings": run.findings,
        "anomalies": run.anomalies,
        "firing": outcome.firing,
        # notifications the committed run put in the outbox (for a duplicate: the run that committed)
        "notified": run.notifications,
        "duration_ms": round((run.finished_at - run.started_at).total_seconds() * 1000, 1),
    }


def undelivered(rt: Runtime, summary: dict[str, Any]) -> list[dict[str, Any]]:
    """The source's outbox entries not yet delivered, as ids for the state machine to deliver: this
    run's, and any an earlier execution left (it crashed, or its notify step did); entries another
    execution is sending are skipped by the ledger when claimed.

    A run that put nothing in the outbox has nothing to deliver: the outbox is read only when the
    committed run created notifications (a quiet steady check saves a Query). A summary without the
    count (cached by idempotency from an older version) is read as "unknown"."""
    if summary.get("notified") == 0:
        return []
    return [
        {"id": n.id, "channel": n.channel} for n in rt.store.pending_notifications(str(summary["source"]))
    ]


def emit_check_metrics(metrics: Any, rt: Runtime, summary: dict[str, Any]) -> None:
    """The documented custom metrics (namespace DriftGuard, dimension service = the stack's name),
    ChecksRun by cadence for the heartbeats; sources with `dashboard: true` also get
    ChecksRun/Anomalies with a `source` dimension, sources tagged critical CheckFailures: custom
    metrics cost money, so per-source series exist only where a team asked for them."""
    if summary.get("duplicate"):
        return
    failed = summary["status"] == "failed"
    _add(metrics, "ChecksRun", 1)
    _add(metrics, "CheckFailures", 1 if failed else 0)
    _add(metrics, "Findings", summary["findings"])
    _add(metrics, "Anomalies", summary["anomalies"])
    _add(metrics, "AlertsFiring", summary["firing"])
    _add(metrics, "CheckDurationMs", summary["duration_ms"], unit="Milliseconds")
    config = rt.source_config(str(summary["source"]))
    source = next((s for s in config.sources if s.name == summary["source"]), None)
    if source is None:
        return
    from driftguard.schedules import cadence_id

    # The per-cadence heartbeat, per-source panels and the alarm of a critical source
    # (infra/constructs/monitoring.py): one series each, only where the stack watches it.
    series = [("ChecksRun", 1, "cadence", cadence_id(config.schedule_of(source)))]
    if source.dashboard:
        series += [
            ("ChecksRun", 1, "source", source.name),
            ("Anomalies", summary["anomalies"], "source", source.name),
        ]
    if CRITICAL_TAG in source.tags:
        series.append(("CheckFailures", 1 if failed else 0, "source", source.name))
    from aws_lambda_powertools.metrics import MetricUnit, single_metric

    for name, value, dimension, key in series:
        with single_metric(name=name, unit=MetricUnit.Count, value=value, namespace=_namespace()) as m:
            m.add_dimension(name=dimension, value=key)


def _namespace() -> str:
    return os.environ.get("POWERTOOLS_METRICS_NAMESPACE", "DriftGuard")


def _add(metrics: Any, name: str, value: float, unit: str = "Count") -> None:
    from aws_lambda_powertools.metrics import MetricUnit

    metrics.add_metric(name=name, unit=MetricUnit(unit), value=value)


def error_from_catch(error: Any) -> DriftGuardError:
    """Rebuild the typed error from a Step Functions Catch payload {"Error", "Cause"}."""
    if not isinstance(error, dict):
        return errors.DriftGuardError(str(error))
    name = str(error.get("Error", "DriftGuardError"))
    message = _cause_text(error.get("Cause")) or name
    cls = getattr(errors, name, None)
    if isinstance(cls, type) and issubclass(cls, DriftGuardError) and cls is not DeliveryError:
        try:
            return cls(message)
        except TypeError:
            pass
    if name.startswith("States.Timeout") or name == "Sandbox.Timedout":
        return errors.QueryTimeout(f"the check timed out: {message}")
    return errors.DriftGuardError(f"{name}: {message}")


def _cause_text(cause: Any) -> str | None:
    if cause is None:
        return None
    if isinstance(cause, str):
        try:
            parsed = json.loads(cause)
        except ValueError:
            return cause
        if isinstance(parsed, dict):
            return str(parsed.get("errorMessage") or parsed.get("Cause") or cause)
        return cause
    return str(cause)


# ------------------------------------------------------------------------------------ watchdog


def watchdog(
    rt: Runtime, event: dict[str, Any], *, claimer: str | None = None, remaining_ms: int | None = None
) -> dict[str, Any]:
    """Record a missed run for every source with no recorded run for two of its periods, or none
    since the watchdog began watching it (see driftguard.watchdog), and deliver what that decides,
    here, through the delivery ledger (the engine's deliver_once, like every other delivery): no
    firing of the state machine runs for a source the watchdog speaks of. `time` is the Scheduler's
    scheduled time. Its claims hold for what is left of the invocation plus CLAIM_MARGIN, like the
    notify function's: a watchdog that died holding one is taken over minutes later, not at the
    local lease."""
    from driftguard.engine import LOCAL_CLAIM_LEASE, Engine
    from driftguard.watchdog import find_overdue

    now = parse_time(event.get("time") or utcnow().isoformat(), "time")
    config = rt.whole_config()  # every source, also if they shipped as slices
    schedules = {s.name: config.schedule_of(s) for s in config.sources}
    found = find_overdue(rt.store, schedules, now)
    senders = {c.name: _channel_sender(rt, c.name, c.max_attempts) for c in config.channels}
    lease = LOCAL_CLAIM_LEASE if remaining_ms is None else timedelta(milliseconds=remaining_ms) + CLAIM_MARGIN
    engine = Engine(config, rt.store, secrets=rt.secrets, senders=senders, claimer=claimer, claim_lease=lease)
    outcomes = [engine.record_missed(o.source, o.scheduled_time, o.reason) for o in found]
    recorded = [o for o in outcomes if not o.duplicate]
    # Routes that group (group_by/group_wait/group_interval): the groups due by now go out here, so a
    # grouped message is sent within one watchdog period of its due time (docs/architecture.md).
    engine.flush_groups(now)
    return {
        "sources": len(schedules),
        "overdue": [o.source for o in found],
        "recorded": len(recorded),
        "notifications": sum(len(o.notifications) for o in recorded),
    }


def _channel_sender(rt: Runtime, channel: str, max_attempts: int) -> ChannelSender:
    """A retrying sender through the runtime's adapter of `channel` (built on first send, with the
    stack's alerts topic and SES configuration set from NotifyEnvironment)."""
    from driftguard.notify.delivery import deliver

    def send(notification: Notification) -> DeliveryRecord:
        return deliver(notification, rt.channel(channel), max_attempts=max_attempts)

    return send


# ------------------------------------------------------------------------------------ notify function


# A notify invocation cannot outlive its timeout: its claim holds that long and this much more, then
# the next check of the source may take it over (the claimer crashed between claim and mark).
CLAIM_MARGIN = timedelta(seconds=30)


def notify(rt: Runtime, event: dict[str, Any], *, claimer: str, remaining_ms: int) -> dict[str, Any]:
    """Deliver one notification (by id: its body is read from the store) to its channel, at most
    once across executions: the ledger claims it first; one already delivered or being sent by
    another invocation is skipped. The state machine owns the retries: one attempt here, a typed
    error for it to retry (the claim is released first) or dead-letter."""
    from driftguard.notify.delivery import deliver_once

    nid = str(_required(event, "id"))
    started = time.perf_counter()

    def send_one(notification: Notification) -> DeliveryRecord:
        try:
            adapter = rt.channel(notification.channel)
        except DriftGuardError as e:  # cannot even be built (missing secret ...): nothing was sent
            raise PermanentDeliveryError(str(e)) from e
        try:
            adapter.send(notification, idempotency_key=notification.id)
        except DeliveryError as e:
            if e.retryable:
                raise RetryableDeliveryError(str(e), e.retry_after) from e
            raise PermanentDeliveryError(str(e)) from e
        return DeliveryRecord(
            notification_id=notification.id,
            channel=notification.channel,
            status=DeliveryStatus.DELIVERED,
            attempts=1,
            at=utcnow(),
        )

    request = ledger.ClaimRequest(claimer, utcnow(), timedelta(milliseconds=remaining_ms) + CLAIM_MARGIN)
    claim, record = deliver_once(rt.store, nid, send_one, request)
    channel = str(event.get("channel") or (record.channel if record else ""))
    if record is None:
        return {"id": nid, "channel": channel, "status": "skipped", "reason": claim.verdict.value}
    return {
        "id": nid,
        "channel": channel,
        "status": "delivered",
        "ms": round((time.perf_counter() - started) * 1000, 1),
    }
