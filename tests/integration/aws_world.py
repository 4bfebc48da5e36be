"""The AWS flow with no AWS, shared by the end-to-end tests: the state machine synthesized by the CDK
stack runs in moto's Step Functions interpreter (real ASL: Map, Choice, Retry with jitter, Catch),
its Lambda tasks are dispatched in-process to the real handlers, against a real PostgreSQL source and
moto's DynamoDB, SNS, SQS and Secrets Manager.

Containers are modelled as Lambda runs them: a container handles one invocation at a time, and an
invocation that finds every container of its function busy starts a new one. Each container is its
own copy of the handler module with its own runtime (config, DynamoDB store and its memory,
Powertools idempotency guard), so two overlapping executions of one check really run in two
containers at once, as in AWS.
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
from contextlib import contextmanager
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

REGION = "us-east-1"
ACCOUNT = "123456789012"
CHECK_ARN = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:driftguard-check"
NOTIFY_ARN = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:driftguard-notify"
STATE_TABLE = "driftguard-state"
IDEMPOTENCY_TABLE = "driftguard-idempotency"
T1 = datetime(2026, 11, 17, 11, 0, tzinfo=UTC)  # a Tuesday, 11:00
HANDLERS = {
    "check": REPO / "functions" / "check" / "handler.py",
    "notify": REPO / "functions" / "notify" / "handler.py",
}


def serialise_dynamodb_requests(monkeypatch: pytest.MonkeyPatch) -> None:
    """DynamoDB applies each request atomically; moto checks a condition and writes in separate steps,
    so two containers' (or threads') conditional writes (idempotency records, delivery claims) could
    both pass a condition only one of them can pass in DynamoDB. Serialise moto's requests as DynamoDB
    would."""
    from moto.dynamodb.responses import DynamoHandler

    serialised = threading.Lock()
    call_action = DynamoHandler.call_action

    def atomic_call_action(handler: DynamoHandler) -> Any:
        with serialised:
            return call_action(handler)

    monkeypatch.setattr(DynamoHandler, "call_action", atomic_call_action)


def fake_aws_credentials(monkeypatch: pytest.MonkeyPatch, region: str) -> None:
    """moto's credentials and `region`, and none of the machine's own profile or region."""
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": region,
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_REGION", raising=False)
    monkeypatch.delenv("AWS_PROFILE", raising=False)


@contextmanager
def paged_runtime(
    monkeypatch: pytest.MonkeyPatch, config_path: Path, region: str
) -> Iterator[tuple[Any, str]]:
    """In moto: the stack's tables and alerts topic, an SQS queue subscribed to the topic (what was
    paged), and the Lambda runtime's environment pointing at them and at `config_path`. Yields the
    SQS client and the queue's URL."""
    from moto import mock_aws

    from driftguard import lambda_runtime
    from driftguard.moto_stack import create_stack_resources

    fake_aws_credentials(monkeypatch, region)
    with mock_aws():
        stack = create_stack_resources(region=region, state_table="state", idempotency_table="idem")
        sqs = boto3.client("sqs", region_name=region)
        queue = sqs.create_queue(QueueName="pages")["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        boto3.client("sns", region_name=region).subscribe(
            TopicArn=stack.topic_arn, Protocol="sqs", Endpoint=arn
        )
        monkeypatch.setenv("DRIFTGUARD_CONFIG", str(config_path))
        monkeypatch.setenv("DRIFTGUARD_STATE_TABLE", "state")
        monkeypatch.setenv("POWERTOOLS_SERVICE_NAME", "driftguard")
        monkeypatch.setenv("DRIFTGUARD_ALERTS_TOPIC_ARN", stack.topic_arn)
        lambda_runtime.runtime.cache_clear()
        yield sqs, queue
        lambda_runtime.runtime.cache_clear()


def sqs_bodies(sqs: Any, queue: str) -> list[dict[str, Any]]:
    """The bodies of the messages waiting on `queue` (SNS envelopes for a subscribed queue)."""
    messages = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10, WaitTimeSeconds=0).get(
        "Messages", []
    )
    return [json.loads(m["Body"]) for m in messages]


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


