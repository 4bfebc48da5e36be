"""Where alerts go: the alerts topic and its subscriptions, SES, the notify function, the delivery DLQ.

* One customer-managed KMS key encrypts the alerts topic and the ops topic (monitoring); its key
  policy lets CloudWatch alarms of this account and region (aws:SourceAccount, aws:SourceArn)
  publish to the ops topic.
* The alerts topic enforces TLS and carries every `SnsChannel.subscriptions` entry (email, sqs,
  https, lambda). `filter_severity` becomes a filter policy on the `severity` message attribute,
  which the check function sets on every SNS message it prepares. A `lambda` endpoint in this
  account gets permission for the topic to invoke it; an `sqs` endpoint's queue policy must allow
  `sns.amazonaws.com` from this topic (the stack cannot edit a queue it does not own).
* SES (only when an `ses` channel is configured): the email identity `aws.ses_identity` (a domain,
  or an address when it contains '@'; not created when `aws.ses_create_identity` is false, because
  an identity is account-wide and another stack or a person may have verified it) and a
  configuration set that suppresses bounces and complaints and publishes failures as metrics of
  its own. The notify function sends through that set (NotifyEnvironment.ses_configuration_set,
  unless the channel names its own `configuration_set`) and only from that identity.
* The notify function reads only the channel secrets (`webhook_url_secret`, `token_secret`,
  `secret_secret`) and reads and writes the state table (the delivery ledger: claimed before sending,
  marked after). `grant_channels` is what delivering needs; the watchdog, which delivers the missed
  runs it records through the same ledger, gets it too.
"""

from __future__ import annotations

from typing import Any

from aws_cdk import ArnFormat, Duration, RemovalPolicy, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_ses as ses
from aws_cdk import aws_sns as sns

from constructs import Construct
from driftguard.config import Config, SesChannel, SlackChannel, SnsChannel, WebhookChannel
from driftguard.contracts import NotifyEnvironment
from driftguard.errors import ConfigError
from infra.constructs.common import (
    FunctionSpec,
    ShippedConfig,
    acknowledge,
    dead_letter_queue,
    environment,
    grant_secrets,
    python_function,
)
from infra.constructs.memory import announced, notify_memory
from infra.constructs.state import STORE_READ_ACTIONS, STORE_WRITE_ACTIONS, StateTables

NOTIFY_TIMEOUT = Duration.seconds(30)
SES_DIMENSION = "ses:configuration-set"
"""SES's auto-tag: every message sent through a configuration set carries its name."""
SES_FAILURE_EVENTS = ("BOUNCE", "COMPLAINT", "REJECT", "RENDERING_FAILURE")
"""SES event types that mean an alert e-mail did not reach its reader (also the metric names, in
CamelCase: Bounce, Complaint, Reject, RenderingFailure)."""


def alarms_of_this_account(scope: Construct) -> dict[str, Any]:
    """The conditions on `cloudwatch.amazonaws.com`: only this account's alarms in this region
    (the confused-deputy guard CloudWatch documents for SNS topic and KMS key policies)."""
    stack = Stack.of(scope)
    alarms = stack.format_arn(
        service="cloudwatch", resource="alarm", resource_name="*", arn_format=ArnFormat.COLON_RESOURCE_NAME
    )
    return {"StringEquals": {"aws:SourceAccount": stack.account}, "ArnLike": {"aws:SourceArn": alarms}}


