"""The check function, the Express state machine that fans checks out, and the schedules that start it.

Runtime contract (functions/check/handler.py and functions/notify/handler.py implement exactly this)
====================================================================================================

Check function: asset = functions/check plus the compiled config without its sources as
`driftguard.json`, one slice per source as `driftguard-sources/NAME.json` (env
DRIFTGUARD_CONFIG_SLICES: an invocation reads only its source's slice) and the plan; memory sized
from the largest source (infra/constructs/memory.py; `aws.check_memory_mb` overrides); handler
`handler.handler`; the shared layer carries driftguard and its runtime dependencies
(boto3/botocore come from the Lambda runtime, see infra/constructs/layer.py). Environment:

    driftguard.contracts.CheckEnvironment (infra sets it, the handler reads it back): the config
    file, the state and idempotency tables, the alerts topic, Powertools' service (the stack's name)
    and namespace. The events below are its models (`action` discriminates), and the retried error
    names are contracts.retryable_error_names (the `retryable` classes of driftguard.errors).

Events (a state machine execution starts with the schedule's input
`{"action": "plan", "cadence": ID, "shard": K, "scheduled_time": T, "max_concurrency": C}`):

(a) plan     `{"action": "plan", "cadence": ID, "shard": K, "scheduled_time": T, "started": S}`
             -> `{"servers": [{"max_concurrency": c, "sources": [{"source": NAME, "scheduled_time": T,
                 "deadline": D}, ...]}, ...]}` (the shard's entry in the shipped plan,
             `driftguard-plan.json`; C is not passed: the outer Map reads it from the execution input;
             D is when this firing's checks must have their outcomes recorded, counted from the
             execution's start S, see docs/scaling.md)
(b) check    `{"source": NAME, "scheduled_time": T, "deadline": D}` (T is EventBridge Scheduler's
             `<aws.scheduler.scheduled-time>`, the same for every source of one firing; an attempt
             that could not end before D records the run as missed instead of starting)
             -> `{"source", "scheduled_time", "status", "findings": N, "anomalies": N,
                  "notifications": [{"id", "channel": NAME}]}`: ids only, never bodies (state
             stays small whatever the number of alerts): every outbox entry of the source still
             waiting, this run's and any an earlier execution left.
(c) record_failure `{"action": "record_failure", "source", "scheduled_time", "error": {"Error", "Cause"}}`
             (from the Catch) -> records an ERROR finding through the alert lifecycle and returns
             the shape of (b), so an unreachable source alerts once, not on every run. (b) and (c)
             share one idempotency key: whichever runs first decides, the other reuses its result.
(d) record_deliveries `{"action": "record_deliveries", "results": [{"id", "channel", "status", "error"?}]}`
             after the deliveries of one check; parks those with status "failed" (dead-lettered).

Errors are raised as the classes of driftguard.errors; Step Functions matches the class name.
SourceUnavailable, QueryTimeout and StateConflict are retried (3 attempts, 2 s, rate 2, at most
20 s, full jitter), as are Lambda.ServiceException and Lambda.SdkClientException;
Lambda.TooManyRequestsException (reserved concurrency reached) gets 6 attempts up to 30 s.
CheckInProgress (another execution holds this check and did not finish while the handler waited)
is retried once and then ends the item quietly ("Checked by another execution"): the execution
holding the check records its outcome. Everything else (ConfigError, PermissionDenied,
CheckDefinitionError, SecretError, exhausted retries, timeouts) is caught and becomes (c). If (c)
or (d) fails after its retries, the event is parked in the delivery DLQ
(`{"kind": "unrecorded_check_failure" | "unrecorded_deliveries", ...}`) and the DLQ alarm fires;
no failure aborts the other sources of the shard.

Notify function: asset functions/notify plus `driftguard.json` without sources, handler `handler.handler`, env
DRIFTGUARD_STATE_TABLE (read-write: the delivery ledger's claims and marks) and
DRIFTGUARD_ALERTS_TOPIC_ARN, input `{"id", "channel": NAME}`: claims the notification (skips it if
delivered or held by another execution), reads its body from the store, sends it, marks it
delivered; raises RetryableDeliveryError (retried: 5 attempts, 2 s, rate 2, at most 60 s, full
jitter; the claim is released first) or PermanentDeliveryError (not retried). What still fails is
sent to the delivery DLQ as `{"kind": "delivery", "id", "channel", "error"}` and reported to (d).

Both handlers must be idempotent: Express executions are at-least-once.

Why Express, what it costs
--------------------------
A firing is short (seconds per check) and frequent (every cadence, every shard). Standard
workflows bill $25 per million state transitions: a 250-source shard is ~2,000 transitions, about
$0.05 per firing, ~$4.80 a day per shard at a 15-minute cadence. Express bills $1 per million
executions plus duration x memory (about $0.06 per GB-hour, 64 MB steps): the same firing costs a
small fraction of a cent. The price of Express: at most 5 minutes per execution (hence shards of
at most 500 sources and a 90 s check timeout), no execution history beyond the log group, and
at-least-once execution (a retried StartExecution may run a shard twice), which the idempotent
handlers absorb.

Concurrency, and how Source.max_concurrency is honoured
-------------------------------------------------------
* One firing maps over its database servers, C at once (MaxConcurrencyPath, C from the schedule's
  input), and each server's sources in a Map limited to that server's `max_concurrency`: the limit
  holds per server within a firing. Firings are staggered into 5-minute slots (cron offsets), so
  shards of one cadence never overlap; what may still overlap (cadences sharing a slot) shares the
  concurrency budget, which the planner splits (driftguard.schedules, docs/scaling.md).
* Nothing is reserved by default (a new account cannot reserve: 100 must stay unreserved); the
  budget is `aws.check_concurrency` (10). `aws.check_reserved_concurrency` reserves that much and
  becomes the budget. Synth prints what the plan needs and what to raise.
"""

