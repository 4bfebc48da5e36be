"""Building a channel adapter from its configuration."""

from __future__ import annotations

import importlib.util
from dataclasses import replace
from pathlib import Path
from typing import Any, assert_never

from driftguard.config import (
    ConsoleChannel,
    FileChannel,
    SesChannel,
    SlackChannel,
    SnsChannel,
    WebhookChannel,
)
from driftguard.errors import ConfigError
from driftguard.notify.aws import SesAdapter, SnsAdapter
from driftguard.notify.base import ChannelAdapter
from driftguard.notify.local import ConsoleAdapter, FileAdapter
from driftguard.notify.slack import SlackAdapter, SlackBotAdapter
from driftguard.notify.web import AddressGuard
from driftguard.notify.webhook import WebhookAdapter, signer
from driftguard.secrets import SecretResolver

ChannelConfig = ConsoleChannel | FileChannel | SnsChannel | SesChannel | SlackChannel | WebhookChannel


def _require(package: str, extra: str, what: str) -> None:
    """Fail at build time, with the fix, when the optional package a channel needs is missing."""
    if importlib.util.find_spec(package) is None:
        raise ConfigError(
            f"{what} needs {package}, which is not installed: pip install 'driftguard[{extra}]'"
        )


def build_channel(
    cfg: ChannelConfig,
    *,
    secrets: SecretResolver,
    sns_client: Any | None = None,
    ses_client: Any | None = None,
    default_topic_arn: str | None = None,
    ses_configuration_set: str | None = None,
    guard: AddressGuard | None = None,
) -> ChannelAdapter:
    """The adapter for one configured channel. Secrets are resolved here, so a missing one fails
    before anything is sent (SecretError).

    `ses_configuration_set` is the deployed stack's SES configuration set, for `ses` channels that
    name none (the stack's suppresses bounces and complaints and publishes delivery metrics).

    `guard` is the SSRF policy for the Slack and webhook channels (default: system DNS, public
    addresses only). A webhook channel's `allow_private: true` relaxes it for that channel; tests
    that point Slack at a local server inject `AddressGuard(allow_private=True)`.
    """
    guard = guard or AddressGuard()
    what = f"channel {cfg.name!r}"
    if isinstance(cfg, ConsoleChannel):
        return ConsoleAdapter(cfg.name)
    if isinstance(cfg, FileChannel):
        return FileAdapter(cfg.name, Path(cfg.path))
    if isinstance(cfg, SnsChannel):
        topic_arn = cfg.topic_arn or default_topic_arn
        if not topic_arn:
            raise ConfigError(
                f"{what}: no topic_arn, and no default topic is known here; set channels[].topic_arn "
                "or deploy the stack, whose alerts topic is the default"
            )
        if sns_client is None:
            _require("boto3", "aws", what)
        return SnsAdapter(cfg.name, topic_arn, client=sns_client)
    if isinstance(cfg, SesChannel):
        if ses_client is None:
            _require("boto3", "aws", what)
        return SesAdapter(
            cfg.name,
            sender=cfg.sender,
            to=cfg.to,
            configuration_set=cfg.configuration_set or ses_configuration_set,
            client=ses_client,
        )
    if isinstance(cfg, SlackChannel):
        _require("slack_sdk", "channels", what)
        if cfg.channel is not None:
            token = secrets.resolve(env=cfg.token_env, secret=cfg.token_secret, what=f"{what} bot token")
            if not token:
                raise ConfigError(f"{what}: the bot token is empty; store the xoxb-... token")
            return SlackBotAdapter(cfg.name, token, cfg.channel, update_in_place=cfg.update_in_place)
        url = secrets.resolve(
            env=cfg.webhook_url_env, secret=cfg.webhook_url_secret, what=f"{what} webhook URL"
        )
        if not url or not url.startswith(("https://", "http://")):
            raise ConfigError(f"{what}: the Slack webhook URL must be https://hooks.slack.com/services/...")
        return SlackAdapter(cfg.name, url, guard=guard)
    if isinstance(cfg, WebhookChannel):
        secret = secrets.resolve(env=cfg.secret_env, secret=cfg.secret_secret, what=f"{what} signing secret")
        if secret:
            _require("standardwebhooks", "channels", what)
        return WebhookAdapter(
            cfg.name,
            cfg.url,
            signer=signer(secret, what=what) if secret else None,
            timeout=cfg.timeout.total_seconds(),
            guard=replace(guard, allow_private=True) if cfg.allow_private else guard,
        )
    assert_never(cfg)