class Notifications(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: Config,
        shipped: ShippedConfig,
        layer: lambda_.ILayerVersion,
        state: StateTables,
    ) -> None:
        super().__init__(scope, construct_id)
        # Deleted with the stack (after KMS's shortest waiting period): it encrypts messages in
        # flight, no data at rest outlives the topics.
        self.key = kms.Key(
            self,
            "TopicKey",
            enable_key_rotation=True,
            description="DriftGuard SNS topics",
            removal_policy=RemovalPolicy.DESTROY,
            pending_window=Duration.days(7),
        )
        self.key.add_to_resource_policy(
            iam.PolicyStatement(
                sid="AllowCloudWatchAlarmsToPublish",
                principals=[iam.ServicePrincipal("cloudwatch.amazonaws.com")],
                actions=["kms:Decrypt", "kms:GenerateDataKey*"],
                resources=["*"],
                conditions=alarms_of_this_account(self),
            )
        )
        self.topic = sns.Topic(self, "AlertsTopic", master_key=self.key, enforce_ssl=True)
        self._subscribe(config)
        self.dead_letter_queue = dead_letter_queue(self, "DeliveryDeadLetterQueue")

        ses_channels = [c for c in config.channels if isinstance(c, SesChannel)]
        self.configuration_set = self._ses(config) if ses_channels else None
        # Sized from the config it ships, without sources (infra/constructs/memory.py)
        memory = announced(self, notify_memory(config, shared=shipped.without_sources))
        self.memory = memory
        self.function = python_function(
            self,
            "NotifyFunction",
            FunctionSpec(
                folder="notify",
                description="DriftGuard: deliver one notification to one channel",
                memory_mb=memory.mb,
                timeout=NOTIFY_TIMEOUT,
                environment=self.delivery_environment(state),
                needs_sources=False,
            ),
            config=config,
            shipped=shipped,
            layer=layer,
        )
        # The delivery ledger claims each notification before sending it and marks it after.
        state.state.grant(self.function, *STORE_READ_ACTIONS, *STORE_WRITE_ACTIONS)
        self.grant_channels(self.function, config)

    def delivery_environment(self, state: StateTables) -> NotifyEnvironment:
        """What a function that delivers needs to read: the state table (the ledger), the alerts topic
        and the SES configuration set. The notify function and the watchdog share it."""
        return environment(
            NotifyEnvironment,
            self,
            state_table=state.state.table_name,
            alerts_topic_arn=self.topic.topic_arn,
            ses_configuration_set=self.configuration_set.configuration_set_name
            if self.configuration_set
            else None,
        )

    def grant_channels(self, function: lambda_.Function, config: Config) -> None:
        """What delivering to the configured channels needs (the notify function, and the watchdog,
        which delivers the missed runs it records): publishing to the alerts topic (and its key) and
        any topic a channel names, the channel secrets, and SES."""
        self.topic.grant_publish(function)
        assert function.role is not None
        acknowledge(
            function.role,
            "AwsSolutions-IAM5",
            "Publishing to a KMS-encrypted topic needs kms:GenerateDataKey* "
            "on the topic key (SNS documentation); limited to that key.",
            ["Action::kms:GenerateDataKey*"],
        )
        external = external_topic_arns(config)
        if external:
            function.add_to_role_policy(iam.PolicyStatement(actions=["sns:Publish"], resources=external))
        grant_secrets(function, channel_secrets(config))
        if self.configuration_set is not None:
            self._grant_send_email(function, config, self.configuration_set)

    def _subscribe(self, config: Config) -> None:
        for channel in config.channels:
            if not isinstance(channel, SnsChannel):
                continue
            if channel.topic_arn and channel.subscriptions:
                raise ConfigError(
                    f"channels: sns channel {channel.name!r} sets topic_arn and subscriptions; the stack "
                    "subscribes only to its own alerts topic: remove topic_arn, or subscribe to your "
                    "topic yourself"
                )
            for i, sub in enumerate(channel.subscriptions):
                severities = [s.value for s in sub.filter_severity or []]
                severity_filter = sns.SubscriptionFilter.string_filter(allowlist=severities)
                filter_policy = {"severity": severity_filter} if severities else None
                sns.Subscription(
                    self,
                    f"{channel.name}-{i}",
                    topic=self.topic,
                    protocol=sns.SubscriptionProtocol(sub.protocol.upper()),
                    endpoint=sub.endpoint,
                    filter_policy=filter_policy,
                )
                if sub.protocol == "lambda":
                    lambda_.CfnPermission(
                        self,
                        f"{channel.name}-{i}-invoke",
                        action="lambda:InvokeFunction",
                        function_name=sub.endpoint,
                        principal="sns.amazonaws.com",
                        source_arn=self.topic.topic_arn,
                    )

    def _ses(self, config: Config) -> ses.ConfigurationSet:
        identity = config.aws.ses_identity
        if not identity:
            raise ConfigError(
                "aws.ses_identity is missing: an 'ses' channel is configured, so the stack must verify a "
                "sender identity. Set aws.ses_identity to your domain (e.g. example.com) or sender address"
            )
        if config.aws.ses_create_identity:
            # An identity is account-wide: a second stack (or a redeploy after the identity was verified
            # by hand) sets aws.ses_create_identity: false and only sends from it.
            ses.EmailIdentity(
                self,
                "SesIdentity",
                identity=ses.Identity.email(identity) if "@" in identity else ses.Identity.domain(identity),
            )
        configuration_set = ses.ConfigurationSet(
            self, "SesConfigurationSet", suppression_reasons=ses.SuppressionReasons.BOUNCES_AND_COMPLAINTS
        )
        # Bounces, complaints, rejects and rendering failures as CloudWatch metrics of this
        # configuration set only (monitoring alarms on them).
        configuration_set.add_event_destination(
            "SesMetrics",
            destination=ses.EventDestination.cloud_watch_dimensions(
                [
                    ses.CloudWatchDimension(
                        name=SES_DIMENSION,
                        source=ses.CloudWatchDimensionSource.MESSAGE_TAG,
                        default_value="driftguard",
                    )
                ]
            ),
            events=[getattr(ses.EmailSendingEvent, e) for e in SES_FAILURE_EVENTS],
        )
        return configuration_set

    def _grant_send_email(
        self, function: lambda_.IFunction, config: Config, configuration_set: ses.ConfigurationSet
    ) -> None:
        stack = Stack.of(self)
        identity = stack.format_arn(service="ses", resource="identity", resource_name=config.aws.ses_identity)
        channel_sets = {c.configuration_set for c in config.channels if isinstance(c, SesChannel)}
        set_arns = [
            stack.format_arn(service="ses", resource="configuration-set", resource_name=name)
            for name in [configuration_set.configuration_set_name, *sorted(n for n in channel_sets if n)]
        ]
        function.add_to_role_policy(
            iam.PolicyStatement(
                actions=["ses:SendEmail", "ses:SendRawEmail"], resources=[identity, *set_arns]
            )
        )


def channel_secrets(config: Config) -> list[str]:
    """The Secrets Manager references of every channel (what the notify function may read)."""
    refs: list[str] = []
    for channel in config.channels:
        if isinstance(channel, SlackChannel):
            refs += [ref for ref in (channel.webhook_url_secret, channel.token_secret) if ref]
        if isinstance(channel, WebhookChannel) and channel.secret_secret:
            refs.append(channel.secret_secret)
    return refs


def external_topic_arns(config: Config) -> list[str]:
    """Topics outside the stack that SNS channels publish to (`SnsChannel.topic_arn`)."""
    return sorted({c.topic_arn for c in config.channels if isinstance(c, SnsChannel) and c.topic_arn})