from __future__ import annotations

from typing import Any

from aws_cdk import Annotations, ArnFormat, Duration, RemovalPolicy, Stack, TimeZone
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_scheduler as scheduler
from aws_cdk import aws_scheduler_targets as targets
from aws_cdk import aws_stepfunctions as sfn
from aws_cdk import aws_stepfunctions_tasks as tasks

from constructs import Construct
from driftguard.config import Config
from driftguard.contracts import CheckEnvironment, retryable_error_names
from driftguard.errors import ConfigError
from driftguard.schedules import ScheduleGroup, capacity_notes
from infra.constructs.assets import PLAN_FILE_NAME, SLICES_DIR_NAME
from infra.constructs.common import (
    FunctionSpec,
    ShippedConfig,
    acknowledge,
    dead_letter_queue,
    environment,
    grant_secrets,
    log_group,
    nag_arn,
    python_function,
    scheduler_role,
)
from infra.constructs.memory import announced, check_memory
from infra.constructs.notifications import Notifications
from infra.constructs.state import IDEMPOTENCY_ACTIONS, STORE_READ_ACTIONS, STORE_WRITE_ACTIONS, StateTables

CHECK_TIMEOUT = Duration.seconds(90)
EXPRESS_LIMIT = Duration.minutes(5)
# Another execution holds the same check (Powertools idempotency): the handler waited for it; the
# state machine asks again once more, then leaves the outcome to that execution. Never a failure.
IN_PROGRESS = ["CheckInProgress"]
RETRYABLE_CHECK_ERRORS = [name for name in retryable_error_names() if name not in IN_PROGRESS]
LAMBDA_SERVICE_ERRORS = ["Lambda.ServiceException", "Lambda.SdkClientException"]
LAMBDA_THROTTLED = ["Lambda.TooManyRequestsException"]
RETRYABLE_DELIVERY_ERRORS = ["RetryableDeliveryError"]
NOTIFICATIONS_AT_ONCE = 10


