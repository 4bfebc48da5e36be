"""The AWS flow end to end, with no AWS: the state machine synthesized by the CDK stack runs in
moto's Step Functions interpreter (real ASL: Map, Choice, Retry with jitter, Catch), its Lambda
tasks are dispatched in-process to the real handlers, against a real PostgreSQL source and moto's
DynamoDB, SNS, SQS and Secrets Manager.
"""

from __future__ import annotations

import importlib.util
import json
import re
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import ModuleType
from typing import Any

import boto3
import pytest
import sqlalchemy as sa
import yaml

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "infra"))

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

REGION = "us-east-1"
ACCOUNT = "123456789012"
CHECK_ARN = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:driftguard-check"
NOTIFY_ARN = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:driftguard-notify"
STATE_TABLE = "driftguard-state"
IDEMPOTENCY_TABLE = "driftguard-idempotency"
T1 = datetime(2026, 11, 17, 11, 0, tzinfo=UTC)  # a Tuesday, 11:00


@pytest.fixture(scope="module")
def asl_template(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The state machine definition from the synthesized stack, CloudFormation tokens flattened
    to <LogicalId.Attr> placeholders (replaced per test with moto's ARNs and URLs)."""
    import stack_helpers

    synth = stack_helpers.synthesize(REPO / "examples" / "aws-basic.yaml", tmp_path_factory.mktemp("cdk"))
    machines = synth.resources("AWS::StepFunctions::StateMachine")
    assert len(machines) == 1, f"expected one state machine, found {sorted(machines)}"
    (machine,) = machines.values()
    assert machine["Properties"]["StateMachineType"] == "EXPRESS"
    return str(stack_helpers.flat(machine["Properties"]["DefinitionString"]))


def _load(name: str, path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@dataclass
class LambdaContext:
    function_name: str = "driftguard-check"
    memory_limit_in_mb: int = 512
    invoked_function_arn: str = CHECK_ARN
    aws_request_id: str = field(default_factory=lambda: uuid.uuid4().hex)

    def get_remaining_time_in_millis(self) -> int:
        return 60_000


@dataclass
class World:
    """One test's AWS: moto resources, the state machine, and what the handlers were asked."""

    sfn: Any
    machine_arn: str
    sqs: Any
    alerts_queue_url: str
    dlq_url: str
    config_path: Path
    invocations: list[tuple[str, dict[str, Any]]]
    faults: dict[str, list[Exception]]  # source -> errors the next check invocations raise

    def execute(self, scheduled_time: datetime, name: str | None = None) -> dict[str, Any]:
        from driftguard.config import load_config
        from driftguard.schedules import plan_schedules

        (group,) = plan_schedules(load_config(self.config_path))
        payload = {
            "action": "plan",
            "cadence": group.cadence_id,
            "shard": group.shard,
            "scheduled_time": scheduled_time.isoformat().replace("+00:00", "Z"),
            "max_concurrency": group.max_concurrency,
        }
        arn = self.sfn.start_execution(
            stateMachineArn=self.machine_arn, name=name or uuid.uuid4().hex, input=json.dumps(payload)
        )["executionArn"]
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            desc = self.sfn.describe_execution(executionArn=arn)
            if desc["status"] != "RUNNING":
                assert desc["status"] == "SUCCEEDED", desc
                return desc
            time.sleep(0.1)
        raise AssertionError(f"execution {arn} did not finish in 120 s")

    def sns_messages(self) -> list[dict[str, Any]]:
        out = []
        while True:
            got = self.sqs.receive_message(QueueUrl=self.alerts_queue_url, MaxNumberOfMessages=10)
            msgs = got.get("Messages", [])
            if not msgs:
                return out
            for m in msgs:
                out.append(json.loads(m["Body"]))
                self.sqs.delete_message(QueueUrl=self.alerts_queue_url, ReceiptHandle=m["ReceiptHandle"])

    def checks_of(self, source: str) -> list[dict[str, Any]]:
        return [
            e
            for fn, e in self.invocations
            if fn == "check" and e.get("source") == source and "action" not in e
        ]


def _dispatcher(handlers: dict[str, Callable[..., Any]], world_ref: dict[str, World]) -> Callable[..., bytes]:
    """Replaces moto's LambdaBackend.invoke: run the real handler; an exception becomes a Lambda
    FunctionError whose errorType is the class name, exactly what the state machine's Retry matches.

    moto runs a Map's iterations in threads, but a Lambda container runs one invocation at a time,
    and the handlers' module-level Powertools objects rely on it (Metrics flushes and clears its
    set at the end of each invocation; two at once in one process race on it). So each function's
    invocations take turns here, as in one container."""
    turns = {name: threading.Lock() for name in handlers}

    def invoke(
        _backend: Any,
        function_name: str,
        _qualifier: Any,
        body: Any,
        _headers: Any,
        response_headers: dict[str, str],
    ) -> bytes:
        name = "check" if function_name.endswith("driftguard-check") else "notify"
        event = json.loads(body or "{}")
        world = world_ref["world"]
        world.invocations.append((name, event))
        try:
            faults = world.faults.get(str(event.get("source")), []) if name == "check" else []
            if faults and "action" not in event:
                raise faults.pop(0)
            with turns[name]:
                result = handlers[name](event, LambdaContext())
            payload = json.dumps(result).encode()
        except Exception as e:
            response_headers["x-amz-function-error"] = "Unhandled"
            payload = json.dumps({"errorType": type(e).__name__, "errorMessage": str(e)}).encode()
        response_headers["Content-Length"] = str(len(payload))
        return payload

    return invoke


def _resolve(template: str, tokens: dict[str, str]) -> str:
    def sub(m: re.Match[str]) -> str:
        token = m.group(1)
        for needle, value in tokens.items():
            if needle in token:
                return value
        raise AssertionError(f"unresolved CloudFormation token <{token}> in the state machine definition")

    return re.sub(r"<([A-Za-z0-9:.]+)>", sub, template)


def _config(pg: Any, tmp_path: Path, *, extra_sources: list[dict[str, Any]] | None = None) -> Path:
    source = {
        **pg.source_yaml("shop"),
        "schedule": {"rate": "1h"},
        "tables": [
            {
                "name": "orders",
                "schema": pg.schema,
                "checks": {
                    "volume": {"column": "created_at", "period": "1h"},
                    "freshness": {"column": "created_at"},
                    "schema": True,
                },
            }
        ],
    }
    source["connection"]["password_secret"] = "driftguard/shop"
    config = {
        "sources": [source, *(extra_sources or [])],
        "channels": [
            {"name": "alerts", "type": "sns"},
            {"name": "audit", "type": "file", "path": str(tmp_path / "audit.jsonl")},
        ],
        "route": {"receivers": ["alerts", "audit"]},
        "alerting": {"error_after_failures": 1, "repeat_interval": "4h"},
    }
    path = tmp_path / "driftguard.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def _seed_orders(pg: Any, until: datetime, *, hours: int = 24 * 21, per_hour: int = 40) -> None:
    """`per_hour` orders in every hour of the `hours` before `until`."""
    start = until - timedelta(hours=hours)
    with pg.engine.begin() as conn:
        conn.exec_driver_sql(
            "create table orders (id bigserial primary key, amount numeric, created_at timestamptz not null)"
        )
        conn.execute(
            sa.text(
                "insert into orders (amount, created_at) select 10, h + (n * interval '1 minute') "
                "from generate_series(:start, :last, interval '1 hour') h, generate_series(1, :per_hour) n"
            ),
            {"start": start, "last": until - timedelta(hours=1), "per_hour": per_hour},
        )
        conn.exec_driver_sql("analyze orders")


def _one_order(pg: Any, at: datetime) -> None:
    with pg.engine.begin() as conn:
        conn.execute(sa.text("insert into orders (amount, created_at) values (10, :at)"), {"at": at})


def _normal_hour(pg: Any, start: datetime, per_hour: int = 40) -> None:
    with pg.engine.begin() as conn:
        conn.execute(
            sa.text(
                "insert into orders (amount, created_at) "
                "select 10, cast(:start as timestamptz) + (n * interval '1 minute') "
                "from generate_series(1, :per_hour) n"
            ),
            {"start": start, "per_hour": per_hour},
        )


@pytest.fixture
def world(
    pg: Any, tmp_path: Path, asl_template: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[World, Callable[..., None]]]:
    from moto import mock_aws

    for key, value in {
        "AWS_DEFAULT_REGION": REGION,
        "AWS_REGION": REGION,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "DRIFTGUARD_STATE_TABLE": STATE_TABLE,
        "DRIFTGUARD_IDEMPOTENCY_TABLE": IDEMPOTENCY_TABLE,
        "POWERTOOLS_TRACE_DISABLED": "1",
        "POWERTOOLS_SERVICE_NAME": "driftguard",
        "POWERTOOLS_METRICS_NAMESPACE": "DriftGuard",
    }.items():
        monkeypatch.setenv(key, value)
    with mock_aws(config={"stepfunctions": {"execute_state_machine": True}, "lambda": {"use_docker": False}}):
        from driftguard import lambda_runtime
        from driftguard.moto_stack import create_stack_resources

        resources = create_stack_resources(
            region=REGION,
            state_table=STATE_TABLE,
            idempotency_table=IDEMPOTENCY_TABLE,
            secrets={"driftguard/shop": json.dumps({"username": "postgres", "password": "unused"})},
        )
        topic, dlq = resources.topic_arn, resources.dlq_url
        sqs = boto3.client("sqs", region_name=REGION)
        alerts_queue = sqs.create_queue(QueueName="alerts-inbox")["QueueUrl"]
        alerts_queue_arn = sqs.get_queue_attributes(QueueUrl=alerts_queue, AttributeNames=["QueueArn"])
        boto3.client("sns", region_name=REGION).subscribe(
            TopicArn=topic, Protocol="sqs", Endpoint=alerts_queue_arn["Attributes"]["QueueArn"]
        )
        monkeypatch.setenv("DRIFTGUARD_ALERTS_TOPIC_ARN", topic)
        monkeypatch.setenv("DRIFTGUARD_DLQ_URL", dlq)

        handlers = {
            "check": _load("driftguard_check_handler", REPO / "functions" / "check" / "handler.py").handler,
            "notify": _load(
                "driftguard_notify_handler", REPO / "functions" / "notify" / "handler.py"
            ).handler,
        }
        world_ref: dict[str, World] = {}
        from moto.awslambda_simple.models import LambdaSimpleBackend

        # use_docker False selects moto's "simple" Lambda backend; its invoke runs our handlers.
        monkeypatch.setattr(LambdaSimpleBackend, "invoke", _dispatcher(handlers, world_ref))
        definition = _resolve(
            asl_template,
            {
                "CheckFunction": CHECK_ARN,
                "NotifyFunction": NOTIFY_ARN,
                "Queue": dlq,
                "Topic": topic,
                "AWS::Partition": "aws",
                "AWS::Region": REGION,
                "AWS::AccountId": ACCOUNT,
            },
        )
        sfn = boto3.client("stepfunctions", region_name=REGION)
        machine = sfn.create_state_machine(
            name="driftguard-checks",
            definition=definition,
            type="EXPRESS",
            roleArn=f"arn:aws:iam::{ACCOUNT}:role/driftguard-states",
        )["stateMachineArn"]

        def configure(**kw: Any) -> None:
            path = _config(pg, tmp_path, **kw)
            monkeypatch.setenv("DRIFTGUARD_CONFIG", str(path))
            lambda_runtime.runtime.cache_clear()
            world_ref["world"].config_path = path

        w = World(sfn, machine, sqs, alerts_queue, dlq, Path(), [], {})
        world_ref["world"] = w
        configure()
        yield w, configure
        lambda_runtime.runtime.cache_clear()


def _store() -> Any:
    from driftguard.store.dynamodb import DynamoStore

    return DynamoStore(table_name=STATE_TABLE, region=REGION)


def _state_of(source: str) -> tuple[Any, ...]:
    """Everything a run can change for a source: snapshots, the audit trail, state versions."""
    store = _store()
    return (
        [s.model_dump() for s in store.snapshots(source, limit=10)],
        [t.id for t in store.transitions(source, limit=100)],
        sorted((s.fingerprint, s.version) for s in store.alert_states(source)),
    )


def test_healthy_run_stores_a_snapshot_and_sends_nothing(world: tuple[World, Any], pg: Any) -> None:
    w, _ = world
    _seed_orders(pg, T1)
    w.execute(T1)
    store = _store()
    snaps = store.snapshots("shop", limit=10)
    assert [s.scheduled_time for s in snaps] == [T1]
    assert snaps[0].table("orders") is not None and snaps[0].table("orders").period_counts[-1].count == 40
    assert w.sns_messages() == []
    assert store.get_run("shop", T1) is not None


def _healthy_then_broken(w: World, pg: Any) -> None:
    """A healthy hour at T1, then a load of one row where 40 are normal, checked at T1 + 1h."""
    _seed_orders(pg, T1)
    w.execute(T1)
    _one_order(pg, T1 + timedelta(minutes=7))
    w.execute(T1 + timedelta(hours=1))


def test_broken_load_fires_one_alert_and_one_sns_message(world: tuple[World, Any], pg: Any) -> None:
    w, _ = world
    _healthy_then_broken(w, pg)
    messages = w.sns_messages()
    assert len(messages) == 1, messages
    attributes = {k: v["Value"] for k, v in messages[0]["MessageAttributes"].items()}
    assert attributes["source"] == "shop" and attributes["severity"] in ("warning", "critical")
    assert "orders" in messages[0]["Message"] and "1 row" in messages[0]["Message"]
    firing = [s for s in _store().alert_states("shop") if s.state.value == "FIRING"]
    assert [s.key.metric for s in firing] == ["rows_per_period"]
    # The file channel went through the notify function, and both deliveries were recorded.
    audit = [json.loads(line) for line in (w.config_path.parent / "audit.jsonl").read_text().splitlines()]
    assert len(audit) == 1 and audit[0]["source"] == "shop"
    assert _store().pending_notifications("shop") == []


def test_a_source_that_fails_twice_is_retried_and_stores_one_snapshot(
    world: tuple[World, Any], pg: Any
) -> None:
    from driftguard.errors import SourceUnavailable

    w, _ = world
    _seed_orders(pg, T1)
    w.faults["shop"] = [SourceUnavailable("connection reset"), SourceUnavailable("connection reset")]
    w.execute(T1)
    assert len(w.checks_of("shop")) == 3  # two failures retried by the state machine, then success
    assert [s.scheduled_time for s in _store().snapshots("shop", limit=10)] == [T1]
    assert not [e for fn, e in w.invocations if e.get("action") == "record_failure"]
    assert w.sns_messages() == []


def test_a_source_that_stays_down_raises_one_error_alert(world: tuple[World, Any], pg: Any) -> None:
    w, configure = world
    _seed_orders(pg, T1)
    down = {
        "name": "ledger",
        "kind": "postgres",
        "schedule": {"rate": "1h"},
        "connection": {
            "host": "127.0.0.1",
            "port": 1,
            "database": "test",
            "user": "postgres",
            "connect_timeout": "2s",
        },
        "tables": [{"name": "entries"}],
    }
    configure(extra_sources=[down])
    w.execute(T1)
    assert (
        len(w.checks_of("ledger")) == 4
    )  # the real SourceUnavailable, retried 3 times (MaxAttempts), caught
    failures = [e for fn, e in w.invocations if e.get("action") == "record_failure"]
    assert [f["error"]["Error"] for f in failures] == ["SourceUnavailable"]
    first = w.sns_messages()
    assert len(first) == 1 and "ledger" in first[0]["Subject"]
    _normal_hour(pg, T1)  # shop stays healthy, so any message now would be about ledger
    w.execute(T1 + timedelta(hours=1))
    assert w.sns_messages() == []  # still down: no second page
    states = {s.key.source: s.state.value for s in _store().alert_states() if s.key.check.value == "source"}
    assert states["ledger"] == "ERROR" and states["shop"] == "OK"


def test_a_duplicate_execution_changes_nothing(world: tuple[World, Any], pg: Any) -> None:
    w, _ = world
    _healthy_then_broken(w, pg)
    assert len(w.sns_messages()) == 1
    before = _state_of("shop")
    w.execute(T1 + timedelta(hours=1))  # the same firing again (Express is at-least-once)
    after = _state_of("shop")
    assert after == before
    assert w.sns_messages() == []
