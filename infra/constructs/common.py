"""Building blocks every construct of the stack uses the same way: queues, log groups, functions."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from aws_cdk import Acknowledgment, ArnFormat, CfnElement, Duration, RemovalPolicy, Stack, Validations
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_scheduler as scheduler
from aws_cdk import aws_sqs as sqs

from constructs import Construct, IConstruct
from driftguard.config import Config, compile_config, compile_source
from driftguard.contracts import METRIC_NAMESPACE, FunctionEnvironment
from driftguard.errors import ConfigError
from driftguard.schedules import FleetPlan, plan_fleet, plan_index
from infra.constructs.assets import CONFIG_FILE_NAME, PLAN_FILE_NAME, REPO, SLICES_DIR_NAME, function_code

E = TypeVar("E", bound=FunctionEnvironment)

_RETENTION = {
    1: logs.RetentionDays.ONE_DAY,
    3: logs.RetentionDays.THREE_DAYS,
    5: logs.RetentionDays.FIVE_DAYS,
    7: logs.RetentionDays.ONE_WEEK,
    14: logs.RetentionDays.TWO_WEEKS,
    30: logs.RetentionDays.ONE_MONTH,
    60: logs.RetentionDays.TWO_MONTHS,
    90: logs.RetentionDays.THREE_MONTHS,
    120: logs.RetentionDays.FOUR_MONTHS,
    150: logs.RetentionDays.FIVE_MONTHS,
    180: logs.RetentionDays.SIX_MONTHS,
    365: logs.RetentionDays.ONE_YEAR,
    400: logs.RetentionDays.THIRTEEN_MONTHS,
    545: logs.RetentionDays.EIGHTEEN_MONTHS,
    731: logs.RetentionDays.TWO_YEARS,
    1096: logs.RetentionDays.THREE_YEARS,
    1827: logs.RetentionDays.FIVE_YEARS,
    2192: logs.RetentionDays.SIX_YEARS,
    2557: logs.RetentionDays.SEVEN_YEARS,
    2922: logs.RetentionDays.EIGHT_YEARS,
    3288: logs.RetentionDays.NINE_YEARS,
    3653: logs.RetentionDays.TEN_YEARS,
}


def log_retention(config: Config) -> logs.RetentionDays:
    days = config.aws.log_retention_days
    if days not in _RETENTION:
        raise ConfigError(
            f"aws.log_retention_days: CloudWatch Logs cannot keep logs for {days} days; use one of "
            f"{', '.join(map(str, _RETENTION))}"
        )
    return _RETENTION[days]


def log_group(scope: Construct, construct_id: str, config: Config) -> logs.LogGroup:
    """A log group with the configured retention, deleted with the stack (logs are not state)."""
    return logs.LogGroup(
        scope, construct_id, retention=log_retention(config), removal_policy=RemovalPolicy.DESTROY
    )


def dead_letter_queue(scope: Construct, construct_id: str) -> sqs.Queue:
    """An SQS queue that parks what could not be delivered: encrypted, TLS only, kept 14 days."""
    queue = sqs.Queue(
        scope,
        construct_id,
        encryption=sqs.QueueEncryption.SQS_MANAGED,
        enforce_ssl=True,
        retention_period=Duration.days(14),
    )
    acknowledge(
        queue,
        "AwsSolutions-SQS3",
        "This queue is itself a dead-letter queue; an operator inspects "
        "and redrives it, and its depth is alarmed.",
    )
    return queue


def acknowledge(scope: IConstruct, rule: str, reason: str, findings: Sequence[str] = ()) -> None:
    """Acknowledge a cdk-nag rule on `scope` and its children, for each finding if the rule has them
    (e.g. AwsSolutions-IAM5[Resource::*]); cdk-nag v3 matches findings exactly."""
    ids = [f"{rule}[{finding}]" for finding in findings] or [rule]
    Validations.of(scope).acknowledge(*(Acknowledgment(id=i, reason=reason) for i in ids))


def nag_arn(resource: IConstruct) -> str:
    """How cdk-nag renders the ARN of a resource of this stack in a finding: `<LogicalId.Arn>`."""
    cfn = resource.node.default_child
    assert isinstance(cfn, CfnElement)
    stack = Stack.of(resource)
    return f"<{stack.resolve(stack.get_logical_id(cfn))}.Arn>"


@dataclass(frozen=True)
class FunctionSpec:
    """What differs between DriftGuard's functions; everything else is the same by construction."""

    folder: str  # under functions/
    description: str
    memory_mb: int
    timeout: Duration
    environment: FunctionEnvironment  # the contract the function's handler reads back
    reserved_concurrency: int | None = None
    needs_sources: bool = True
    """False: the function ships the config without its sources (channels, routes, settings only),
    which is all a delivery needs: at 10,000 sources the whole config is hundreds of MB in memory."""
    config_slices: bool = False
    """True: the function ships the config without its sources plus one slice per source
    (`SLICES_DIR_NAME/NAME.json`, env DRIFTGUARD_CONFIG_SLICES) and reads only the slice of the source
    an invocation is about: its memory follows the largest source, not the fleet."""


