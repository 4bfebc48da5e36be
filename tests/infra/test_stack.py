"""The stack for examples/aws-basic.yaml: every resource and property the deploy guide promises."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aws_cdk.assertions import Annotations, Match
from infra.constructs import layer
from stack_helpers import REPO, Synthesized, acknowledgements, actions_on, flat, role_statements

from driftguard.config import load_config
from driftguard.lambda_runtime import ConfigSlices
from driftguard.schedules import TIMING, plan_schedules

CONFIG = REPO / "examples" / "aws-basic.yaml"
RETRYABLE = {"SourceUnavailable", "QueryTimeout", "StateConflict"}
NOT_RETRYABLE = {
    "ConfigError",
    "PermissionDenied",
    "CheckDefinitionError",
    "SecretError",
    "PermanentDeliveryError",
}


@pytest.fixture(scope="module")
def synth(basic_synth: Synthesized) -> Synthesized:
    return basic_synth


def function_id(synth: Synthesized, prefix: str) -> str:
    (logical_id,) = [k for k in synth.resources("AWS::Lambda::Function") if k.startswith(prefix)]
    return logical_id


def definition(synth: Synthesized) -> dict[str, Any]:
    (machine,) = synth.resources("AWS::StepFunctions::StateMachine").values()
    return json.loads(flat(machine["Properties"]["DefinitionString"]))


def states(definition: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every state, nested Map item processors included."""
    for name, state in definition["States"].items():
        yield name, state
        if "ItemProcessor" in state:
            yield from states(state["ItemProcessor"])


def state(synth: Synthesized, name: str) -> dict[str, Any]:
    return dict(states(definition(synth)))[name]


# ---------------------------------------------------------------------------------------------- Lambda


@pytest.mark.slow
def test_every_function_is_python_3_13_on_arm64_with_xray_and_the_shared_layer(synth: Synthesized) -> None:
    (layer_id,) = synth.resources("AWS::Lambda::LayerVersion")
    functions = synth.resources("AWS::Lambda::Function")
    assert len(functions) == 3  # check, notify, watchdog
    for fn in functions.values():
        props = fn["Properties"]
        assert props["Runtime"] == "python3.13"
        assert props["Architectures"] == ["arm64"]
        assert props["Handler"] == "handler.handler"
        assert props["TracingConfig"] == {"Mode": "Active"}
        assert props["Layers"] == [{"Ref": layer_id}]
        env = props["Environment"]["Variables"]
        assert env["POWERTOOLS_SERVICE_NAME"] == synth.stack.stack_name  # the metrics' service dimension
        assert env["PYDANTIC_DISABLE_PLUGINS"] == "__all__"
        assert env["POWERTOOLS_METRICS_NAMESPACE"] == "DriftGuard"
        assert env["DRIFTGUARD_CONFIG"] == "driftguard.json"
        assert env["LOG_LEVEL"] == "INFO"


@pytest.mark.slow
def test_check_function_memory_timeout_concurrency_and_environment(synth: Synthesized) -> None:
    config = load_config(CONFIG)
    props = synth.json["Resources"][function_id(synth, "ChecksCheckFunction")]["Properties"]
    assert props["MemorySize"] == config.aws.check_memory_mb
    assert props["Timeout"] == 90
    # nothing reserved by default: a new account (a quota of 10) cannot reserve any
    assert "ReservedConcurrentExecutions" not in props
    assert props["Timeout"] == TIMING.function_timeout  # what the shard planner budgets
    assert "VpcConfig" not in props
    env = flat(props["Environment"]["Variables"])
    assert env["DRIFTGUARD_STATE_TABLE"].startswith("<StateStateTable")
    assert env["DRIFTGUARD_IDEMPOTENCY_TABLE"].startswith("<StateIdempotencyTable")
    assert env["DRIFTGUARD_CONFIG_SLICES"] == "driftguard-sources"  # one source's slice per check
    assert "DRIFTGUARD_ALERTS_TOPIC_ARN" not in env  # the notify function publishes every notification
    assert "DRIFTGUARD_DLQ_URL" not in env  # the state machine parks failures, the function never does


@pytest.mark.slow
def test_notify_function_gets_the_state_table_and_the_ses_configuration_set_only(synth: Synthesized) -> None:
    props = synth.json["Resources"][function_id(synth, "NotificationsNotifyFunction")]["Properties"]
    env = flat(props["Environment"]["Variables"])
    assert env["DRIFTGUARD_STATE_TABLE"].startswith("<StateStateTable")
    assert env["DRIFTGUARD_SES_CONFIGURATION_SET"].startswith("<NotificationsSesConfigurationSet")
    assert "DRIFTGUARD_IDEMPOTENCY_TABLE" not in env
    assert "DRIFTGUARD_CONFIG_SLICES" not in env  # a delivery reads no source
    assert props["Timeout"] == 30
    assert props["MemorySize"] == 256  # sized from the config without sources: the floor