@dataclass
class LambdaContext:
    function_name: str = "driftguard-check"
    memory_limit_in_mb: int = 512
    invoked_function_arn: str = CHECK_ARN
    aws_request_id: str = field(default_factory=lambda: uuid.uuid4().hex)

    def get_remaining_time_in_millis(self) -> int:
        return 60_000


@dataclass
class Container:
    """One Lambda container: its own copy of the handler module and, once built, its own runtime."""

    function: str
    handler: ModuleType
    runtime: Any = None

    @classmethod
    def start(cls, function: str) -> Container:
        path = HANDLERS[function]
        # One module name for every copy, as every container of a function has its `handler` module:
        # Powertools' idempotency keys start with the guarded function's module and name.
        spec = importlib.util.spec_from_file_location(f"driftguard_{function}_handler", path)
        assert spec and spec.loader
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        # Powertools keeps metrics in class attributes shared by every Metrics object of a process;
        # in a container (a process of its own) they are its own: give this copy its own sets.
        metrics = module.metrics
        provider = metrics.provider
        for name in ("metric_set", "dimension_set", "metadata_set"):
            own: dict[str, Any] = {}
            setattr(metrics, name, own)
            setattr(provider, name, own)
        return cls(function, module)


class Containers:
    """The warm containers of both functions: an invocation takes an idle one or starts one."""

    def __init__(self) -> None:
        from driftguard import lambda_runtime

        self._build = lambda_runtime.runtime.__wrapped__  # what one container builds, uncached
        self._lock = threading.Lock()
        self._idle: dict[str, list[Container]] = {name: [] for name in HANDLERS}
        self.started: dict[str, int] = dict.fromkeys(HANDLERS, 0)
        self._current = threading.local()

    def take(self, function: str) -> Container:
        with self._lock:
            if self._idle[function]:
                return self._idle[function].pop()
            self.started[function] += 1
        return Container.start(function)

    def give_back(self, container: Container) -> None:
        with self._lock:
            self._idle[container.function].append(container)

    def runtime(self) -> Any:
        """`driftguard.lambda_runtime.runtime` as the invocation running on this thread sees it."""
        container: Container = self._current.container
        if container.runtime is None:
            container.runtime = self._build()
        return container.runtime

    def invoke(self, function: str, event: dict[str, Any]) -> Any:
        container = self.take(function)
        self._current.container = container
        try:
            return container.handler.handler(event, LambdaContext())
        finally:
            self._current.container = None
            self.give_back(container)

    def retire_all(self) -> None:
        """A new deployment (a new config): every container is cold again."""
        with self._lock:
            self._idle = {name: [] for name in HANDLERS}


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
    containers: Containers = field(default_factory=Containers)
    payload_bytes: list[int] = field(default_factory=list)  # every task input and result, as JSON
    errors: list[tuple[str, dict[str, Any], str]] = field(default_factory=list)  # what invocations raised

    def start(self, scheduled_time: datetime, name: str | None = None) -> str:
        """Start an execution of the firing of `scheduled_time` (the schedule's input) and return its ARN."""
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
        return str(
            self.sfn.start_execution(
                stateMachineArn=self.machine_arn, name=name or uuid.uuid4().hex, input=json.dumps(payload)
            )["executionArn"]
        )

    def wait(self, arn: str) -> dict[str, Any]:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            desc = self.sfn.describe_execution(executionArn=arn)
            if desc["status"] != "RUNNING":
                assert desc["status"] == "SUCCEEDED", desc
                return dict(desc)
            time.sleep(0.1)
        raise AssertionError(f"execution {arn} did not finish in 180 s")

    def execute(self, scheduled_time: datetime, name: str | None = None) -> dict[str, Any]:
        return self.wait(self.start(scheduled_time, name))

    def sns_messages(self) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
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


def _dispatcher(world_ref: dict[str, World]) -> Callable[..., bytes]:
    """Replaces moto's LambdaBackend.invoke: run the real handler in a container of its function;
    an exception becomes a Lambda FunctionError whose errorType is the class name, exactly what
    the state machine's Retry matches."""

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
        world.payload_bytes.append(len(body or b""))
        try:
            faults = world.faults.get(str(event.get("source")), []) if name == "check" else []
            if faults and "action" not in event:
                raise faults.pop(0)
            payload = json.dumps(world.containers.invoke(name, event)).encode()
        except Exception as e:
            world.errors.append((name, event, repr(e)))
            response_headers["x-amz-function-error"] = "Unhandled"
            payload = json.dumps({"errorType": type(e).__name__, "errorMessage": str(e)}).encode()
        world.payload_bytes.append(len(payload))
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


