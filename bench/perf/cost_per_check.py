"""Cost per check in AWS: API calls, DynamoDB capacity and SQL round trips of the check Lambda.

.venv/bin/python -m bench.perf.cost_per_check [--quick] [--json PATH]

The real handler (functions/check/handler.py, Powertools idempotency and all) runs under moto
(`mock_aws`) against the real local PostgreSQL: one source of 5 event tables (freshness and hourly
volume by timestamp, learned schema), its password in Secrets Manager. Checks run every 15 minutes of
logical time, three new rows per table landing before each, so the source stays quiet; the 1st check
backfills history, the 3rd and later are steady state. Then the same source's checks alternate
between that container and a second one (another warm container of the function): what a check
costs when the container running it did not check the source last. Every AWS call is counted where all of them
pass, `botocore.client.BaseClient._make_api_call`; DynamoDB capacity is computed from the items
each request reads and writes, by DynamoDB's sizing rules (moto's ConsumedCapacity is a constant);
SQL round trips are the collector's own counters (Snapshot.round_trips, TableSnapshot.round_trips).
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import json
import math
import os
import re
import statistics
import tempfile
from collections import Counter, defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import ModuleType
from typing import Any

import sqlalchemy as sa
import yaml

from bench.perf import pg
from bench.perf.report import REPO, Budget, Report, Unavailable, main

TABLES = 5
CHECK_EVERY = timedelta(minutes=15)
NEW_ROWS_PER_CHECK = 3  # one every five minutes, as the history
STEADY_FROM = 3  # the 3rd check onwards
ALTERNATING = 6  # then checks alternating between two containers, the new one first
BUDGET_AWS_CALLS = 3
BUDGET_ROUND_TRIPS_PER_TABLE = 2
REGION = "eu-west-1"
STATE_TABLE = "driftguard-state"
IDEMPOTENCY_TABLE = "driftguard-idempotency"
SECRET = "driftguard/sources/bench-pg"
SOURCE = "bench-pg"
HISTORY_HOURS = 14 * 24


# --------------------------------------------------------------------------- DynamoDB capacity


def attribute_size(value: dict[str, Any]) -> int:
    """Bytes of one DynamoDB attribute value, by DynamoDB's item size rules."""
    (kind, inner), *_ = value.items()
    if kind == "S":
        return len(inner.encode())
    if kind == "N":
        digits = len(str(inner).lstrip("-").replace(".", "").strip("0")) or 1
        return math.ceil(digits / 2) + 1
    if kind == "B":
        return len(inner)
    if kind in ("BOOL", "NULL"):
        return 1
    if kind in ("SS", "NS", "BS"):
        return sum(attribute_size({kind[0]: v}) for v in inner)
    if kind == "M":
        return 3 + sum(len(k.encode()) + attribute_size(v) + 1 for k, v in inner.items())
    if kind == "L":
        return 3 + sum(attribute_size(v) + 1 for v in inner)
    raise ValueError(f"unknown DynamoDB attribute type {kind}")


def item_size(item: dict[str, Any]) -> int:
    return sum(len(name.encode()) + attribute_size(value) for name, value in item.items())


def _units(size: int, unit: int) -> int:
    return max(1, math.ceil(size / unit))


def capacity(operation: str, params: dict[str, Any], response: dict[str, Any]) -> tuple[float, float]:
    """(read units, write units) of one DynamoDB request: reads 4 KB units (half for eventually
    consistent), writes 1 KB units, transactional writes twice that, at least one unit per item."""
    factor = 1.0 if params.get("ConsistentRead") else 0.5
    if operation == "GetItem":
        return _units(item_size(response.get("Item", {})), 4096) * factor, 0
    if operation == "BatchGetItem":
        reads = 0.0
        for table, request in params["RequestItems"].items():
            consistent = 1.0 if request.get("ConsistentRead") else 0.5
            found = response.get("Responses", {}).get(table, [])
            reads += sum(_units(item_size(i), 4096) * consistent for i in found)
            reads += (len(request["Keys"]) - len(found)) * consistent  # a missing key costs one unit
        return reads, 0
    if operation in ("Query", "Scan"):
        return _units(sum(item_size(i) for i in response.get("Items", [])), 4096) * factor, 0
    if operation == "PutItem":
        return 0, _units(item_size(params["Item"]), 1024)
    if operation == "UpdateItem":  # the key and the new values: the updated item's size, nearly
        values = params.get("ExpressionAttributeValues", {})
        return 0, _units(item_size(params["Key"]) + sum(attribute_size(v) for v in values.values()), 1024)
    if operation == "DeleteItem":
        return 0, 1
    if operation == "BatchWriteItem":
        writes = 0
        for requests in params["RequestItems"].values():
            for r in requests:
                writes += _units(item_size(r["PutRequest"]["Item"]), 1024) if "PutRequest" in r else 1
        return 0, writes
    if operation == "TransactWriteItems":
        writes = 0
        for action in params["TransactItems"]:
            put = action.get("Put")
            writes += 2 * (_units(item_size(put["Item"]), 1024) if put else 1)
        return 0, writes
    return 0, 0