@pytest.mark.slow
def test_every_log_group_has_the_configured_retention(synth: Synthesized) -> None:
    groups = synth.resources("AWS::Logs::LogGroup")
    assert len(groups) == 4  # three functions and the state machine
    assert {g["Properties"]["RetentionInDays"] for g in groups.values()} == {
        load_config(CONFIG).aws.log_retention_days
    }
    for fn in synth.resources("AWS::Lambda::Function").values():
        assert fn["Properties"]["LoggingConfig"]["LogGroup"]["Ref"] in groups
    (machine,) = synth.resources("AWS::StepFunctions::StateMachine").values()
    (destination,) = machine["Properties"]["LoggingConfiguration"]["Destinations"]
    assert destination["CloudWatchLogsLogGroup"]["LogGroupArn"]["Fn::GetAtt"][0] in groups


@pytest.mark.slow
def test_layer_is_arm64_python_3_13_with_the_package_installed_and_without_the_runtime_sdk(
    synth: Synthesized,
) -> None:
    (layer_id, layer_version) = next(iter(synth.resources("AWS::Lambda::LayerVersion").items()))
    assert layer_version["Properties"]["CompatibleRuntimes"] == ["python3.13"]
    assert layer_version["Properties"]["CompatibleArchitectures"] == ["arm64"]
    site = synth.asset_dir(layer_id) / "python"
    assert (site / "driftguard" / "schedules.py").is_file()
    assert list(site.glob("driftguard-*.dist-info")), "the package must be installed, not linked"
    assert not list(site.glob("*.egg-link")) and not list(site.glob("__editable__*"))
    assert list(site.glob("pydantic_core/_pydantic_core.cpython-313-aarch64-linux-gnu.so"))
    for name in ("pynamodb", "aws_lambda_powertools", "slack_sdk", "standardwebhooks", "pg8000", "pymysql"):
        assert (site / name).is_dir(), name
    for provided in ("boto3", "botocore", "s3transfer"):
        assert not (site / provided).exists(), provided


@pytest.mark.slow
def test_layer_ships_bytecode_for_the_runtime_python(synth: Synthesized) -> None:
    """/opt is read-only in Lambda: without .pyc files every cold start compiles the layer."""
    if layer.bytecode_python() is None:
        pytest.skip("no CPython 3.13 on this machine: the layer is built without bytecode (warned)")
    (layer_id,) = synth.resources("AWS::Lambda::LayerVersion")
    site = synth.asset_dir(layer_id) / "python"
    modules = ("driftguard/engine.py", "pydantic/main.py", "sqlalchemy/sql/elements.py", "pynamodb/models.py")
    for module in modules:
        source = site / module
        (compiled,) = (source.parent / "__pycache__").glob(f"{source.stem}.{layer.LAMBDA_CACHE_TAG}.pyc")
        flags = int.from_bytes(compiled.read_bytes()[4:8], "little")
        assert flags == 0b01, f"{compiled}: hash-based and unchecked, whatever the unzipped files' times"


@pytest.mark.slow
def test_function_assets_carry_the_compiled_config(synth: Synthesized) -> None:
    config = load_config(CONFIG)
    for prefix in ("ChecksCheckFunction", "WatchdogWatchdogFunction"):
        asset = synth.asset_dir(function_id(synth, prefix))
        plan = json.loads((asset / "driftguard-plan.json").read_text())
        assert set(plan) == {g.name for g in plan_schedules(config)}
    # the watchdog reads every source's schedule: the whole config
    assert (
        load_config(synth.asset_dir(function_id(synth, "WatchdogWatchdogFunction")) / "driftguard.json")
        == config
    )
    # a check reads one source: the config without sources, and one slice per source read back by
    # the runtime to the same model as the whole config
    check = synth.asset_dir(function_id(synth, "ChecksCheckFunction"))
    shared = load_config(check / "driftguard.json")
    assert shared == config.model_copy(update={"sources": []})
    assert sorted(p.name for p in (check / "driftguard-sources").iterdir()) == sorted(
        f"{s.name}.json" for s in config.sources
    )
    slices = ConfigSlices(check / "driftguard-sources", check)
    for source in config.sources:
        assert slices.config_of(shared, source.name) == config.model_copy(update={"sources": [source]})
    # a delivery needs no source: the notify function ships the config without them
    notify = synth.asset_dir(function_id(synth, "NotificationsNotifyFunction"))
    assert load_config(notify / "driftguard.json") == config.model_copy(update={"sources": []})
    assert not (notify / "driftguard-plan.json").exists()


# ----------------------------------------------------------------------------------------------- state


