"""10,000 sources in one deployment: under CloudFormation's 500 resources and 1 MB template."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from infra.constructs.checks import THROTTLE_RETRY
from stack_helpers import SECRET_ARN, Synthesized, actions_on, role_statements, synthesize

from driftguard.config import load_config
from driftguard.schedules import TIMING, plan_fleet, plan_schedules

SOURCES = 10_000
MAX_RESOURCES = 500
MAX_TEMPLATE_BYTES = 1_000_000
MAX_ROLE_POLICY_CHARS = 10_240  # IAM: all inline policies of one role together


def ten_thousand_sources(path: Path) -> Path:
    """Three cadences, secrets under one path, some servers shared, five per-source dashboards."""
    cadences = [
        ({"rate": "15m"}, 7_000),
        ({"rate": "1h", "flexible_window": "10m"}, 2_000),
        ({"cron": "0 6 * * *", "timezone": "Europe/Berlin"}, 1_000),
    ]
    sources: list[dict[str, Any]] = []
    for schedule, count in cadences:
        for _ in range(count):
            i = len(sources)
            sources.append(
                {
                    "name": f"src-{i:05d}",
                    "kind": "postgres" if i % 3 else "mysql",
                    "schedule": schedule,
                    "dashboard": i < 5,
                    "connection": {
                        "host": f"db-{i // 4:04d}.internal",  # four databases per server
                        "database": f"db{i}",
                        "user": "driftguard",
                        "password_secret": f"driftguard/sources/src-{i:05d}",
                    },
                    "tables": [{"name": "events", "checks": {"volume": True}}],
                }
            )
    config = {
        "sources": sources,
        "channels": [
            {
                "name": "ops",
                "type": "sns",
                "subscriptions": [{"protocol": "email", "endpoint": "ops@example.com"}],
            }
        ],
        "route": {"receivers": ["ops"]},
        "aws": {"stack_name": "DriftGuardScale", "map_concurrency": 40},
    }
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


@pytest.fixture(scope="module")
def config_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return ten_thousand_sources(tmp_path_factory.mktemp("scale-config") / "driftguard.yaml")


@pytest.fixture(scope="module")
def synth(pinned_layer: None, config_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Synthesized:
    return synthesize(config_path, tmp_path_factory.mktemp("scale"))


@pytest.mark.slow
def test_ten_thousand_sources_fit_one_stack(synth: Synthesized, config_path: Path) -> None:
    resources = len(synth.json["Resources"])
    size = synth.template_file.stat().st_size
    schedules = len(synth.resources("AWS::Scheduler::Schedule"))
    print(
        f"\n{SOURCES} sources: {resources} resources ({schedules} schedules), "
        f"template {size:,} bytes, synth {synth.seconds:.1f}s"
    )
    assert resources < MAX_RESOURCES
    assert size < MAX_TEMPLATE_BYTES
    assert schedules == len(plan_schedules(load_config(config_path))) + 1  # and the watchdog's


@pytest.mark.slow
def test_many_secrets_are_granted_by_their_path_within_the_iam_policy_limit(synth: Synthesized) -> None:
    statements = role_statements(synth, "ChecksCheckFunctionServiceRole")
    assert actions_on(statements, "secretsmanager:GetSecretValue") == [f"{SECRET_ARN}driftguard/sources/*"]
    for role in synth.resources("AWS::IAM::Role"):
        policies = [
            p["Properties"]["PolicyDocument"]
            for p in synth.resources("AWS::IAM::Policy").values()
            if {"Ref": role} in p["Properties"]["Roles"]
        ]
        assert len(json.dumps(policies, separators=(",", ":"))) < MAX_ROLE_POLICY_CHARS, role


def test_the_deadline_counts_the_state_machines_own_throttle_retries() -> None:
    """`CheckTiming.room` budgets a throttled recording with the retry policy every Lambda task of
    the state machine has; if the two drift apart, the deadline no longer holds."""
    policy = TIMING.lambda_throttles
    assert THROTTLE_RETRY["errors"] == ["Lambda.TooManyRequestsException"]
    assert (
        THROTTLE_RETRY["max_attempts"],
        THROTTLE_RETRY["interval"].to_seconds(),
        THROTTLE_RETRY["backoff_rate"],
        THROTTLE_RETRY["max_delay"].to_seconds(),
    ) == (policy.attempts, policy.interval, policy.rate, policy.max_delay)


@pytest.mark.slow
def test_ten_thousand_sources_at_the_default_budget_keep_their_schedules_few(config_path: Path) -> None:
    """A budget too small for the fleet is reported, not answered with hundreds of schedules."""
    fleet = plan_fleet(load_config(config_path))
    assert fleet.problems and fleet.suggested_budget is not None
    assert len(fleet.groups) < 100 and fleet.peak_checks_at_once <= fleet.concurrency_budget
