"""The stack for examples/aws-vpc.yaml: private sources, shared servers, several cadences."""

from __future__ import annotations

import json

import pytest
from aws_cdk.assertions import Match
from stack_helpers import REPO, SECRET_ARN, Synthesized, actions_on, flat, only, role_statements, synthesize

from driftguard.config import load_config
from driftguard.schedules import plan_schedules

CONFIG = REPO / "examples" / "aws-vpc.yaml"
READ_SECRET = "secretsmanager:GetSecretValue"


@pytest.fixture(scope="module")
def synth(pinned_layer: None, tmp_path_factory: pytest.TempPathFactory) -> Synthesized:
    result = synthesize(CONFIG, tmp_path_factory.mktemp("vpc"))
    print(f"\nsynth of {CONFIG.name}: {result.seconds:.1f}s")
    return result


@pytest.mark.slow
def test_check_function_runs_in_the_configured_subnets_and_notify_does_not(synth: Synthesized) -> None:
    vpc = load_config(CONFIG).aws.vpc
    assert vpc is not None
    check = only(synth, "AWS::Lambda::Function", "ChecksCheckFunction")
    assert check["VpcConfig"] == {"SubnetIds": vpc.subnet_ids, "SecurityGroupIds": vpc.security_group_ids}
    assert "VpcConfig" not in only(synth, "AWS::Lambda::Function", "NotificationsNotifyFunction")
    role = only(synth, "AWS::IAM::Role", "ChecksCheckFunctionServiceRole")
    assert "ManagedPolicyArns" not in role  # AWSLambdaVPCAccessExecutionRole also allows logs on every group
    statements = role_statements(synth, "ChecksCheckFunctionServiceRole")
    for action in (
        "ec2:CreateNetworkInterface",
        "ec2:DeleteNetworkInterface",
        "ec2:DescribeNetworkInterfaces",
    ):
        assert actions_on(statements, action) == ["*"]
    assert actions_on(statements, "logs:PutLogEvents")[0].startswith("<ChecksCheckFunctionLogs")


@pytest.mark.slow
def test_the_weekday_heartbeat_waits_out_the_weekend(synth: Synthesized) -> None:
    """`0 6 * * 1-5` in Europe/Berlin: the longest gap is Friday 06:00 to Monday 06:00 across the
    October night that gains an hour (73 h), not the 24 h of a weekday."""
    (weekdays,) = [
        a["Properties"]
        for a in synth.resources("AWS::CloudWatch::Alarm").values()
        if {
            "Name": "cadence",
            "Value": next(g.cadence_id for g in plan_schedules(load_config(CONFIG)) if "2-6" in g.expression),
        }
        in a["Properties"].get("Dimensions", [])
    ]
    assert (
        weekdays["Period"] == (73 * 60 + 15 + 10) * 60
    )  # the gap, the 15-minute window, 10 minutes of slack


@pytest.mark.slow
def test_reserved_concurrency_comes_from_the_config(synth: Synthesized) -> None:
    assert only(synth, "AWS::Lambda::Function", "ChecksCheckFunction")["ReservedConcurrentExecutions"] == 20


@pytest.mark.slow
def test_each_cadence_gets_its_schedule_and_a_shared_server_limits_its_shard(synth: Synthesized) -> None:
    schedules = [flat(s["Properties"]) for s in synth.resources("AWS::Scheduler::Schedule").values()]
    assert {s["Name"] for s in schedules} == {g.name for g in plan_schedules(load_config(CONFIG))}
    by_expression = {s["ScheduleExpression"]: s for s in schedules}
    half_hourly = by_expression["cron(*/30 * * * ? *)"]
    assert half_hourly["ScheduleExpressionTimezone"] == "Europe/Berlin"
    assert half_hourly["FlexibleTimeWindow"] == {"Mode": "OFF"}
    # billing-pg (max_concurrency 1) and billing-pg-archive share billing.internal.example.com:5432
    assert json.loads(half_hourly["Target"]["Input"])["max_concurrency"] == 1
    weekdays = by_expression["cron(0 6 ? * 2-6 *)"]  # cron 1-5 (Mon-Fri) in AWS day numbers
    assert weekdays["FlexibleTimeWindow"] == {"Mode": "FLEXIBLE", "MaximumWindowInMinutes": 15}
    assert json.loads(weekdays["Target"]["Input"])["max_concurrency"] == 10
    assert weekdays["Target"]["RetryPolicy"]["MaximumEventAgeInSeconds"] == 86400


@pytest.mark.slow
def test_secret_arns_are_used_as_given_and_names_become_patterns(synth: Synthesized) -> None:
    check = actions_on(role_statements(synth, "ChecksCheckFunctionServiceRole"), READ_SECRET)
    assert sorted(check) == [
        f"{SECRET_ARN}driftguard/sources/inventory-mysql-??????",
        "arn:aws:secretsmanager:eu-central-1:123456789012:secret:driftguard/billing-AbCdEf",
    ]
    notify = actions_on(role_statements(synth, "NotificationsNotifyFunctionServiceRole"), READ_SECRET)
    assert notify == [f"{SECRET_ARN}driftguard/channels/incident-hook-??????"]


@pytest.mark.slow
def test_every_subscription_protocol_and_the_topic_may_invoke_the_lambda_endpoint(synth: Synthesized) -> None:
    router = "arn:aws:lambda:eu-central-1:123456789012:function:incident-router"
    subscriptions = {
        s["Properties"]["Protocol"]: s["Properties"]
        for s in synth.resources("AWS::SNS::Subscription").values()
    }
    assert set(subscriptions) == {"email", "sqs", "lambda", "https"}
    assert subscriptions["sqs"]["Endpoint"] == "arn:aws:sqs:eu-central-1:123456789012:driftguard-events"
    assert "FilterPolicy" not in subscriptions["sqs"]
    assert subscriptions["lambda"]["Endpoint"] == router
    assert subscriptions["lambda"]["FilterPolicy"] == {"severity": ["critical"]}
    assert subscriptions["https"]["FilterPolicy"] == {"severity": ["warning", "critical"]}
    synth.template.has_resource_properties(
        "AWS::Lambda::Permission",
        {
            "Action": "lambda:InvokeFunction",
            "FunctionName": router,
            "Principal": "sns.amazonaws.com",
            "SourceArn": {"Ref": Match.string_like_regexp("^NotificationsAlertsTopic")},
        },
    )


@pytest.mark.slow
def test_no_ses_without_an_ses_channel(synth: Synthesized) -> None:
    synth.template.resource_count_is("AWS::SES::EmailIdentity", 0)
    synth.template.resource_count_is("AWS::SES::ConfigurationSet", 0)
    retention = {g["Properties"]["RetentionInDays"] for g in synth.resources("AWS::Logs::LogGroup").values()}
    assert retention == {30}


@pytest.mark.slow
def test_each_cadence_has_its_heartbeat(synth: Synthesized) -> None:
    """`*/30 * * * *` in Europe/Berlin: 30 minutes, but the October night that repeats an hour can
    stretch one gap by that hour; no flexible window; 10 minutes of slack."""
    cadences = {g.cadence_id: g for g in plan_schedules(load_config(CONFIG))}
    (half_hourly,) = [c for c, g in cadences.items() if g.expression.startswith("cron(*/30")]
    periods = {
        d["Value"]: a["Properties"]["Period"]
        for a in synth.resources("AWS::CloudWatch::Alarm").values()
        for d in a["Properties"].get("Dimensions", [])
        if d["Name"] == "cadence"
    }
    assert set(periods) == set(cadences)
    assert periods[half_hourly] == (30 + 60 + 10) * 60