@pytest.mark.slow
def test_state_table_single_table_keys_ttl_pitr_encryption_on_demand_retained(synth: Synthesized) -> None:
    synth.template.has_resource(
        "AWS::DynamoDB::Table",
        {
            "Properties": {
                "KeySchema": [
                    {"AttributeName": "pk", "KeyType": "HASH"},
                    {"AttributeName": "sk", "KeyType": "RANGE"},
                ],
                "BillingMode": "PAY_PER_REQUEST",
                "TimeToLiveSpecification": {"AttributeName": "expires_at", "Enabled": True},
                "PointInTimeRecoverySpecification": {"PointInTimeRecoveryEnabled": True},
                "SSESpecification": {"SSEEnabled": True},
            },
            "DeletionPolicy": "Retain",
            "UpdateReplacePolicy": "Retain",
        },
    )


@pytest.mark.slow
def test_idempotency_table_has_the_powertools_default_shape(synth: Synthesized) -> None:
    synth.template.has_resource(
        "AWS::DynamoDB::Table",
        {
            "Properties": {
                "KeySchema": [{"AttributeName": "id", "KeyType": "HASH"}],
                "BillingMode": "PAY_PER_REQUEST",
                "TimeToLiveSpecification": {"AttributeName": "expiration", "Enabled": True},
                "PointInTimeRecoverySpecification": {"PointInTimeRecoveryEnabled": True},
                "SSESpecification": {"SSEEnabled": True},
            },
            "DeletionPolicy": "Delete",  # records of at most 6 hours: not data worth keeping
        },
    )
    assert len(synth.resources("AWS::DynamoDB::Table")) == 2


@pytest.mark.slow
def test_check_writes_both_tables_and_notify_writes_only_the_state_table(synth: Synthesized) -> None:
    check = role_statements(synth, "ChecksCheckFunctionServiceRole")
    notify = role_statements(synth, "NotificationsNotifyFunctionServiceRole")
    assert {r.split(".")[0] for r in actions_on(check, "dynamodb:PutItem")} == {
        r.split(".")[0] for r in actions_on(check, "dynamodb:GetItem")
    }
    written = " ".join(actions_on(check, "dynamodb:PutItem"))
    assert "<StateStateTable" in written and "<StateIdempotencyTable" in written
    # The notify function claims and marks deliveries in the state table (the delivery ledger).
    for action in ("dynamodb:GetItem", "dynamodb:UpdateItem", "dynamodb:PutItem", "dynamodb:DeleteItem"):
        assert "<StateStateTable" in " ".join(actions_on(notify, action)), action
    assert "<StateIdempotencyTable" not in json.dumps(notify)
    (topic,) = actions_on(notify, "sns:Publish")
    assert topic.startswith("<NotificationsAlertsTopic")


# --------------------------------------------------------------------------------------------- secrets


@pytest.mark.slow
def test_only_the_check_function_reads_only_the_source_secret(synth: Synthesized) -> None:
    prefix = "arn:<AWS::Partition>:secretsmanager:<AWS::Region>:<AWS::AccountId>:secret:"
    check = role_statements(synth, "ChecksCheckFunctionServiceRole")
    notify = role_statements(synth, "NotificationsNotifyFunctionServiceRole")
    assert actions_on(check, "secretsmanager:GetSecretValue") == [
        f"{prefix}driftguard/sources/shop-pg-??????"
    ]
    assert actions_on(notify, "secretsmanager:GetSecretValue") == [
        f"{prefix}driftguard/channels/slack-data-??????"
    ]
    for role in ("SchedulerRole", "ChecksStateMachineRole"):
        assert actions_on(role_statements(synth, f"Checks{role}"), "secretsmanager:GetSecretValue") == []


# --------------------------------------------------------------------------------------- notifications


@pytest.mark.slow
def test_alerts_topic_is_encrypted_with_a_rotating_cmk_and_enforces_tls(synth: Synthesized) -> None:
    (key_id, key) = next(iter(synth.resources("AWS::KMS::Key").items()))
    assert key["Properties"]["EnableKeyRotation"] is True
    principals = [st.get("Principal", {}) for st in key["Properties"]["KeyPolicy"]["Statement"]]
    assert {"Service": "cloudwatch.amazonaws.com"} in principals
    topics = synth.resources("AWS::SNS::Topic")
    assert len(topics) == 2  # alerts and ops
    for topic in topics.values():
        assert topic["Properties"]["KmsMasterKeyId"] == {"Fn::GetAtt": [key_id, "Arn"]}
    policies = synth.resources("AWS::SNS::TopicPolicy")
    assert len(policies) == 2
    for policy in policies.values():
        (deny,) = [s for s in policy["Properties"]["PolicyDocument"]["Statement"] if s["Effect"] == "Deny"]
        assert deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}