# --------------------------------------------------------------------------- counting calls


@dataclass
class Call:
    service: str
    operation: str
    purpose: str
    read_units: float = 0.0
    write_units: float = 0.0


@dataclass
class CallLog:
    calls: list[Call] = field(default_factory=list)


PARTITION = re.compile(r"^([A-Z]+)(#|$)")


def _strings(node: Any) -> Iterator[str]:
    """Every string attribute value ({"S": ...}) anywhere in a request."""
    if isinstance(node, dict):
        if isinstance(node.get("S"), str):
            yield node["S"]
        for value in node.values():
            yield from _strings(value)
    elif isinstance(node, list):
        for value in node:
            yield from _strings(value)


def purpose(service: str, params: dict[str, Any]) -> str:
    """What a call is for: the idempotency record, a secret, or the kinds of state item it touches
    (the partition keys' prefixes: RUN, SNAP, SERIES, STATE, LOCK, ...; docs/dynamodb.md)."""
    if service != "dynamodb":
        return f"secret {params['SecretId']}" if "SecretId" in params else service
    if IDEMPOTENCY_TABLE in json.dumps(params, default=str):
        return "Powertools idempotency record"
    kinds = {m.group(1) for text in _strings(params) if (m := PARTITION.match(text))}
    return "+".join(sorted(kinds)) + " items" if kinds else "state table"


@contextlib.contextmanager
def counting_calls() -> Iterator[CallLog]:
    """Record every botocore API call made inside the block (all clients, all services)."""
    from botocore.client import BaseClient

    log = CallLog()
    original = BaseClient._make_api_call

    def recorded(client: BaseClient, operation: str, params: dict[str, Any]) -> Any:
        service = client.meta.service_model.service_name
        try:
            response = original(client, operation, params)
        except Exception:
            # A refused call (a cancelled transaction, a failed condition) is a call too; it is
            # charged as if it had written, which DynamoDB does for a cancelled transaction's items.
            reads, writes = capacity(operation, params, {}) if service == "dynamodb" else (0.0, 0.0)
            log.calls.append(Call(service, operation, purpose(service, params) + " (refused)", reads, writes))
            raise
        reads, writes = capacity(operation, params, response) if service == "dynamodb" else (0.0, 0.0)
        log.calls.append(Call(service, operation, purpose(service, params), reads, writes))
        return response

    BaseClient._make_api_call = recorded
    try:
        yield log
    finally:
        BaseClient._make_api_call = original


# --------------------------------------------------------------------------- the setting


@dataclass
class LambdaContext:
    function_name: str = "driftguard-check"
    memory_limit_in_mb: int = 512
    invoked_function_arn: str = f"arn:aws:lambda:{REGION}:123456789012:function:driftguard-check"
    aws_request_id: str = "bench"

    def get_remaining_time_in_millis(self) -> int:
        return 300_000


def aws_environment(config: Path) -> dict[str, str]:
    return {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_REGION": REGION,
        "AWS_DEFAULT_REGION": REGION,
        "DRIFTGUARD_CONFIG": str(config),
        "DRIFTGUARD_STATE_TABLE": STATE_TABLE,
        "DRIFTGUARD_IDEMPOTENCY_TABLE": IDEMPOTENCY_TABLE,
        "POWERTOOLS_SERVICE_NAME": "driftguard",
        "POWERTOOLS_METRICS_NAMESPACE": "DriftGuard",
        # Tracing sends UDP to the X-Ray daemon, not API calls; off so unpatched moto calls stay quiet.
        "POWERTOOLS_TRACE_DISABLED": "true",
    }


@contextlib.contextmanager
def environment(values: dict[str, str]) -> Iterator[None]:
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def load_handler() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_check_handler", REPO / "functions/check/handler.py")
    if spec is None or spec.loader is None:
        raise Unavailable("functions/check/handler.py cannot be loaded")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def create_aws_resources() -> None:
    from driftguard.moto_stack import create_stack_resources

    secret = json.dumps({"username": pg.USER, "password": "unused-trust-auth"})
    create_stack_resources(
        region=REGION, state_table=STATE_TABLE, idempotency_table=IDEMPOTENCY_TABLE, secrets={SECRET: secret}
    )


def write_config(directory: Path, schema: str, names: list[str]) -> Path:
    entry = pg.source(SOURCE, schema, [pg.timestamp_checks(n) for n in names])
    entry["connection"]["password_secret"] = SECRET
    path = directory / "driftguard.yaml"
    path.write_text(yaml.safe_dump({"version": 1, "sources": [entry]}, sort_keys=False))
    return path


