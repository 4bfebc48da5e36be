"""Check function: plan a cadence shard, check one source, or record a failure / deliveries.

Thin by design: Powertools for logging, metrics, tracing and idempotency; everything else is
driftguard.lambda_runtime (the same engine as the CLI, with AWS adapters).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from typing import TYPE_CHECKING, Any, cast

from driftguard.lambda_init import long_lived

if TYPE_CHECKING:
    from driftguard.store.base import Store
    from driftguard.store.dynamodb import DynamoStore

# What the container keeps for its life is imported and built with the garbage collector paused,
# then frozen (driftguard.lambda_init: about 30 ms of a cold start).
with long_lived():
    from aws_lambda_powertools import Logger, Metrics, Tracer
    from aws_lambda_powertools.utilities.idempotency import (
        DynamoDBPersistenceLayer,
        IdempotencyConfig,
        idempotent_function,
    )
    from aws_lambda_powertools.utilities.typing import LambdaContext

    from driftguard import lambda_runtime as runtime
    from driftguard.contracts import CheckEnvironment, check_event

    logger = Logger()
    metrics = Metrics()
    # Patch only what a check calls: Tracer() alone patches every library X-Ray knows, and its
    # SQLAlchemy patch imports sqlalchemy.orm at init (about 0.7 s of cold start, bench/perf/cold_start).
    # botocore now; the database drivers once the config says which ones its sources use (container()).
    tracer = Tracer(patch_modules=("botocore",))

# Two executions for the same source and scheduled time (Express is at-least-once; operators
# re-run schedules) collect once: the second waits for or reuses the first's result. The check and
# the recording of its failure share the key: the first to run decides the firing's outcome.
idempotency = IdempotencyConfig(event_key_jmespath="[source, scheduled_time]", expires_after_seconds=6 * 3600)


def container() -> runtime.Runtime:
    """The runtime (built by the first invocation, then reused) and the idempotent check on the
    state store's DynamoDB client."""
    rt = runtime.runtime()
    idempotent_check(rt.store)
    return rt


@cache
def idempotent_check(store: Store) -> Callable[..., dict[str, Any]]:
    """`checked`, guarded by Powertools idempotency through the store's own DynamoDB client: one
    botocore client, so botocore lists its services and loads DynamoDB's model and endpoint rules
    once per container instead of once for each (about 60-80 ms of a cold start)."""
    persistence = DynamoDBPersistenceLayer(
        table_name=CheckEnvironment.from_environ().idempotency_table,
        boto3_client=cast("DynamoStore", store).client,  # the runtime's store is a DynamoStore
    )
    guard = idempotent_function(
        data_keyword_argument="event", persistence_store=persistence, config=idempotency
    )
    return guard(checked)


def checked(event: dict[str, Any]) -> dict[str, Any]:
    rt = container()
    source = event.get("source")
    if isinstance(source, str):
        # X-Ray on the database driver of this source before it connects: patching a driver imports
        # it (pymysql alone costs about 45 ms), so a container patches only what its checks use.
        # A no-op for drivers already patched; this also reads the source's config slice (cached).
        tracer.patch(runtime.database_drivers(rt.source_config(source)))
    result = runtime.check(rt, event)
    runtime.emit_check_metrics(metrics, rt, result)
    return result


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    action = check_event(event).action
    rt = container()
    if "source" in event:
        logger.set_correlation_id(f"{event['source']}@{event.get('scheduled_time')}")
    if action == "plan":
        return runtime.plan(rt, event)
    if action == "record_deliveries":
        return runtime.record_deliveries(rt, event, metrics=metrics)
    idempotency.register_lambda_context(context)
    key = {"source": event.get("source"), "scheduled_time": event.get("scheduled_time")}
    if action == "record_failure":
        key["error"] = event.get("error")
    if "deadline" in event:  # not part of the idempotency key ([source, scheduled_time])
        key["deadline"] = event["deadline"]
    guarded = idempotent_check(rt.store)
    summary = runtime.once_per_firing(lambda: guarded(event=key), context.get_remaining_time_in_millis())
    # Notifications are read from the outbox after the idempotent part: ids of what still waits (the
    # notify step claims each one, so a duplicate execution sends nothing again).
    return {**summary, "notifications": runtime.undelivered(rt, summary)}