@pytest.mark.slow
def test_sns_channel_subscriptions_with_severity_filter(synth: Synthesized) -> None:
    synth.template.has_resource_properties(
        "AWS::SNS::Subscription",
        {
            "Protocol": "email",
            "Endpoint": "data-oncall@example.com",
            "FilterPolicy": {"severity": ["critical"]},
            "TopicArn": {"Ref": Match.string_like_regexp("^NotificationsAlertsTopic")},
        },
    )


@pytest.mark.slow
def test_ses_identity_configuration_set_and_scoped_send_permission(synth: Synthesized) -> None:
    synth.template.has_resource_properties("AWS::SES::EmailIdentity", {"EmailIdentity": "example.com"})
    synth.template.resource_count_is("AWS::SES::ConfigurationSet", 1)
    notify = role_statements(synth, "NotificationsNotifyFunctionServiceRole")
    sends = actions_on(notify, "ses:SendEmail")
    assert "arn:<AWS::Partition>:ses:<AWS::Region>:<AWS::AccountId>:identity/example.com" in sends
    assert any(":configuration-set/<NotificationsSesConfigurationSet" in r for r in sends)
    assert "*" not in sends
    assert actions_on(role_statements(synth, "ChecksCheckFunctionServiceRole"), "ses:SendEmail") == []


@pytest.mark.slow
def test_queues_are_encrypted_tls_only_and_keep_messages_14_days(synth: Synthesized) -> None:
    queues = synth.resources("AWS::SQS::Queue")
    assert len(queues) == 3  # delivery DLQ, scheduler DLQ, watchdog schedule DLQ
    for queue in queues.values():
        assert queue["Properties"]["SqsManagedSseEnabled"] is True
        assert queue["Properties"]["MessageRetentionPeriod"] == 14 * 86400
    for policy in synth.resources("AWS::SQS::QueuePolicy").values():
        (deny,) = policy["Properties"]["PolicyDocument"]["Statement"]
        assert deny["Effect"] == "Deny" and deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    assert len(synth.resources("AWS::SQS::QueuePolicy")) == 3


# ------------------------------------------------------------------------------------------- schedules


@pytest.mark.slow
def test_one_schedule_per_cadence_shard_starting_the_state_machine(synth: Synthesized) -> None:
    (group,) = plan_schedules(load_config(CONFIG))
    schedules = synth.resources("AWS::Scheduler::Schedule")
    (schedule,) = [s for s in schedules.values() if s["Properties"].get("Name") == group.name]
    props = flat(schedule["Properties"])
    # an aligned rate becomes a cron at its slot's offset: staggered firings need exact times
    assert props["ScheduleExpression"] == "cron(0/15 * * * ? *)"
    assert props["ScheduleExpressionTimezone"] == "UTC"
    assert props["FlexibleTimeWindow"] == {"Mode": "OFF"}
    target = props["Target"]
    assert target["Arn"].startswith("<ChecksStateMachine")
    assert target["DeadLetterConfig"]["Arn"].startswith("<ChecksScheduleDeadLetterQueue")
    assert target["RetryPolicy"] == {"MaximumRetryAttempts": 5, "MaximumEventAgeInSeconds": 900}
    assert json.loads(target["Input"]) == {
        "action": "plan",
        "cadence": group.cadence_id,
        "shard": 0,
        "scheduled_time": "<aws.scheduler.scheduled-time>",
        "max_concurrency": group.max_concurrency,  # servers at once: the budget over the server's limit
    }
    # budget 10 (nothing reserved); shop-pg is its server's only source: one check at a time there,
    # so the firing may run 10 servers at once (a batch counts at most its size, not its limit 2)
    assert group.max_concurrency == 10
    scheduler = role_statements(synth, "ChecksSchedulerRole")
    (started,) = actions_on(scheduler, "states:StartExecution")
    assert started.startswith("<ChecksStateMachine")
    (parked,) = actions_on(scheduler, "sqs:SendMessage")
    assert parked.startswith("<ChecksScheduleDeadLetterQueue")


# --------------------------------------------------------------------------------------- state machine


@pytest.mark.slow
def test_state_machine_is_express_traced_and_logs_errors(synth: Synthesized) -> None:
    synth.template.has_resource_properties(
        "AWS::StepFunctions::StateMachine",
        {
            "StateMachineType": "EXPRESS",
            "TracingConfiguration": {"Enabled": True},
            "LoggingConfiguration": {"Level": "ERROR", "IncludeExecutionData": False},
        },
    )
    assert definition(synth)["TimeoutSeconds"] == 300