def land_rows(engine: sa.Engine, schema: str, names: list[str], first_hour: datetime, check: int) -> None:
    """The rows loaded in the 15 minutes before check number `check`, five minutes apart."""
    rows = HISTORY_HOURS * pg.ROWS_PER_HOUR
    with engine.connect() as c:
        for name in names:
            for j in range(NEW_ROWS_PER_CHECK * max(0, check - 2), NEW_ROWS_PER_CHECK * (check - 1)):
                at = first_hour + timedelta(minutes=5 * j)
                c.exec_driver_sql(
                    f'insert into "{schema}"."{name}" values (%s, %s, %s, 1.0)',  # noqa: S608 - our names
                    (rows + 1 + j, at, at),
                )


@dataclass
class CheckCost:
    number: int
    calls: list[Call]
    round_trips: int
    table_round_trips: list[int]
    status: str
    findings: int
    anomalies: int
    duration_ms: float  # the engine's own run time (collect, detect, decide, commit), under moto
    log_bytes: int  # what the handler wrote to stdout: CloudWatch Logs ingestion (logs + EMF metrics)
    container: str = "A"

    @property
    def aws_calls(self) -> int:
        """Calls other than Secrets Manager's (a new container fetches the secret once)."""
        return sum(c.service != "secretsmanager" for c in self.calls)

    @property
    def read_units(self) -> float:
        return sum(c.read_units for c in self.calls)

    @property
    def write_units(self) -> float:
        return sum(c.write_units for c in self.calls)


def measure(quick: bool) -> list[CheckCost]:
    from moto import mock_aws

    from driftguard import lambda_runtime
    from driftguard.collect import collector as collector_module

    checks = 4 if quick else 8
    alternating = 2 if quick else ALTERNATING
    engine = pg.admin_engine()
    names = [f"events_{i}" for i in range(TABLES)]
    snapshots: list[Any] = []
    collect = collector_module.Collector.collect

    def keep_snapshot(self: Any, scheduled_time: datetime, last_reads: Any = None) -> Any:
        snapshots.append(collect(self, scheduled_time, last_reads))
        return snapshots[-1]

    costs: list[CheckCost] = []
    with (
        pg.scratch_schema(engine, "bench_cost") as schema,
        tempfile.TemporaryDirectory() as tmp,
    ):
        pg.create_event_tables(engine, schema, names, hours=HISTORY_HOURS)
        with engine.connect() as c:
            first = c.exec_driver_sql("select date_trunc('hour', now())").scalar_one().astimezone(UTC)
        config = write_config(Path(tmp), schema, names)
        with environment(aws_environment(config)), mock_aws():
            create_aws_resources()
            handler = load_handler()
            handler.runtime.runtime.cache_clear()  # built per container: this one's config and tables
            collector_module.Collector.collect = keep_snapshot  # type: ignore[method-assign]
            built = lambda_runtime.runtime
            containers: dict[str, Any] = {}
            try:
                for number in range(1, checks + alternating + 1):
                    # Container A runs the first `checks`; then B (a new one), A, B, ... take turns.
                    name = "A" if number <= checks or (number - checks) % 2 == 0 else "B"
                    if name not in containers:
                        containers[name] = built.__wrapped__()
                    lambda_runtime.runtime = lambda name=name: containers[name]  # type: ignore[assignment]
                    land_rows(engine, schema, names, first, number)
                    at = first + (number - 1) * CHECK_EVERY
                    event = {"source": SOURCE, "scheduled_time": at.isoformat()}
                    captured = io.StringIO()
                    with counting_calls() as log, contextlib.redirect_stdout(captured):
                        result = handler.handler(event, LambdaContext(aws_request_id=f"bench-{number}"))
                    snapshot = snapshots[-1]
                    costs.append(
                        CheckCost(
                            number,
                            log.calls,
                            snapshot.round_trips,
                            [t.round_trips for t in snapshot.tables],
                            result["status"],
                            result["findings"],
                            result["anomalies"],
                            result["duration_ms"],
                            len(captured.getvalue().encode()),
                            name,
                        )
                    )
            finally:
                lambda_runtime.runtime = built  # type: ignore[assignment]
                collector_module.Collector.collect = collect  # type: ignore[method-assign]
                handler.runtime.runtime.cache_clear()
                from driftguard.collect.connect import dispose_engines

                dispose_engines()
    engine.dispose()
    return costs


def steady_state(costs: list[CheckCost]) -> tuple[list[CheckCost], list[CheckCost]]:
    """The steady-state checks: those in the one container that checked the source last, and those
    of containers taking turns, after each container's first turn."""
    turns_from = min((c.number for c in costs if c.container == "B"), default=costs[-1].number + 1)
    one = [c for c in costs if STEADY_FROM <= c.number < turns_from]
    return one, [c for c in costs if c.number >= turns_from + 2]