def config_file(
    pg: Any,
    tmp_path: Path,
    *,
    extra_sources: list[dict[str, Any]] | None = None,
    tables: list[dict[str, Any]] | None = None,
    extra_channels: list[dict[str, Any]] | None = None,
) -> Path:
    source = {
        **pg.source_yaml("shop"),
        "schedule": {"rate": "1h"},
        "tables": tables
        or [
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
    channels = [
        {"name": "alerts", "type": "sns"},
        {"name": "audit", "type": "file", "path": str(tmp_path / "audit.jsonl")},
        *(extra_channels or []),
    ]
    config = {
        "sources": [source, *(extra_sources or [])],
        "channels": channels,
        "route": {"receivers": [c["name"] for c in channels]},
        "alerting": {"error_after_failures": 1, "repeat_interval": "4h"},
    }
    path = tmp_path / "driftguard.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def seed_orders(pg: Any, until: datetime, *, hours: int = 24 * 21, per_hour: int = 40) -> None:
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


def one_order(pg: Any, at: datetime) -> None:
    with pg.engine.begin() as conn:
        conn.execute(sa.text("insert into orders (amount, created_at) values (10, :at)"), {"at": at})


def normal_hour(pg: Any, start: datetime, per_hour: int = 40) -> None:
    with pg.engine.begin() as conn:
        conn.execute(
            sa.text(
                "insert into orders (amount, created_at) "
                "select 10, cast(:start as timestamptz) + (n * interval '1 minute') "
                "from generate_series(1, :per_hour) n"
            ),
            {"start": start, "per_hour": per_hour},
        )


def ship_for_checks(config_path: Path, tmp_path: Path) -> dict[str, str]:
    """Write the files the stack ships to the check function (infra ShippedConfig.sliced_files)
    into a fresh folder; the environment that points the functions at them."""
    import tempfile

    from infra.constructs.assets import CONFIG_FILE_NAME, PLAN_FILE_NAME, SLICES_DIR_NAME
    from infra.constructs.common import ShippedConfig

    from driftguard.config import load_config

    folder = Path(tempfile.mkdtemp(prefix="shipped-", dir=tmp_path))
    for name, text in ShippedConfig.of(load_config(config_path), config_path).sliced_files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(text, encoding="utf-8")
    return {
        "DRIFTGUARD_CONFIG": str(folder / CONFIG_FILE_NAME),
        "DRIFTGUARD_CONFIG_SLICES": str(folder / SLICES_DIR_NAME),
        "DRIFTGUARD_PLAN": str(folder / PLAN_FILE_NAME),
    }


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
    serialise_dynamodb_requests(monkeypatch)
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

        world_ref: dict[str, World] = {}
        from moto.awslambda_simple.models import LambdaSimpleBackend

        # use_docker False selects moto's "simple" Lambda backend; its invoke runs our handlers.
        monkeypatch.setattr(LambdaSimpleBackend, "invoke", _dispatcher(world_ref))
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

        w = World(sfn, machine, sqs, alerts_queue, dlq, Path(), [], {})
        world_ref["world"] = w
        # Each container builds its own runtime (the handlers ask lambda_runtime.runtime for it).
        monkeypatch.setattr(lambda_runtime, "runtime", w.containers.runtime)

        def configure(**kw: Any) -> None:
            path = config_file(pg, tmp_path, **kw)
            # the check function's files as the stack ships them: the config without sources, one
            # slice per source, the plan (the notify function reads the same config without sources)
            for key, value in ship_for_checks(path, tmp_path).items():
                monkeypatch.setenv(key, value)
            w.containers.retire_all()
            w.config_path = path

        configure()
        yield w, configure


def state_store() -> Any:
    from driftguard.store.dynamodb import DynamoStore

    return DynamoStore(table_name=STATE_TABLE, region=REGION)