@pytest.mark.slow
def test_flow_plans_then_maps_sources_with_concurrency_from_the_schedule(synth: Synthesized) -> None:
    flow = definition(synth)
    assert flow["StartAt"] == "Plan"
    plan = flow["States"]["Plan"]
    assert plan["Parameters"] == {
        "action": "plan",
        "cadence.$": "$.cadence",
        "shard.$": "$.shard",
        "scheduled_time.$": "$.scheduled_time",
        "started.$": "$$.Execution.StartTime",  # the firing's deadline counts from the start
    }
    assert plan["ResultPath"] == "$.plan" and plan["Next"] == "Check servers"
    servers = flow["States"]["Check servers"]
    assert servers["Type"] == "Map"
    assert servers["ItemsPath"] == "$.plan.servers"
    assert servers["MaxConcurrencyPath"] == "$.max_concurrency"  # servers at once: the schedule's input
    assert servers["ResultPath"] is None
    assert servers["ItemProcessor"]["StartAt"] == "Check sources"
    sources = servers["ItemProcessor"]["States"]["Check sources"]
    assert sources["Type"] == "Map"
    assert sources["ItemsPath"] == "$.sources"
    assert sources["MaxConcurrencyPath"] == "$.max_concurrency"  # the server's own limit
    assert sources["ResultPath"] is None
    assert sources["ItemProcessor"]["StartAt"] == "Check source"


@pytest.mark.slow
def test_check_retries_only_retryable_errors_with_full_jitter_and_catches_everything(
    synth: Synthesized,
) -> None:
    check = state(synth, "Check source")
    assert check["Parameters"] == {
        "source.$": "$.source",
        "scheduled_time.$": "$.scheduled_time",
        "deadline.$": "$.deadline",
    }
    retried = {e for r in check["Retry"] for e in r["ErrorEquals"]}
    assert retried >= RETRYABLE
    assert {
        "Lambda.ServiceException",
        "Lambda.TooManyRequestsException",
        "Lambda.SdkClientException",
    } <= retried
    assert not retried & NOT_RETRYABLE
    for retry in check["Retry"]:
        assert retry["JitterStrategy"] == "FULL"
        assert retry["BackoffRate"] == 2 and retry["IntervalSeconds"] == 2
        assert "MaxDelaySeconds" in retry
    (first,) = [r for r in check["Retry"] if set(r["ErrorEquals"]) >= RETRYABLE]
    assert first["MaxAttempts"] == 3
    # the shard planner's worst case counts exactly these retries
    policy = TIMING.source_errors
    assert (
        first["MaxAttempts"],
        first["IntervalSeconds"],
        first["BackoffRate"],
        first["MaxDelaySeconds"],
    ) == (
        policy.attempts,
        policy.interval,
        policy.rate,
        policy.max_delay,
    )
    # Another execution holding the check is waited for and retried, never recorded as a failure.
    in_progress = {
        "ErrorEquals": ["CheckInProgress"],
        "ResultPath": "$.error",
        "Next": "Checked by another execution",
    }
    assert check["Catch"] == [
        in_progress,
        {"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": "Record failure"},
    ]
    record = state(synth, "Record failure")
    assert record["Catch"][0] == in_progress
    for task in (check, record):
        assert ["CheckInProgress"] in [r["ErrorEquals"] for r in task["Retry"]]
    assert state(synth, "Checked by another execution")["End"] is True
    assert record["Parameters"] == {
        "action": "record_failure",
        "source.$": "$.source",
        "scheduled_time.$": "$.scheduled_time",
        "error.$": "$.error",
    }
    assert record["Next"] == check["Next"] == "Deliver notifications"


@pytest.mark.slow
def test_no_failure_inside_a_source_aborts_the_shard(synth: Synthesized) -> None:
    """In an inline Map one failed iteration fails them all: every Lambda task of an iteration catches."""
    servers = definition(synth)["States"]["Check servers"]["ItemProcessor"]
    processor = servers["States"]["Check sources"]["ItemProcessor"]
    for name, st in states(processor):
        if st["Type"] == "Task" and ":sqs:sendMessage" not in st["Resource"]:
            assert [c["ErrorEquals"] for c in st.get("Catch", [])][-1] == ["States.ALL"], name


@pytest.mark.slow
def test_notifications_go_by_id_through_the_notify_function_retried_then_dead_lettered(
    synth: Synthesized,
) -> None:
    deliver = state(synth, "Deliver notifications")
    assert deliver["ItemsPath"] == "$.notifications" and deliver["ResultPath"] == "$.deliveries"
    notify = state(synth, "Deliver with notify function")
    assert deliver["ItemProcessor"]["StartAt"] == "Deliver with notify function"
    # Ids only: the notify function reads the body from the store (no body in state, whatever its size).
    assert notify["Parameters"] == {"id.$": "$.id", "channel.$": "$.channel"}
    retried = {e for r in notify["Retry"] for e in r["ErrorEquals"]}
    assert "RetryableDeliveryError" in retried and not retried & NOT_RETRYABLE
    assert notify["Catch"] == [
        {"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": "Park undelivered notification"}
    ]
    assert notify["End"] is True
    park = state(synth, "Park undelivered notification")
    assert park["Resource"].endswith(":states:::sqs:sendMessage")
    assert park["Parameters"]["QueueUrl"].startswith("<NotificationsDeliveryDeadLetterQueue")
    assert park["Parameters"]["MessageBody"]["kind"] == "delivery"
    assert park["Parameters"]["MessageBody"]["error.$"] == "$.error"
    assert "notification.$" not in park["Parameters"]["MessageBody"]
    assert state(synth, "Dead-lettered")["Parameters"]["status"] == "failed"