@dataclass(frozen=True)
class ShippedConfig:
    """The config file the functions ship, compiled once per synth (both carry the same file, and at
    10,000 sources compiling it is a noticeable part of a synth)."""

    path: Path  # the YAML it was loaded from: the assets' source when a function folder is missing
    compiled: str  # `compile_config(config)`, written as driftguard.json
    without_sources: str  # the same without its sources, for functions that only deliver
    fleet: FleetPlan  # the schedules (planning 10,000 sources takes seconds: once per synth)
    config: Config  # what was compiled: the slices are compiled from it when a function ships them

    @classmethod
    def of(cls, config: Config, path: Path) -> ShippedConfig:
        bare = compile_config(config.model_copy(update={"sources": []}))
        return cls(path, compile_config(config), bare, plan_fleet(config), config)

    @property
    def files(self) -> dict[str, str]:
        """What a function that checks sources ships beside its code."""
        return {CONFIG_FILE_NAME: self.compiled, PLAN_FILE_NAME: self.plan}

    @functools.cached_property
    def plan(self) -> str:
        """The schedule plan as the functions that plan ship it (`plan_index`)."""
        return plan_index(self.fleet.groups)

    @functools.cached_property
    def slices(self) -> dict[str, str]:
        """Each source compiled alone (`compile_source`), by name: written only for a function that
        ships slices (at 10,000 sources x 20 tables, about 110 MB of text)."""
        return {s.name: compile_source(s) for s in self.config.sources}

    @property
    def sliced_files(self) -> dict[str, str]:
        """What a function that checks one source per invocation ships: the config without its sources,
        the plan, and one slice per source."""
        files = {CONFIG_FILE_NAME: self.without_sources, PLAN_FILE_NAME: self.plan}
        return files | {f"{SLICES_DIR_NAME}/{name}.json": text for name, text in self.slices.items()}

    @property
    def channel_files(self) -> dict[str, str]:
        """What a function that only delivers ships: the config without its sources."""
        return {CONFIG_FILE_NAME: self.without_sources}


def python_function(
    scope: Construct,
    construct_id: str,
    spec: FunctionSpec,
    *,
    config: Config,
    shipped: ShippedConfig,
    layer: lambda_.ILayerVersion,
) -> lambda_.Function:
    """A DriftGuard function: Python 3.13 on arm64, the shared layer, X-Ray, its own log group, and
    its own role, which may write to that log group only (AWSLambdaBasicExecutionRole allows any)."""
    logs_group = log_group(scope, f"{construct_id}Logs", config)
    role = iam.Role(
        scope,
        f"{construct_id}ServiceRole",
        assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
        description=f"{spec.description} (execution role)",
    )
    role.add_to_policy(
        iam.PolicyStatement(
            actions=["logs:CreateLogStream", "logs:PutLogEvents"], resources=[logs_group.log_group_arn]
        )
    )
    function = lambda_.Function(
        scope,
        construct_id,
        description=spec.description,
        runtime=lambda_.Runtime.PYTHON_3_13,
        architecture=lambda_.Architecture.ARM_64,
        handler="handler.handler",
        code=function_code(
            REPO / "functions" / spec.folder,
            shipped.sliced_files
            if spec.config_slices
            else shipped.files
            if spec.needs_sources
            else shipped.channel_files,
            shipped.path,
        ),
        layers=[layer],
        memory_size=spec.memory_mb,
        timeout=spec.timeout,
        reserved_concurrent_executions=spec.reserved_concurrency,
        tracing=lambda_.Tracing.ACTIVE,
        log_group=logs_group,
        role=role,
        environment=spec.environment.variables(),
    )
    acknowledge(
        role,
        "AwsSolutions-IAM5",
        "X-Ray PutTraceSegments/PutTelemetryRecords do not support "
        "resource-level permissions (CDK's Tracing.ACTIVE grant).",
        ["Resource::*"],
    )
    acknowledge(
        function,
        "AwsSolutions-L1",
        "DriftGuard targets Python 3.13: the shared layer is built "
        "for cp313 and the runtime is pinned on purpose; move both together.",
    )
    return function