def run(quick: bool = False) -> Report:
    report = Report("Cost per check: AWS calls, DynamoDB capacity, SQL round trips", quick)
    try:
        costs = measure(quick)
    except Unavailable as e:
        report.problems.append(f"cost per check NOT MEASURED: {e}")
        return report
    steady, settled = steady_state(costs)
    turns = [c for c in costs if c.number > steady[-1].number]
    per_check = report.table(
        f"Each check of one source of {TABLES} tables (check 1 backfills; {STEADY_FROM}-{steady[-1].number} "
        f"are steady state in one container, A; then containers B and A take turns)",
        "check",
        "container",
        "status",
        "findings",
        "anomalies",
        "AWS calls",
        "DynamoDB RCU",
        "DynamoDB WCU",
        "SQL round trips",
        "per table (counter)",
        "per table (all / tables)",
        "check ms",
        "log bytes",
    )
    for c in costs:
        per_check.add(
            c.number,
            c.container,
            c.status,
            c.findings,
            c.anomalies,
            len(c.calls),
            c.read_units,
            c.write_units,
            c.round_trips,
            "/".join(map(str, c.table_round_trips)),
            round(c.round_trips / TABLES, 2),
            c.duration_ms,
            c.log_bytes,
        )

    breakdown = report.table(
        f"Where a steady-state check's AWS calls go (mean over checks {STEADY_FROM}-{steady[-1].number})",
        "service",
        "operation",
        "for",
        "calls",
        "RCU",
        "WCU",
    )
    totals: dict[tuple[str, str, str], list[float]] = defaultdict(lambda: [0.0, 0.0, 0.0])
    for c in steady:
        for call in c.calls:
            entry = totals[(call.service, call.operation, call.purpose)]
            entry[0] += 1
            entry[1] += call.read_units
            entry[2] += call.write_units
    for (service, operation, what), (n, reads, writes) in sorted(totals.items(), key=lambda kv: -kv[1][0]):
        breakdown.add(service, operation, what, n / len(steady), reads / len(steady), writes / len(steady))

    calls = statistics.median(len(c.calls) for c in steady)
    trips = max(c.round_trips / TABLES for c in steady)
    report.budgets.append(
        Budget(
            "AWS calls per steady-state check", f"<= {BUDGET_AWS_CALLS}", f"{calls:g} (median)", calls <= 3
        )
    )
    report.budgets.append(
        Budget(
            "SQL round trips per table, steady state (all statements of the check / tables)",
            f"<= {BUDGET_ROUND_TRIPS_PER_TABLE}",
            f"{trips:.2g} (max over steady checks)",
            trips <= BUDGET_ROUND_TRIPS_PER_TABLE,
        )
    )
    if turns:
        report.notes.append(
            "checks alternating between two containers (B new): AWS calls per check, not counting a new "
            f"container's one Secrets Manager call: {' / '.join(str(c.aws_calls) for c in turns)} "
            f"(checks {turns[0].number}-{turns[-1].number}); median after each container's first turn: "
            f"{statistics.median(c.aws_calls for c in settled or turns):g}"
        )
    own = statistics.median(sum("Powertools" not in c.purpose for c in k.calls) for k in steady)
    first_services = dict(Counter(c.service for c in costs[0].calls))
    later_secrets = sum(c.service == "secretsmanager" for k in costs[1 : steady[-1].number] for c in k.calls)
    report.notes += [
        f"check 1 made {len(costs[0].calls)} AWS calls {first_services}; Secrets Manager calls in container "
        f"A after it: {later_secrets} (Powertools parameters cache, max_age 300 s)",
        f"a steady check's own calls, without the Powertools idempotency record (conditional put, then "
        f"update): {own:g} (median)",
        "RCU/WCU are computed from item sizes (requests' items for writes, responses' items for reads; a "
        "Query/Scan is charged on what it returned, a filter's discarded items are not counted; UpdateItem "
        "on key + new values; DeleteItem and ConditionCheck at one unit, x2 in a transaction)",
        "'per table (counter)' is TableSnapshot.round_trips; 'all / tables' divides every statement of the "
        "check (connection setup, catalog, tables) by the number of tables",
        "the Lambda's EMF metrics and logs go to stdout (CloudWatch Logs), not API calls; X-Ray is off here",
        "a container answers a check's read of its source from memory only after a read found the source as "
        "it had left it (nobody else wrote in between), and reads again once a commit on memory is refused: "
        "where a source's checks move between containers each check reads (one Query), and the check that "
        "finds its memory overtaken pays for one refused transaction (see DynamoStore.load_source)",
    ]
    return report


def entry(argv: Sequence[str] | None = None) -> int:
    return main(run, __doc__, argv)


if __name__ == "__main__":
    raise SystemExit(entry())