def _retry(errors: list[str], *, attempts: int, max_delay: int) -> dict[str, Any]:
    """Keyword arguments of `add_retry`: exponential backoff from 2 s, capped, full jitter."""
    return {
        "errors": errors,
        "interval": Duration.seconds(2),
        "backoff_rate": 2,
        "max_attempts": attempts,
        "max_delay": Duration.seconds(max_delay),
        "jitter_strategy": sfn.JitterType.FULL,
    }


THROTTLE_RETRY = _retry(LAMBDA_THROTTLED, attempts=6, max_delay=30)


class Checks(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: Config,
        shipped: ShippedConfig,
        layer: lambda_.ILayerVersion,
        state: StateTables,
        notifications: Notifications,
    ) -> None:
        super().__init__(scope, construct_id)
        # Sized from the largest source's slice and tables, not the fleet (infra/constructs/memory.py)
        memory = announced(
            self,
            check_memory(config, shared=shipped.without_sources, plan=shipped.plan, slices=shipped.slices),
        )
        self.memory = memory
        self.function = python_function(
            self,
            "CheckFunction",
            FunctionSpec(
                folder="check",
                description="DriftGuard: plan a firing, check one source, record a failed check",
                memory_mb=memory.mb,
                timeout=CHECK_TIMEOUT,
                # Reserving needs 100 unreserved left in the account: a new account (a quota of 10)
                # cannot reserve any, so by default nothing is reserved (docs/scaling.md).
                reserved_concurrency=config.aws.check_reserved_concurrency,
                environment=environment(
                    CheckEnvironment,
                    self,
                    state_table=state.state.table_name,
                    idempotency_table=state.idempotency.table_name,
                    plan_file=PLAN_FILE_NAME,
                    config_slices=SLICES_DIR_NAME,
                ),
                config_slices=True,
            ),
            config=config,
            shipped=shipped,
            layer=layer,
        )
        if config.aws.vpc is not None:
            self._place_in_vpc(config.aws.vpc.subnet_ids, config.aws.vpc.security_group_ids)
        state.state.grant(self.function, *STORE_READ_ACTIONS, *STORE_WRITE_ACTIONS)
        state.idempotency.grant(self.function, *IDEMPOTENCY_ACTIONS)
        grant_secrets(self.function, [s.connection.password_secret or "" for s in config.sources])

        stack = Stack.of(self)
        self.state_machine = sfn.StateMachine(
            self,
            "StateMachine",
            # Step Functions' confused-deputy guard, set here rather than left to the CDK version's defaults
            role=iam.Role(
                self,
                "StateMachineRole",
                assumed_by=iam.ServicePrincipal(
                    "states.amazonaws.com",
                    conditions={
                        "StringEquals": {"aws:SourceAccount": stack.account},
                        "ArnLike": {
                            "aws:SourceArn": stack.format_arn(
                                service="states",
                                resource="stateMachine",
                                resource_name="*",
                                arn_format=ArnFormat.COLON_RESOURCE_NAME,
                            )
                        },
                    },
                ),
            ),
            state_machine_type=sfn.StateMachineType.EXPRESS,
            definition_body=sfn.DefinitionBody.from_chainable(
                self._definition(config, notifications, self.function)
            ),
            timeout=EXPRESS_LIMIT,
            tracing_enabled=True,
            # ERROR, without execution data: ALL with data would log every check result of every
            # firing (~2.5 MB per 250-source firing) and holds notification content.
            logs=sfn.LogOptions(
                destination=log_group(self, "StateMachineLogs", config),
                level=sfn.LogLevel.ERROR,
                include_execution_data=False,
            ),
        )
        self._acknowledge_state_machine_findings(notifications.function)

        self.schedule_dead_letter_queue = dead_letter_queue(self, "ScheduleDeadLetterQueue")
        self.schedule_groups = shipped.fleet.groups
        self._schedule(self.schedule_groups)
        for note in capacity_notes(shipped.fleet):
            # Shown by `cdk synth` and `cdk deploy`: what the plan assumes and what to raise.
            annotations = Annotations.of(self)
            (annotations.add_warning if shipped.fleet.problems else annotations.add_info)(note)

    def _place_in_vpc(self, subnet_ids: list[str], security_group_ids: list[str]) -> None:
        """Private databases: the function gets ENIs in these subnets. Lambda needs only the ids, so
        the VPC itself is not imported (that would need its id and zones, which the config lacks)."""
        cfn = self.function.node.default_child
        assert isinstance(cfn, lambda_.CfnFunction)
        cfn.vpc_config = lambda_.CfnFunction.VpcConfigProperty(
            subnet_ids=subnet_ids, security_group_ids=security_group_ids
        )
        # What AWSLambdaVPCAccessExecutionRole grants for the ENIs, without its logs:* on every group.
        self.function.add_to_role_policy(
            iam.PolicyStatement(
                actions=[
                    "ec2:CreateNetworkInterface",
                    "ec2:DescribeNetworkInterfaces",
                    "ec2:DescribeSubnets",
                    "ec2:DeleteNetworkInterface",
                    "ec2:AssignPrivateIpAddresses",
                    "ec2:UnassignPrivateIpAddresses",
                ],
                resources=["*"],
            )
        )
        assert self.function.role is not None
        acknowledge(
            self.function.role,
            "AwsSolutions-IAM5",
            "Lambda manages the function's ENIs with these EC2 actions; the Describe actions take no "
            "resource, and the ENIs do not exist before Lambda creates them (the set of "
            "AWSLambdaVPCAccessExecutionRole, without its logs on every log group).",
            ["Resource::*"],
        )

    def _definition(
        self, config: Config, notifications: Notifications, check: lambda_.IFunction
    ) -> sfn.IChainable:
        """plan -> Map sources -> check (Catch: record_failure) -> Map notifications -> record_deliveries.

        State carries notification ids, never bodies: the notify function reads each body from the
        store when it claims the delivery, so a run with hundreds of alerts stays far below the
        256 KB state limit (States.DataLimitExceeded, which no Catch can catch)."""
        plan = self._invoke(
            "Plan",
            check,
            {
                "action": "plan",
                "cadence": sfn.JsonPath.string_at("$.cadence"),
                "shard": sfn.JsonPath.number_at("$.shard"),
                "scheduled_time": sfn.JsonPath.string_at("$.scheduled_time"),
                # the firing's deadline counts from here, so a throttled plan step counts too
                "started": sfn.JsonPath.string_at("$$.Execution.StartTime"),
            },
            retry_errors=LAMBDA_SERVICE_ERRORS,
            result_path="$.plan",
        )
        source = {
            "source": sfn.JsonPath.string_at("$.source"),
            "scheduled_time": sfn.JsonPath.string_at("$.scheduled_time"),
        }
        run_check = self._invoke(
            "Check source",
            check,
            # The plan's deadline: an attempt that could not end before it is recorded as missed instead
            {**source, "deadline": sfn.JsonPath.string_at("$.deadline")},
            retry_errors=RETRYABLE_CHECK_ERRORS + LAMBDA_SERVICE_ERRORS,
        )
        record_failure = self._invoke(
            "Record failure",
            check,
            {"action": "record_failure", **source, "error": sfn.JsonPath.object_at("$.error")},
            retry_errors=["StateConflict", *LAMBDA_SERVICE_ERRORS],
        )
        # The execution holding the check records its outcome and delivers its notifications.
        elsewhere = sfn.Pass(
            self,
            "Checked by another execution",
            parameters={"source": sfn.JsonPath.string_at("$.source"), "status": "in_progress"},
        )
        for task in (run_check, record_failure):
            task.add_retry(**_retry(IN_PROGRESS, attempts=1, max_delay=10))
            task.add_catch(elsewhere, errors=IN_PROGRESS, result_path="$.error")
        run_check.add_catch(record_failure, errors=["States.ALL"], result_path="$.error")
        record_failure.add_catch(
            self._park(
                notifications,
                "Park unrecorded failure",
                {
                    "kind": "unrecorded_check_failure",
                    **source,
                    "error": sfn.JsonPath.object_at("$.error"),
                    "record_error": sfn.JsonPath.object_at("$.record_error"),
                },
            ),
            errors=["States.ALL"],
            result_path="$.record_error",
        )

        summarize = sfn.Pass(
            self,
            "Summarize",
            parameters={
                "source": sfn.JsonPath.string_at("$.source"),
                "status": sfn.JsonPath.string_at("$.status"),
                "findings": sfn.JsonPath.number_at("$.findings"),
                "anomalies": sfn.JsonPath.number_at("$.anomalies"),
            },
        )
        record_deliveries = self._invoke(
            "Record deliveries",
            check,
            {"action": "record_deliveries", "results": sfn.JsonPath.list_at("$.deliveries")},
            retry_errors=["StateConflict", *LAMBDA_SERVICE_ERRORS],
            result_path=sfn.JsonPath.DISCARD,
        )
        record_deliveries.add_catch(
            self._park(
                notifications,
                "Park unrecorded deliveries",
                {
                    "kind": "unrecorded_deliveries",
                    **source,
                    "results": sfn.JsonPath.list_at("$.deliveries"),
                    "error": sfn.JsonPath.object_at("$.record_error"),
                },
            ).next(summarize),
            errors=["States.ALL"],
            result_path="$.record_error",
        )
        deliver_all = sfn.Map(
            self,
            "Deliver notifications",
            items_path="$.notifications",
            max_concurrency=NOTIFICATIONS_AT_ONCE,
            result_path="$.deliveries",
        ).item_processor(self._delivery(notifications))
        any_delivered = (
            sfn.Choice(self, "Any notifications?")
            .when(sfn.Condition.is_present("$.deliveries[0]"), record_deliveries.next(summarize))
            .otherwise(summarize)
        )
        run_check.next(deliver_all)
        record_failure.next(deliver_all)
        deliver_all.next(any_delivered)

        # Source.max_concurrency holds per database server: the firing maps over its servers (as many
        # at once as the schedule's input says), each server's sources in a Map of its own limit.
        check_server = sfn.Map(
            self,
            "Check sources",
            items_path="$.sources",
            max_concurrency_path="$.max_concurrency",
            result_path=sfn.JsonPath.DISCARD,
        ).item_processor(run_check)
        check_servers = sfn.Map(
            self,
            "Check servers",
            items_path="$.plan.servers",
            max_concurrency_path="$.max_concurrency",
            result_path=sfn.JsonPath.DISCARD,
        ).item_processor(check_server)
        return plan.next(check_servers)

    def _delivery(self, notifications: Notifications) -> sfn.IChainable:
        """One notification, by id: the notify function claims it in the delivery ledger, reads its
        body from the store, sends it once and marks it (or skips it: delivered, or being sent by a
        duplicate execution); retried on retryable errors; what still fails is parked in the DLQ."""
        result = {"id": sfn.JsonPath.string_at("$.id"), "channel": sfn.JsonPath.string_at("$.channel")}
        dead_lettered = sfn.Pass(
            self,
            "Dead-lettered",
            parameters={**result, "status": "failed", "error": sfn.JsonPath.object_at("$.error")},
        )
        park = self._park(
            notifications,
            "Park undelivered notification",
            {"kind": "delivery", **result, "error": sfn.JsonPath.object_at("$.error")},
        ).next(dead_lettered)
        notify = self._invoke(
            "Deliver with notify function",
            notifications.function,
            result,
            retry_errors=LAMBDA_SERVICE_ERRORS,
        )
        notify.add_retry(**_retry(RETRYABLE_DELIVERY_ERRORS, attempts=5, max_delay=60))
        notify.add_catch(park, errors=["States.ALL"], result_path="$.error")
        return notify

    def _park(self, notifications: Notifications, name: str, body: dict[str, Any]) -> tasks.SqsSendMessage:
        """Send what could not be done to the delivery DLQ (an operator inspects and redrives it)."""
        return tasks.SqsSendMessage(
            self,
            name,
            queue=notifications.dead_letter_queue,
            message_body=sfn.TaskInput.from_object(body),
            result_path=sfn.JsonPath.DISCARD,
        )

    def _invoke(
        self,
        name: str,
        function: lambda_.IFunction,
        payload: dict[str, Any],
        *,
        retry_errors: list[str],
        result_path: str | None = None,
    ) -> tasks.LambdaInvoke:
        """A Lambda task returning the function's own result, retried on `retry_errors` and throttling."""
        task = tasks.LambdaInvoke(
            self,
            name,
            lambda_function=function,
            payload=sfn.TaskInput.from_object(payload),
            payload_response_only=True,
            retry_on_service_exceptions=False,
            result_path=result_path,
        )
        for retry in (_retry(retry_errors, attempts=3, max_delay=20), THROTTLE_RETRY):
            task.add_retry(**retry)
        return task

    def _acknowledge_state_machine_findings(self, notify: lambda_.IFunction) -> None:
        sm = self.state_machine
        role = sm.role  # its own construct (next to the state machine): acknowledged on it
        acknowledge(
            sm,
            "AwsSolutions-SF1",
            "Logs ERROR events only: ALL would log every check of every "
            "firing (gigabytes a day at 10,000 sources); failures are what operators need.",
        )
        acknowledge(
            role,
            "AwsSolutions-IAM5",
            "CloudWatch Logs delivery and X-Ray actions do not support resource-level permissions.",
            ["Resource::*"],
        )
        acknowledge(
            role,
            "AwsSolutions-IAM5",
            "Lambda tasks may invoke any version of the two DriftGuard functions, nothing else.",
            [f"Resource::{nag_arn(fn)}:*" for fn in (self.function, notify)],
        )

    def _schedule(self, groups: list[ScheduleGroup]) -> None:
        """One EventBridge Scheduler schedule per (cadence, shard), each starting the state machine."""
        # Deleted with the stack (schedules are configuration, not data): a retained group with its
        # generated name would make the next deploy of the same stack fail on "already exists".
        group = scheduler.ScheduleGroup(self, "ScheduleGroup", removal_policy=RemovalPolicy.DESTROY)
        self.schedule_group = group
        role = scheduler_role(self, group)
        for g in groups:
            scheduler.Schedule(
                self,
                f"Schedule-{g.name}",
                schedule_name=g.name,
                schedule_group=group,
                description=f"shard {g.shard + 1} of {g.shard_count}, sources: {len(g.sources)}",
                schedule=scheduler.ScheduleExpression.expression(g.expression, TimeZone.of(g.timezone)),
                time_window=_time_window(g),
                target=targets.StepFunctionsStartExecution(
                    self.state_machine,
                    input=scheduler.ScheduleTargetInput.from_object(
                        {
                            "action": "plan",
                            "cadence": g.cadence_id,
                            "shard": g.shard,
                            "scheduled_time": scheduler.ContextAttribute.scheduled_time,
                            "max_concurrency": g.max_concurrency,
                        }
                    ),
                    role=role,
                    dead_letter_queue=self.schedule_dead_letter_queue,
                    retry_attempts=5,
                    # A firing older than one period is stale: the next one checks the same sources.
                    max_event_age=Duration.seconds(int(min(max(g.period.total_seconds(), 60), 86400))),
                ),
            )


def _time_window(group: ScheduleGroup) -> scheduler.TimeWindow:
    if group.flexible_window is None:
        return scheduler.TimeWindow.off()
    minutes = -(-int(group.flexible_window.total_seconds()) // 60)  # EventBridge counts whole minutes
    if minutes > 1440:
        raise ConfigError(
            f"schedule {group.expression} ({group.timezone}): flexible_window is at most 1 day "
            "(1440 minutes) in EventBridge Scheduler; shorten it"
        )
    return scheduler.TimeWindow.flexible(Duration.minutes(minutes))