@pytest.mark.slow
def test_deliveries_are_recorded_and_a_failed_record_is_parked(synth: Synthesized) -> None:
    record = state(synth, "Record deliveries")
    assert record["Parameters"] == {"action": "record_deliveries", "results.$": "$.deliveries"}
    assert record["Catch"][0]["Next"] == "Park unrecorded deliveries"
    assert (
        state(synth, "Park unrecorded deliveries")["Parameters"]["MessageBody"]["kind"]
        == "unrecorded_deliveries"
    )
    assert (
        state(synth, "Park unrecorded failure")["Parameters"]["MessageBody"]["kind"]
        == "unrecorded_check_failure"
    )


@pytest.mark.slow
def test_state_machine_role_invokes_the_functions_and_parks_only(synth: Synthesized) -> None:
    role = role_statements(synth, "ChecksStateMachineRole")
    invoked = " ".join(actions_on(role, "lambda:InvokeFunction"))
    assert "<ChecksCheckFunction" in invoked and "<NotificationsNotifyFunction" in invoked
    assert actions_on(role, "sns:Publish") == []  # the notify function publishes, after its claim
    (queue,) = actions_on(role, "sqs:SendMessage")
    assert queue.startswith("<NotificationsDeliveryDeadLetterQueue")


# ------------------------------------------------------------------------------------------ monitoring


def alarms(synth: Synthesized) -> dict[str, dict[str, Any]]:
    """The alarms by their construct name (logical id without the Monitoring prefix and hash)."""
    return {
        k.removeprefix("Monitoring").rsplit("Alarm", 1)[0]: flat(a["Properties"])
        for k, a in synth.resources("AWS::CloudWatch::Alarm").items()
    }


def math(alarm: dict[str, Any]) -> tuple[str, dict[str, dict[str, Any]]]:
    """A metric-math alarm's expression and its metrics by id."""
    metrics = alarm["Metrics"]
    (expression,) = [m["Expression"] for m in metrics if "Expression" in m]
    return expression, {m["Id"]: m["MetricStat"] for m in metrics if "MetricStat" in m}


@pytest.mark.slow
def test_every_alarm_an_on_call_engineer_needs_goes_to_the_ops_topic(synth: Synthesized) -> None:
    config = load_config(CONFIG)
    (cadence,) = {plan.cadence_id for plan in plan_schedules(config)}
    found = alarms(synth)
    assert set(found) == {
        f"Heartbeat{cadence.replace('-', '')}",
        "FleetFailureRate",
        "Criticalshoppg",  # shop-pg is tagged critical
        *(
            f"{fn}{kind}"
            for fn in ("check", "notify", "watchdog")
            for kind in ("Errors", "NearTimeout", "Throttles")
        ),
        "ExecutionsFailed",
        "stateTableThrottles",
        "idempotencyTableThrottles",
        "SchedulerTargetErrors",
        "deliveryDeadLetters",
        "scheduleDeadLetters",
        "watchdogDeadLetters",
        "AlertsUndelivered",
        "SesUndelivered",
    }
    for alarm in found.values():
        (action,) = alarm["AlarmActions"]
        assert action.startswith("<MonitoringOpsTopic")
    synth.template.has_resource_properties(
        "AWS::SNS::Subscription", {"Protocol": "email", "Endpoint": "platform-oncall@example.com"}
    )


@pytest.mark.slow
def test_ops_topic_lets_only_this_accounts_alarms_publish(synth: Synthesized) -> None:
    """enforce_ssl alone leaves a Deny and no Allow: CloudWatch could not publish a single alarm."""
    (policy,) = [
        flat(p["Properties"]["PolicyDocument"])
        for p in synth.resources("AWS::SNS::TopicPolicy").values()
        if p["Properties"]["Topics"][0]["Ref"].startswith("MonitoringOpsTopic")
    ]
    (allow,) = [st for st in policy["Statement"] if st["Effect"] == "Allow"]
    assert allow["Principal"] == {"Service": "cloudwatch.amazonaws.com"}
    assert allow["Action"] == "sns:Publish" and allow["Resource"].startswith("<MonitoringOpsTopic")
    assert allow["Condition"] == {
        "StringEquals": {"aws:SourceAccount": "<AWS::AccountId>"},
        "ArnLike": {
            "aws:SourceArn": "arn:<AWS::Partition>:cloudwatch:<AWS::Region>:<AWS::AccountId>:alarm:*"
        },
    }
    (key,) = synth.resources("AWS::KMS::Key").values()
    (cloudwatch,) = [
        flat(st)
        for st in key["Properties"]["KeyPolicy"]["Statement"]
        if st.get("Principal") == {"Service": "cloudwatch.amazonaws.com"}
    ]
    assert cloudwatch["Condition"] == allow["Condition"]


