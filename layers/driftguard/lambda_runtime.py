"""The AWS runtime behind the thin Lambda handlers in functions/: the same Engine as the CLI,
built once per container with AWS adapters (DynamoDB state, Secrets Manager credentials).

Check function actions (the event's `action`, default "check"):
- plan:               {"action": "plan", "cadence": ID, "shard": K, "scheduled_time": T}
                      -> {"sources": [{"source": NAME, "scheduled_time": T}, ...]}
- check:              {"source": NAME, "scheduled_time": T}
                      -> {"source", "scheduled_time", "status", "duplicate", "findings", "anomalies",
                          "firing", "duration_ms", "notifications": [{"id", "channel",
                          "type": "sns"|"lambda", "notification", "sns"?}]}
- record_failure:     {"action": "record_failure", "source", "scheduled_time", "error": {"Error", "Cause"}}
                      -> same shape as check (the failure goes through the alert lifecycle)
- record_deliveries:  {"action": "record_deliveries", "results": [{"id", "channel", "status", "error"?}]}
                      -> {"recorded": N}

Watchdog function: {"action": "watchdog", "time": T} -> {"sources", "overdue", "recorded", "notifications"}

Exactly-once notifications: the check commits the outbox before returning; the returned list is
the run's outbox entries NOT yet delivered, so a duplicate execution (Express is at-least-once)
returns nothing to send. The flow's final record_deliveries step marks what it delivered or
dead-lettered. Retryable errors (SourceUnavailable, QueryTimeout, StateConflict) propagate
with their class name as the Lambda errorType so the state machine's Retry matches them.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache, partial
from pathlib import Path
from typing import Any

from driftguard import errors
from driftguard.config import Config, SnsChannel, load_config
from driftguard.errors import DeliveryError, DriftGuardError
from driftguard.model import DeliveryRecord, DeliveryStatus, Notification, utc, utcnow
from driftguard.secrets import SecretResolver
from driftguard.store.base import Store


class RetryableDeliveryError(DeliveryError):
    """The channel may accept the notification later (5xx, 429, timeout): the flow retries."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message, retryable=True, retry_after=retry_after)


class PermanentDeliveryError(DeliveryError):
    """The channel refused the notification for good (4xx, bad config): dead-letter it."""

    def __init__(self, message: str) -> None:
        super().__init__(message, retryable=False)


@dataclass
class Runtime:
    config: Config
    store: Store
    secrets: SecretResolver


def _config_path() -> Path:
    name = os.environ.get("DRIFTGUARD_CONFIG", "driftguard.json")
    path = Path(name)
    if not path.is_absolute():
        path = Path(os.environ.get("LAMBDA_TASK_ROOT", ".")) / path
    return path


@cache
def runtime() -> Runtime:
    """Built once per container: config, store and secret resolver are reused by warm invocations."""
    config = load_config(_config_path())
    table = os.environ.get("DRIFTGUARD_STATE_TABLE")
    if not table:
        raise errors.ConfigError(
            "DRIFTGUARD_STATE_TABLE is not set: the check function needs its state table"
        )
    from driftguard.store.dynamodb import DynamoStore

    store = DynamoStore(table_name=table, retention_days=config.aws.retention_days)
    return Runtime(config=config, store=store, secrets=SecretResolver())


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
    """The firing's sources by database server, each with the firing's deadline (docs/scaling.md)."""
    from driftguard.schedules import SHARD_BUDGET, servers_for, servers_in_index

    scheduled = parse_time(_required(event, "scheduled_time")).isoformat()
    cadence, shard = str(_required(event, "cadence")), int(_required(event, "shard"))
    index = _plan_index()
    batches = servers_in_index(index, cadence, shard) if index else servers_for(rt.config, cadence, shard)
    deadline = (utcnow() + SHARD_BUDGET).isoformat()
    return {
        "servers": [
            {
                "max_concurrency": b.max_concurrency,
                "sources": [
                    {"source": n, "scheduled_time": scheduled, "deadline": deadline} for n in b.sources
                ],
            }
            for b in batches
        ]
    }


@cache
def _plan_index() -> str | None:
    """The schedule plan shipped beside the config (env DRIFTGUARD_PLAN), or None without one."""
    name = os.environ.get("DRIFTGUARD_PLAN")
    if not name:
        return None
    path = Path(name) if Path(name).is_absolute() else Path(os.environ.get("LAMBDA_TASK_ROOT", ".")) / name
    return path.read_text(encoding="utf-8")


