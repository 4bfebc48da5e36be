"""The DriftGuard stack, built from the same config file as the CLI.

`add_stack(app, config_path)` is what `infra/app.py` (and the tests) call: it loads the config,
creates the stack named `aws.stack_name` and adds cdk-nag's AwsSolutions checks as a validation
plugin: synthesis fails on any finding that is not acknowledged with a written reason.
"""

from __future__ import annotations

from pathlib import Path

from aws_cdk import App, CfnOutput, Stack, Validations
from cdk_nag import AwsSolutionsChecks

from constructs import Construct
from driftguard.config import Config, load_config
from driftguard.errors import ConfigError
from infra.constructs.checks import Checks
from infra.constructs.common import ShippedConfig
from infra.constructs.layer import SharedLayer
from infra.constructs.monitoring import Monitored, Monitoring
from infra.constructs.notifications import Notifications
from infra.constructs.state import StateTables


class DriftGuardStack(Stack):
    def __init__(self, scope: Construct, construct_id: str, *, config: Config, config_path: Path) -> None:
        super().__init__(
            scope,
            construct_id,
            description="DriftGuard: data-drift monitor for SQL sources",
        )
        layer = SharedLayer(self, "SharedLayer").layer
        shipped = ShippedConfig.of(config, config_path)
        state = StateTables(self, "State")
        notifications = Notifications(
            self, "Notifications", config=config, shipped=shipped, layer=layer, state=state
        )
        checks = Checks(
            self,
            "Checks",
            config=config,
            shipped=shipped,
            layer=layer,
            state=state,
            notifications=notifications,
        )
        monitoring = Monitoring(
            self,
            "Monitoring",
            config=config,
            key=notifications.key,
            watched=Monitored(
                functions={"check": checks.function, "notify": notifications.function},
                state_machine=checks.state_machine,
                queues={
                    "delivery": notifications.dead_letter_queue,
                    "schedule": checks.schedule_dead_letter_queue,
                },
                tables={"state": state.state, "idempotency": state.idempotency},
                schedule_group=checks.schedule_group,
                alerts_topic=notifications.topic,
                ses_configuration_set=notifications.configuration_set,
            ),
        )
        for name, value in {
            "StateMachineArn": checks.state_machine.state_machine_arn,
            "AlertsTopicArn": notifications.topic.topic_arn,
            "OpsTopicArn": monitoring.topic.topic_arn,
            "StateTableName": state.state.table_name,
            "DeliveryDeadLetterQueueUrl": notifications.dead_letter_queue.queue_url,
            "ScheduleDeadLetterQueueUrl": checks.schedule_dead_letter_queue.queue_url,
            "DashboardName": monitoring.dashboard.dashboard_name,
        }.items():
            CfnOutput(self, name, value=value)


def add_stack(app: App, config_path: Path) -> DriftGuardStack:
    """The stack for `config_path` (raises driftguard.errors.ConfigError for a bad config).

    The stack's name is `aws.stack_name`, which has no default: two deployments that both took a
    default would overwrite each other. Every name, metric dimension and schedule group of the
    stack derives from it, so any number of stacks can share an account and region."""
    config_path = config_path.resolve()
    config = load_config(config_path)
    if not config.aws.stack_name:
        raise ConfigError(
            f"{config_path}: aws.stack_name is not set; name this deployment's stack (e.g. "
            "aws.stack_name: DriftGuard-shop): stacks with the same name overwrite each other"
        )
    stack = DriftGuardStack(app, config.aws.stack_name, config=config, config_path=config_path)
    Validations.of(app).add_plugins(AwsSolutionsChecks(app, verbose=True))
    return stack