@pytest.mark.slow
def test_heartbeat_per_cadence_waits_its_longest_gap_plus_window_and_slack(synth: Synthesized) -> None:
    (cadence,) = {plan.cadence_id for plan in plan_schedules(load_config(CONFIG))}
    heartbeat = alarms(synth)[f"Heartbeat{cadence.replace('-', '')}"]
    assert heartbeat["MetricName"] == "ChecksRun" and heartbeat["Namespace"] == "DriftGuard"
    assert heartbeat["Dimensions"] == [
        {"Name": "cadence", "Value": cadence},
        {"Name": "service", "Value": synth.stack.stack_name},
    ]
    assert heartbeat["Period"] == (15 + 5 + 10) * 60  # rate 15m, flexible window 5m, 10m of slack
    assert heartbeat["ComparisonOperator"] == "LessThanThreshold" and heartbeat["Threshold"] == 1
    assert heartbeat["TreatMissingData"] == "breaching"


@pytest.mark.slow
def test_fleet_alarm_is_a_failure_rate_with_a_floor_and_critical_sources_alarm_alone(
    synth: Synthesized,
) -> None:
    found = alarms(synth)
    expression, metrics = math(found["FleetFailureRate"])
    assert expression == "IF(failed >= 3 AND checks > 0, 100 * failed / checks, 0)"
    assert metrics["failed"]["Metric"]["MetricName"] == "CheckFailures"
    assert metrics["checks"]["Metric"]["MetricName"] == "ChecksRun"
    assert found["FleetFailureRate"]["Threshold"] == 10
    critical = found["Criticalshoppg"]
    assert critical["MetricName"] == "CheckFailures" and critical["Threshold"] == 1
    assert {"Name": "source", "Value": "shop-pg"} in critical["Dimensions"]


@pytest.mark.slow
def test_lambda_table_scheduler_and_delivery_alarms(synth: Synthesized) -> None:
    found = alarms(synth)
    expression, metrics = math(found["checkErrors"])
    assert expression.startswith("IF(errors >= 5 AND invocations > 0")
    assert {m["Metric"]["MetricName"] for m in metrics.values()} == {"Errors", "Invocations"}
    near = found["checkNearTimeout"]
    assert near["MetricName"] == "Duration" and near["Statistic"] == "Maximum"
    assert near["Threshold"] == 0.8 * 90_000
    assert found["notifyNearTimeout"]["Threshold"] == 0.8 * 30_000
    _, throttled = math(found["stateTableThrottles"])
    assert {m["Metric"]["MetricName"] for m in throttled.values()} == {
        "ReadThrottleEvents",
        "WriteThrottleEvents",
    }
    _, scheduler = math(found["SchedulerTargetErrors"])
    assert {m["Metric"]["Namespace"] for m in scheduler.values()} == {"AWS/Scheduler"}
    assert {m["Metric"]["MetricName"] for m in scheduler.values()} == {
        "TargetErrorCount",
        "InvocationDroppedCount",
        "InvocationsFailedToBeSentToDeadLetterCount",
    }
    assert found["AlertsUndelivered"]["MetricName"] == "NumberOfNotificationsFailed"
    _, ses = math(found["SesUndelivered"])
    assert {m["Metric"]["MetricName"] for m in ses.values()} == {
        "Bounce",
        "Complaint",
        "Reject",
        "RenderingFailure",
    }
    for metric in ses.values():
        (dimension,) = metric["Metric"]["Dimensions"]
        assert dimension["Name"] == "ses:configuration-set"
        assert dimension["Value"].startswith("<NotificationsSesConfigurationSet")
    synth.template.has_resource_properties(
        "AWS::SES::ConfigurationSetEventDestination",
        {
            "EventDestination": {
                "CloudWatchDestination": {
                    "DimensionConfigurations": [Match.object_like({"DimensionName": "ses:configuration-set"})]
                },
                "MatchingEventTypes": ["bounce", "complaint", "reject", "renderingFailure"],
            }
        },
    )


@pytest.mark.slow
def test_the_cost_model_prices_the_alarm_metrics_the_stack_creates(synth: Synthesized) -> None:
    from bench.perf.cost_model import alarm_metrics

    billed = sum(
        len([m for m in a["Properties"].get("Metrics", []) if "MetricStat" in m]) or 1
        for a in synth.resources("AWS::CloudWatch::Alarm").values()
    )
    assert billed == alarm_metrics(cadences=1, critical_sources=1, ses=True)