def scheduler_role(scope: Construct, group: scheduler.IScheduleGroup) -> iam.Role:
    """The role EventBridge Scheduler assumes to start a target, trusted only for `group`'s schedules
    in this account (Scheduler's confused-deputy guard)."""
    return iam.Role(
        scope,
        "SchedulerRole",
        assumed_by=iam.ServicePrincipal(
            "scheduler.amazonaws.com",
            conditions={
                "StringEquals": {
                    "aws:SourceAccount": Stack.of(scope).account,
                    "aws:SourceArn": group.schedule_group_arn,
                }
            },
        ),
    )


def environment(model: type[E], scope: Construct, **fields: str | None) -> E:
    """A function's environment: the contract's model with what every function shares filled in (the
    metrics' `service` dimension is the stack's name, so two stacks never share a metric)."""
    return model.model_validate(
        {
            "config_file": CONFIG_FILE_NAME,
            "service": Stack.of(scope).stack_name,
            "metrics_namespace": METRIC_NAMESPACE,
            **fields,
        }
    )


EXACT_SECRET_LIMIT = 40
"""Up to this many secrets a role names each one; beyond, IAM's 10,240-character limit on a role's
inline policies forces a pattern per secret path (see `grant_secrets`)."""


MIN_SECRET_PATH_DEPTH = 2
"""A secret path granted as a whole (`a/b/*`) has at least this many segments."""


def grant_secrets(function: lambda_.IFunction, refs: list[str]) -> None:
    """Let `function` read exactly the secrets `refs` names (names or ARNs; "" = none), nothing else.

    A name becomes `arn:...:secret:NAME-??????` (Secrets Manager appends 6 random characters).
    With more than EXACT_SECRET_LIMIT distinct secrets, names are granted by their path
    (`driftguard/sources/*`): keep many secrets under a path that holds nothing else. A path must
    have at least MIN_SECRET_PATH_DEPTH segments: `prod/*` would grant every production secret.
    """
    unique = sorted(set(refs) - {""})
    if not unique:
        return
    stack = Stack.of(function)
    if len(unique) <= EXACT_SECRET_LIMIT:
        resources = [ref if ref.startswith("arn:") else _secret_arn(stack, f"{ref}-??????") for ref in unique]
    else:
        paths = sorted({_secret_path(ref) for ref in unique})
        resources = [_secret_arn(stack, f"{path}*") for path in paths]
        rendered = "Resource::arn:<AWS::Partition>:secretsmanager:<AWS::Region>:<AWS::AccountId>:secret:"
        assert function.role is not None  # DriftGuard's functions have their own role (python_function)
        acknowledge(
            function.role,
            "AwsSolutions-IAM5",
            f"{len(unique)} secrets exceed what one role policy can "
            "list; access is limited to the secret paths the config names.",
            [f"{rendered}{path}*" for path in paths],
        )
    function.add_to_role_policy(
        iam.PolicyStatement(actions=["secretsmanager:GetSecretValue"], resources=resources)
    )


def _secret_arn(stack: Stack, resource_name: str) -> str:
    return stack.format_arn(
        service="secretsmanager",
        resource="secret",
        resource_name=resource_name,
        arn_format=ArnFormat.COLON_RESOURCE_NAME,
    )


def _secret_path(ref: str) -> str:
    name = ref.split(":secret:", 1)[1] if ref.startswith("arn:") else ref
    if "/" not in name:
        raise ConfigError(
            f"secret {ref!r}: with more than {EXACT_SECRET_LIMIT} secrets, each must live under a path "
            "(e.g. 'driftguard/sources/NAME') so the stack can grant the path instead of every secret"
        )
    path = name.rsplit("/", 1)[0]
    if len(path.split("/")) < MIN_SECRET_PATH_DEPTH:
        raise ConfigError(
            f"secret {ref!r}: with more than {EXACT_SECRET_LIMIT} secrets the stack grants their path, "
            f"and {path + '/*'!r} is too broad to be one team's; move the secrets under a path of at least "
            f"{MIN_SECRET_PATH_DEPTH} segments (e.g. 'driftguard/sources/NAME')"
        )
    return path + "/"
