"""The watchdog: a function that EventBridge Scheduler invokes every 5 minutes to record a missed
run, and alert through the normal lifecycle, for every source with no recorded run for two of its
periods, whatever stopped its checks (a firing out of time, throttling, a missing schedule), and for
every source with no run at all two periods after the watchdog first saw it (the deploy).

It delivers what it decides itself (engine delivery, like the CLI), since no firing of the state
machine runs for the sources it speaks of: it may publish to the alerts topic and the configured
external topics, read the channel secrets, send through SES, and read and write the state table.
"""

from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_scheduler as scheduler
from aws_cdk import aws_scheduler_targets as targets

from constructs import Construct
from driftguard.config import Config
from driftguard.schedules import SLOT
from infra.constructs.common import (
    FunctionSpec,
    ShippedConfig,
    acknowledge,
    dead_letter_queue,
    nag_arn,
    python_function,
    scheduler_role,
)
from infra.constructs.memory import announced, watchdog_memory
from infra.constructs.notifications import Notifications
from infra.constructs.state import STORE_READ_ACTIONS, STORE_WRITE_ACTIONS, StateTables

WATCHDOG_TIMEOUT = Duration.minutes(5)
"""Reading the latest run of 10,000 sources is 10,000 small reads: about a minute at worst. The
first tick after a deploy also writes when it began watching each source without runs (one small
conditional write each); its ledger claims hold for the invocation's remaining time plus 30 s."""


class Watchdog(Construct):
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
        schedule_group: scheduler.IScheduleGroup,
    ) -> None:
        super().__init__(scope, construct_id)
        # It reads every source's schedule from the whole config: sized from that config's size.
        memory = announced(self, watchdog_memory(config, whole=shipped.compiled))
        self.memory = memory
        self.function = python_function(
            self,
            "WatchdogFunction",
            FunctionSpec(
                folder="watchdog",
                description="DriftGuard: alert on sources with no recorded run for two periods",
                memory_mb=memory.mb,
                timeout=WATCHDOG_TIMEOUT,
                # It delivers like the notify function (same channels, alerts topic, SES set).
                environment=notifications.delivery_environment(state),
            ),
            config=config,
            shipped=shipped,
            layer=layer,
        )
        # Reads the latest runs, records the missed ones and delivers them through the ledger.
        state.state.grant(self.function, *STORE_READ_ACTIONS, *STORE_WRITE_ACTIONS)
        notifications.grant_channels(self.function, config)
        self.dead_letter_queue = dead_letter_queue(self, "WatchdogDeadLetterQueue")
        role = scheduler_role(self, schedule_group)
        acknowledge(
            role,
            "AwsSolutions-IAM5",
            "EventBridge Scheduler may invoke any version of the watchdog function, nothing else.",
            [f"Resource::{nag_arn(self.function)}:*"],
        )
        scheduler.Schedule(
            self,
            "WatchdogSchedule",
            schedule_group=schedule_group,
            description="DriftGuard watchdog: sources with no recorded run for two periods",
            schedule=scheduler.ScheduleExpression.rate(Duration.minutes(int(SLOT.total_seconds() // 60))),
            target=targets.LambdaInvoke(
                self.function,
                role=role,
                input=scheduler.ScheduleTargetInput.from_object(
                    {"action": "watchdog", "time": scheduler.ContextAttribute.scheduled_time}
                ),
                dead_letter_queue=self.dead_letter_queue,
                retry_attempts=2,
                # The next tick (5 minutes later) looks again: an older event has nothing to add.
                max_event_age=Duration.minutes(5),
            ),
        )
