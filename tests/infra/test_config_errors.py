"""Config mistakes that only the stack can see fail the synth with a message saying what to change."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from aws_cdk import App
from infra.stack import add_stack
from stack_helpers import REPO

from driftguard.errors import ConfigError


def base(**aws: Any) -> dict[str, Any]:
    return {
        "sources": [
            {
                "name": "shop",
                "kind": "postgres",
                "connection": {
                    "host": "db.internal",
                    "database": "shop",
                    "password_secret": "driftguard/shop",
                },
            }
        ],
        "channels": [{"name": "console", "type": "console"}],
        "aws": {"stack_name": "DriftGuardTest", **aws},
    }


def build(tmp_path: Path, config: dict[str, Any]) -> None:
    path = tmp_path / "driftguard.yaml"
    path.write_text(yaml.safe_dump(config))
    add_stack(App(outdir=str(tmp_path / "cdk.out")), path)


@pytest.mark.slow
def test_an_ses_channel_needs_an_ses_identity(pinned_layer: None, tmp_path: Path) -> None:
    config = base()
    config["channels"].append(
        {"name": "mail", "type": "ses", "from": "dg@example.com", "to": ["a@example.com"]}
    )
    config["route"] = {"receivers": ["mail"]}
    with pytest.raises(ConfigError, match=r"aws\.ses_identity is missing"):
        build(tmp_path, config)


@pytest.mark.slow
def test_log_retention_must_be_a_value_cloudwatch_offers(pinned_layer: None, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"aws\.log_retention_days: .* 100 days; use one of 1, 3, 5"):
        build(tmp_path, base(log_retention_days=100))


@pytest.mark.slow
def test_subscriptions_belong_to_the_stacks_own_topic(pinned_layer: None, tmp_path: Path) -> None:
    config = base()
    config["channels"].append(
        {
            "name": "ext",
            "type": "sns",
            "topic_arn": "arn:aws:sns:eu-west-1:123456789012:theirs",
            "subscriptions": [{"protocol": "email", "endpoint": "a@example.com"}],
        }
    )
    with pytest.raises(ConfigError, match="sets topic_arn and subscriptions"):
        build(tmp_path, config)


@pytest.mark.slow
def test_flexible_window_longer_than_a_day_is_refused(pinned_layer: None, tmp_path: Path) -> None:
    config = base()
    config["defaults"] = {"schedule": {"rate": "1d", "flexible_window": "2d"}}
    with pytest.raises(ConfigError, match="flexible_window is at most 1 day"):
        build(tmp_path, config)


@pytest.mark.slow
def test_many_secrets_must_live_under_a_path(pinned_layer: None, tmp_path: Path) -> None:
    config = base()
    source = config["sources"][0]
    config["sources"] = [
        {**source, "name": f"s{i}", "connection": {**source["connection"], "password_secret": f"flat-{i}"}}
        for i in range(41)
    ]
    with pytest.raises(ConfigError, match="must live under a path"):
        build(tmp_path, config)


def test_examples_are_valid_configs() -> None:
    from driftguard.config import load_config

    for example in sorted((REPO / "examples").glob("aws-*.yaml")):
        assert load_config(example).aws.stack_name


def test_a_deployment_names_its_stack(tmp_path: Path) -> None:
    """No default stack name: a second team deploying with the default would replace the first's."""
    config = base()
    del config["aws"]["stack_name"]
    with pytest.raises(ConfigError, match=r"aws\.stack_name is not set"):
        build(tmp_path, config)


@pytest.mark.slow
def test_many_secrets_must_live_under_a_path_of_one_team(pinned_layer: None, tmp_path: Path) -> None:
    """Granted by path, `prod/db-N` would become `prod/*`: every production secret of the account."""
    config = base()
    template = config["sources"][0]
    config["sources"] = [
        {
            **template,
            "name": f"s{i}",
            "connection": {**template["connection"], "password_secret": f"prod/db-{i}"},
        }
        for i in range(41)
    ]
    with pytest.raises(ConfigError, match=r"'prod/\*' is too broad to be one team's"):
        build(tmp_path, config)