def check(rt: Runtime, event: dict[str, Any]) -> dict[str, Any]:
    """Run the check; the summary has no notifications (see `undelivered`). An attempt that could not
    end before the firing's deadline is not started: the run is recorded as missed (a failure, so
    the lifecycle alerts after `error_after_failures` of them) and the firing ends in time."""
    source, at = str(_required(event, "source")), parse_time(_required(event, "scheduled_time"))
    late = _too_late(rt, source, event.get("deadline"))
    if late is not None:
        return summarize(_engine(rt).record_failure(source, at, late))
    return summarize(_engine(rt).check(source, at))


def _too_late(rt: Runtime, name: str, deadline: Any) -> errors.RunMissed | None:
    """Whether an attempt starting now could outlast the deadline: it may take its connect and
    statement timeouts (an attempt running longer ends at the function's timeout, which the deadline's
    margin to the Express limit absorbs: docs/scaling.md), then the recording of a failure."""
    from driftguard.schedules import TIMING

    if deadline is None:
        return None
    ends = parse_time(deadline, "deadline")
    source = rt.config.source(name)
    attempt = TIMING.attempt(source, rt.config.statement_timeout_of(source))
    if utcnow() + timedelta(seconds=attempt + TIMING.record_failure) <= ends:
        return None
    return errors.RunMissed(
        f"not checked: the firing ran out of time (an attempt could not end before {ends.isoformat()}); "
        "the shard is planned to fit, so look for a slow or unreachable database and throttling, "
        "or raise aws.check_concurrency (docs/scaling.md)"
    )


def record_failure(rt: Runtime, event: dict[str, Any]) -> dict[str, Any]:
    error = error_from_catch(_required(event, "error"))
    outcome = _engine(rt).record_failure(
        str(_required(event, "source")), parse_time(_required(event, "scheduled_time")), error
    )
    summary = summarize(outcome)
    return {**summary, "notifications": undelivered(rt, summary)}


def record_deliveries(rt: Runtime, event: dict[str, Any], *, metrics: Any | None = None) -> dict[str, Any]:
    """Mark what the state machine delivered (or dead-lettered) so it is never sent again."""
    results = _required(event, "results") or []
    # A parked delivery keeps its notification for replay: read the outbox only when one failed.
    failed = any(r.get("status") != "delivered" for r in results)
    pending = {n.id: n for n in rt.store.pending_notifications()} if failed else {}
    recorded = {"delivered": 0, "failed": 0}
    for result in results:
        nid = str(result.get("id", ""))
        delivered = result.get("status") == "delivered"
        previous = rt.store.delivery(nid) if nid else None
        if not nid or (previous is not None and previous.status == DeliveryStatus.DELIVERED):
            continue
        rt.store.record_delivery(
            DeliveryRecord(
                notification_id=nid,
                channel=str(result.get("channel", "")),
                status=DeliveryStatus.DELIVERED if delivered else DeliveryStatus.FAILED,
                attempts=int(result.get("attempts", 1)),
                at=utcnow(),
                error=None if delivered else _cause_text(result.get("error")),
                notification=None if delivered else pending.get(nid),
            )
        )
        recorded["delivered" if delivered else "failed"] += 1
    if metrics is not None:
        _add(metrics, "NotificationsSent", recorded["delivered"])
        _add(metrics, "NotificationsFailed", recorded["failed"])
    return {"recorded": recorded["delivered"] + recorded["failed"], **recorded}