@pytest.mark.slow
def test_destroy_then_deploy_leaves_only_the_state_table_behind(synth: Synthesized) -> None:
    """A retained resource with a fixed name blocks the next create: only data is retained, unnamed."""
    kept = {k: r for k, r in synth.json["Resources"].items() if r.get("DeletionPolicy") == "Retain"}
    assert [r["Type"] for r in kept.values()] == ["AWS::DynamoDB::Table"]
    (table,) = kept.values()
    assert "TableName" not in table["Properties"]
    (group,) = synth.resources("AWS::Scheduler::ScheduleGroup").values()
    assert group["DeletionPolicy"] == "Delete"


@pytest.mark.slow
def test_dashboard_has_the_overview_and_a_panel_for_each_dashboard_source(synth: Synthesized) -> None:
    (dashboard,) = synth.resources("AWS::CloudWatch::Dashboard").values()
    body = json.loads(flat(dashboard["Properties"]["DashboardBody"]))
    titles = [w["properties"]["title"] for w in body["widgets"]]
    for title in (
        "Checks run / failed",
        "Notifications sent / failed",
        "Executions",
        "Dead-letter queue depth",
    ):
        assert title in titles
    assert "Source shop-pg" in titles
    (panel,) = [w for w in body["widgets"] if w["properties"]["title"] == "Source shop-pg"]
    per_source = [m[:6] for m in panel["properties"]["metrics"]]
    assert per_source == [
        ["DriftGuard", "ChecksRun", "service", synth.stack.stack_name, "source", "shop-pg"],
        ["DriftGuard", "Anomalies", "service", synth.stack.stack_name, "source", "shop-pg"],
    ]


# ---------------------------------------------------------------------------------------------- checks


@pytest.mark.slow
def test_cdk_nag_ran_on_the_stack_and_found_nothing_unacknowledged(synth: Synthesized) -> None:
    """cdk-nag v3 runs as a validation plugin and app.synth() raises on any unacknowledged finding
    (tests/infra/test_least_privilege.py injects one and sees it raise), so the synth succeeding is
    the clean result; here: the acknowledgements it honoured are the ones the stack wrote."""
    report = json.loads((synth.outdir / "validation-report.json").read_text())
    assert report["pluginReports"] == []  # a report is written only with violations in it
    assert (
        Annotations.from_stack(synth.stack).find_error("*", Match.string_like_regexp("AwsSolutions-.*")) == []
    )
    assert {finding.split("[", 1)[0] for finding in acknowledgements(synth)} == {
        "AwsSolutions-IAM5",  # X-Ray, Logs delivery, Lambda versions, kms:GenerateDataKey*
        "AwsSolutions-L1",  # the runtime pinned with the layer
        "AwsSolutions-SF1",  # ERROR-level execution logs
        "AwsSolutions-SQS3",  # the dead-letter queues themselves
    }
    assert "AwsSolutions-IAM4" not in " ".join(acknowledgements(synth))  # no AWS-managed policy left


@pytest.mark.slow
def test_cfn_lint_is_clean(synth: Synthesized) -> None:
    """Errors and warnings alike, except W3005: CDK makes a function depend on its role explicitly
    (and through GetAtt), which is redundant, not wrong."""
    result = subprocess.run(
        [str(Path(sys.executable).parent / "cfn-lint"), str(synth.template_file), "--ignore-checks", "W3005"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.slow
def test_outputs_name_what_an_operator_needs(synth: Synthesized) -> None:
    assert set(synth.json["Outputs"]) == {
        "StateMachineArn",
        "AlertsTopicArn",
        "OpsTopicArn",
        "StateTableName",
        "DeliveryDeadLetterQueueUrl",
        "ScheduleDeadLetterQueueUrl",
        "DashboardName",
    }


@pytest.mark.slow
def test_the_watchdog_runs_every_five_minutes_and_may_deliver(synth: Synthesized) -> None:
    (watchdog,) = [
        flat(s["Properties"])
        for s in synth.resources("AWS::Scheduler::Schedule").values()
        if "Name" not in s["Properties"]
    ]
    assert watchdog["ScheduleExpression"] == "rate(5 minutes)"
    assert watchdog["Target"]["Arn"].startswith("<WatchdogWatchdogFunction")
    assert json.loads(watchdog["Target"]["Input"]) == {
        "action": "watchdog",
        "time": "<aws.scheduler.scheduled-time>",
    }
    statements = role_statements(synth, "WatchdogWatchdogFunctionServiceRole")
    assert any(r.startswith("<NotificationsAlertsTopic") for r in actions_on(statements, "sns:Publish"))
    assert actions_on(statements, "dynamodb:PutItem"), "it records missed runs"
