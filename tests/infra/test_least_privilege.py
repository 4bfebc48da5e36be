"""Least privilege: the actions the code calls, conditions on service principals, cdk-nag that bites."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from aws_cdk import App
from aws_cdk import aws_sqs as sqs
from infra.constructs.state import IDEMPOTENCY_ACTIONS, STORE_READ_ACTIONS, STORE_WRITE_ACTIONS
from infra.stack import add_stack
from stack_helpers import REPO, Synthesized, actions_on, flat, role_statements

STORE = REPO / "layers" / "driftguard" / "store" / "dynamodb.py"
PYNAMODB_CALLS = {
    r"\._model\.get\(": "dynamodb:GetItem",
    r"\._model\.query\(": "dynamodb:Query",
    r"\._model\.batch_get\(": "dynamodb:BatchGetItem",
    r"\._model\.batch_write\(": "dynamodb:BatchWriteItem",
    r"\._model\.scan\(": "dynamodb:Scan",
    r"transaction\.save\(|\)\.save\(\)": "dynamodb:PutItem",
    r"transaction\.delete\(|\)\.delete\(": "dynamodb:DeleteItem",
    r"transaction\.update\(|\)\.update\(|marker\.update\(": "dynamodb:UpdateItem",
    r"transaction\.condition_check\(": "dynamodb:ConditionCheckItem",
}
OPERATOR_ONLY = {"dynamodb:Scan"}
"""Only the CLI's listings across sources scan (`DynamoStore._scan`); no function does."""


def store_actions() -> set[str]:
    code = STORE.read_text()
    return {action for pattern, action in PYNAMODB_CALLS.items() if re.search(pattern, code)}


def table_actions(statements: list[dict[str, Any]], table_prefix: str) -> set[str]:
    found: set[str] = set()
    for st in statements:
        resources = st["Resource"] if isinstance(st["Resource"], list) else [st["Resource"]]
        if any(str(r).startswith(f"<{table_prefix}") for r in resources):
            found |= set(st["Action"] if isinstance(st["Action"], list) else [st["Action"]])
    return found


def test_the_state_table_grants_are_the_calls_the_store_makes() -> None:
    assert "dynamodb:Scan" in store_actions(), "the operator listings still scan: keep OPERATOR_ONLY honest"
    assert set(STORE_READ_ACTIONS) | set(STORE_WRITE_ACTIONS) == store_actions() - OPERATOR_ONLY


@pytest.mark.slow
def test_functions_get_only_those_dynamodb_actions(basic_synth: Synthesized) -> None:
    check = role_statements(basic_synth, "ChecksCheckFunctionServiceRole")
    notify = role_statements(basic_synth, "NotificationsNotifyFunctionServiceRole")
    assert table_actions(check, "StateStateTable") == set(STORE_READ_ACTIONS) | set(STORE_WRITE_ACTIONS)
    assert table_actions(check, "StateIdempotencyTable") == set(IDEMPOTENCY_ACTIONS)
    # the delivery ledger claims and marks each notification: the notify function writes too
    assert table_actions(notify, "StateStateTable") == set(STORE_READ_ACTIONS) | set(STORE_WRITE_ACTIONS)
    for statements in (check, notify):
        for st in statements:
            actions = st["Action"] if isinstance(st["Action"], list) else [st["Action"]]
            assert not {"dynamodb:Scan", "dynamodb:BatchWriteItem"} & set(actions)
            assert not [
                a for a in actions if (a.startswith("dynamodb:") and "Stream" in a) or a == "dynamodb:*"
            ]


@pytest.mark.slow
def test_functions_write_logs_to_their_own_log_group_only(basic_synth: Synthesized) -> None:
    for role in basic_synth.resources("AWS::IAM::Role").values():
        assert "ManagedPolicyArns" not in role["Properties"], "no AWS-managed policy (logs:* on every group)"
    for prefix in ("ChecksCheckFunction", "NotificationsNotifyFunction"):
        statements = role_statements(basic_synth, f"{prefix}ServiceRole")
        (group,) = actions_on(statements, "logs:PutLogEvents")
        assert group == f"<{prefix}Logs{group.split('Logs', 1)[1]}"
        assert group.endswith(".Arn>")  # the group's own ARN (log-group:NAME:*), not a pattern
        assert actions_on(statements, "logs:CreateLogGroup") == []


@pytest.mark.slow
def test_every_service_principal_but_lambdas_carries_source_conditions(basic_synth: Synthesized) -> None:
    """Scheduler and Step Functions role trusts, and CloudWatch on the KMS key and the ops topic, are
    limited to this account (and this schedule group / state machines / alarms). Lambda execution
    roles are the exception: only a principal of this account may pass them (iam:PassRole)."""
    policies: list[tuple[str, dict[str, Any]]] = []
    for logical_id, role in basic_synth.resources("AWS::IAM::Role").items():
        policies += [(logical_id, st) for st in role["Properties"]["AssumeRolePolicyDocument"]["Statement"]]
    for logical_id, key in basic_synth.resources("AWS::KMS::Key").items():
        policies += [(logical_id, st) for st in key["Properties"]["KeyPolicy"]["Statement"]]
    for logical_id, policy in basic_synth.resources("AWS::SNS::TopicPolicy").items():
        policies += [(logical_id, st) for st in policy["Properties"]["PolicyDocument"]["Statement"]]
    services = 0
    for logical_id, st in policies:
        service = st.get("Principal", {}).get("Service") if isinstance(st.get("Principal"), dict) else None
        if service is None or st["Effect"] != "Allow" or service == "lambda.amazonaws.com":
            continue
        services += 1
        condition = flat(st.get("Condition", {}))
        assert condition.get("StringEquals", {}).get("aws:SourceAccount") == "<AWS::AccountId>", logical_id
        source = (
            condition.get("StringEquals", {}).get("aws:SourceArn") or condition["ArnLike"]["aws:SourceArn"]
        )
        assert ":<AWS::AccountId>:" in source or source.endswith(".Arn>"), logical_id
    # scheduler (checks, watchdog), states, cloudwatch on the key, cloudwatch on the ops topic
    assert services == 5


@pytest.mark.slow
def test_cdk_nag_fails_the_synth_on_an_injected_violation(pinned_layer: None, tmp_path: Path) -> None:
    """The clean synth means something only if a finding fails it: an unacknowledged queue without
    TLS enforcement or a dead-letter queue must stop the synth."""
    app = App(outdir=str(tmp_path / "cdk.out"))
    stack = add_stack(app, REPO / "examples" / "aws-basic.yaml")
    sqs.Queue(stack, "InjectedViolation")
    with pytest.raises(Exception, match=r"AwsSolutions-SQS[34]") as raised:
        app.synth()
    assert "InjectedViolation" in str(raised.value)


def test_the_notify_function_may_read_a_slack_bot_token_secret() -> None:
    from infra.constructs.notifications import channel_secrets

    from driftguard.config import parse_config

    config = parse_config(
        """
channels:
  - {name: ops, type: slack, token_secret: driftguard/slack-bot, channel: C0123}
  - {name: hook, type: slack, webhook_url_secret: driftguard/slack-hook}
route: {receivers: [ops, hook]}
"""
    )
    assert sorted(channel_secrets(config)) == ["driftguard/slack-bot", "driftguard/slack-hook"]