def _engine(rt: Runtime) -> Any:
    from driftguard.engine import Engine

    # Deliveries are the state machine's job in AWS: the engine commits the outbox only.
    return Engine(
        rt.config,
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
    """The run's outbox entries not yet delivered, as state machine dispatch items.

    A run that put nothing in the outbox has nothing to deliver: the outbox is read only when the
    committed run created notifications (a quiet steady check saves a Query). A summary without the
    count (cached by idempotency from an older version) is read as "unknown"."""
    if summary.get("notified") == 0:
        return []
    at = parse_time(summary["scheduled_time"])
    pending = rt.store.pending_notifications(str(summary["source"]))
    return [dispatch_item(rt, n) for n in pending if n.run_time == at]


def emit_check_metrics(metrics: Any, rt: Runtime, summary: dict[str, Any]) -> None:
    """The documented custom metrics (namespace DriftGuard, dimension service). Sources with
    `dashboard: true` also get ChecksRun/Anomalies with a `source` dimension: custom metrics
    cost money, so per-source series exist only where a team asked for them."""
    if summary.get("duplicate"):
        return
    failed = summary["status"] == "failed"
    _add(metrics, "ChecksRun", 1)
    _add(metrics, "CheckFailures", 1 if failed else 0)
    _add(metrics, "Findings", summary["findings"])
    _add(metrics, "Anomalies", summary["anomalies"])
    _add(metrics, "AlertsFiring", summary["firing"])
    _add(metrics, "CheckDurationMs", summary["duration_ms"], unit="Milliseconds")
    source = next((s for s in rt.config.sources if s.name == summary["source"]), None)
    if source is not None and source.dashboard:
        from aws_lambda_powertools.metrics import MetricUnit, single_metric

        for name, value in (("ChecksRun", 1), ("Anomalies", summary["anomalies"])):
            with single_metric(name=name, unit=MetricUnit.Count, value=value, namespace=_namespace()) as m:
                m.add_dimension(name="source", value=source.name)


def _namespace() -> str:
    return os.environ.get("POWERTOOLS_METRICS_NAMESPACE", "DriftGuard")


def _add(metrics: Any, name: str, value: float, unit: str = "Count") -> None:
    from aws_lambda_powertools.metrics import MetricUnit

    metrics.add_metric(name=name, unit=MetricUnit(unit), value=value)


def dispatch_item(rt: Runtime, n: Notification) -> dict[str, Any]:
    """How the state machine delivers one notification: standard SNS topics through the service
    integration (no Lambda invocation), every other channel through the notify function. FIFO
    topics go through the notify function too: their group and dedup ids are optional fields a
    fixed Parameters block cannot carry."""
    channel = rt.config.channel(n.channel)
    topic = ""
    if isinstance(channel, SnsChannel):
        topic = channel.topic_arn or os.environ.get("DRIFTGUARD_ALERTS_TOPIC_ARN", "")
    direct_sns = bool(topic) and not topic.endswith(".fifo")
    item: dict[str, Any] = {
        "id": n.id,
        "channel": n.channel,
        "type": "sns" if direct_sns else "lambda",
        "notification": n.model_dump(mode="json"),
    }
    if direct_sns:
        from driftguard.notify.aws import sns_publish_request

        item["sns"] = sns_publish_request(n, topic_arn=topic, idempotency_key=n.id)
    return item


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


def watchdog(rt: Runtime, event: dict[str, Any]) -> dict[str, Any]:
    """Record a missed run for every source with no recorded run for two of its periods (see
    driftguard.watchdog) and deliver what that decides, here: no firing of the state machine
    runs for a source the watchdog speaks of. `time` is the Scheduler's scheduled time."""
    from driftguard.engine import Engine
    from driftguard.watchdog import latest_runs, overdue

    now = parse_time(event.get("time") or utcnow().isoformat(), "time")
    schedules = {s.name: rt.config.schedule_of(s) for s in rt.config.sources}
    found = overdue(schedules, latest_runs(rt.store, schedules), now)
    engine = Engine(rt.config, rt.store, secrets=rt.secrets, senders=_watchdog_senders(rt) if found else None)
    outcomes = [engine.record_missed(o.source, o.scheduled_time, o.reason) for o in found]
    recorded = [o for o in outcomes if not o.duplicate]
    return {
        "sources": len(schedules),
        "overdue": [o.source for o in found],
        "recorded": len(recorded),
        "notifications": sum(len(o.notifications) for o in recorded),
    }


def _watchdog_senders(rt: Runtime) -> dict[str, Any]:
    """Every channel's sender; SNS channels without their own topic use the stack's alerts topic
    (which the state machine's service integration uses for the checks' notifications)."""
    from driftguard import notify as channels

    topic = os.environ.get("DRIFTGUARD_ALERTS_TOPIC_ARN")
    senders: dict[str, Any] = {}
    for channel in rt.config.channels:
        adapter = channels.build_channel(channel, secrets=rt.secrets, default_topic_arn=topic)
        senders[channel.name] = partial(channels.deliver, adapter=adapter, max_attempts=channel.max_attempts)
    return senders


# ------------------------------------------------------------------------------------ notify function


def notify(rt: Runtime, event: dict[str, Any]) -> dict[str, Any]:
    """Deliver one notification to one channel, once. The state machine owns the retries: one
    attempt here, a typed error for it to retry or dead-letter."""
    from driftguard import notify as channels

    notification = Notification.model_validate(_required(event, "notification"))
    channel_name = str(event.get("channel") or notification.channel)
    done = rt.store.delivery(notification.id)
    if done is not None and done.status == DeliveryStatus.DELIVERED:
        return {"id": notification.id, "channel": channel_name, "status": "delivered", "duplicate": True}
    adapter = channels.build_channel(rt.config.channel(channel_name), secrets=rt.secrets)
    started = time.perf_counter()
    try:
        adapter.send(notification, idempotency_key=notification.id)
    except DeliveryError as e:
        if e.retryable:
            raise RetryableDeliveryError(str(e), e.retry_after) from e
        raise PermanentDeliveryError(str(e)) from e
    return {
        "id": notification.id,
        "channel": channel_name,
        "status": "delivered",
        "ms": round((time.perf_counter() - started) * 1000, 1),
    }
