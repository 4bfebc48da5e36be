"""Monitoring the monitor: a CloudWatch dashboard and alarms that go to an ops SNS topic.

Custom metrics the handlers emit (EMF through Powertools Metrics), and nothing else, because
every metric/dimension combination is billed:

    namespace DriftGuard, dimension service=driftguard:
        ChecksRun          Count         one per check (not for duplicate executions)
        CheckFailures      Count         1 when the check failed (status failed), else 0
        Findings           Count         findings of the check
        Anomalies          Count         anomalous findings of the check
        AlertsFiring       Count         alerts of the source FIRING after the check
        NotificationsSent  Count         deliveries recorded as delivered (record_deliveries)
        NotificationsFailed Count        deliveries recorded as failed (dead-lettered)
        CheckDurationMs    Milliseconds  wall time of the check
    namespace DriftGuard, dimensions service=driftguard and source=NAME, only for sources with
    `dashboard: true`: ChecksRun and Anomalies (per-source panels).

Alarms (all to the ops topic; `aws.alarm_email` is subscribed when set): check failures,
failed or timed-out executions, messages in either dead-letter queue, Lambda throttles, and
"no check has run" for two periods of the fastest cadence (missing data counts as breaching).
"""

from __future__ import annotations

from datetime import timedelta

from aws_cdk import Duration
from aws_cdk import aws_cloudwatch as cw
from aws_cdk import aws_cloudwatch_actions as cw_actions
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from aws_cdk import aws_sqs as sqs
from aws_cdk import aws_stepfunctions as sfn

from constructs import Construct
from driftguard.config import Config
from driftguard.errors import ConfigError

NAMESPACE = "DriftGuard"
SERVICE = {"service": "driftguard"}
FIVE_MINUTES = Duration.minutes(5)
MAX_SOURCE_PANELS = 100
"""A dashboard holds at most 500 widgets, and each per-source series is a billed custom metric."""


def custom_metric(name: str, *, statistic: str = "Sum", source: str | None = None) -> cw.Metric:
    dimensions = {**SERVICE, "source": source} if source else SERVICE
    return cw.Metric(
        namespace=NAMESPACE,
        metric_name=name,
        dimensions_map=dimensions,
        statistic=statistic,
        period=FIVE_MINUTES,
    )


def silence_window(smallest_period: timedelta) -> Duration:
    """Two periods of the fastest cadence, within CloudWatch's 7-day evaluation limit."""
    return Duration.seconds(int(min(2 * smallest_period.total_seconds(), 7 * 86400)))


class Monitoring(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: Config,
        key: kms.IKey,
        functions: dict[str, lambda_.IFunction],
        state_machine: sfn.StateMachine,
        queues: dict[str, sqs.IQueue],
        smallest_period: timedelta | None,
    ) -> None:
        super().__init__(scope, construct_id)
        self.topic = sns.Topic(self, "OpsTopic", master_key=key, enforce_ssl=True)
        if config.aws.alarm_email:
            self.topic.add_subscription(subscriptions.EmailSubscription(config.aws.alarm_email))
        action = cw_actions.SnsAction(self.topic)

        executions_failed = cw.MathExpression(
            expression="failed + timedout",
            using_metrics={
                "failed": state_machine.metric_failed(period=FIVE_MINUTES, statistic="Sum"),
                "timedout": state_machine.metric_timed_out(period=FIVE_MINUTES, statistic="Sum"),
            },
            label="Failed or timed-out executions",
            period=FIVE_MINUTES,
        )
        alarms: list[tuple[str, cw.IMetric, str]] = [
            (
                "CheckFailures",
                custom_metric("CheckFailures"),
                "A source could not be checked (see ERROR alerts).",
            ),
            (
                "ExecutionsFailed",
                executions_failed,
                "A firing failed or timed out: not all sources were checked.",
            ),
        ]
        for name, fn in functions.items():
            throttles = fn.metric_throttles(period=FIVE_MINUTES, statistic="Sum")
            reason = f"The {name} function was throttled (reserved concurrency or account limit)."
            alarms.append((f"{name}Throttles", throttles, reason))
        for name, queue in queues.items():
            depth = queue.metric_approximate_number_of_messages_visible(period=FIVE_MINUTES, statistic="Max")
            alarms.append(
                (f"{name}DeadLetters", depth, f"The {name} dead-letter queue holds messages: redrive them.")
            )
        for name, metric, description in alarms:
            cw.Alarm(
                self,
                f"{name}Alarm",
                metric=metric,
                threshold=1,
                evaluation_periods=1,
                comparison_operator=cw.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
                treat_missing_data=cw.TreatMissingData.NOT_BREACHING,
                alarm_description=description,
            ).add_alarm_action(action)
        if smallest_period is not None:
            window = silence_window(smallest_period)
            cw.Alarm(
                self,
                "NoChecksAlarm",
                metric=custom_metric("ChecksRun").with_(period=window),
                threshold=1,
                evaluation_periods=1,
                comparison_operator=cw.ComparisonOperator.LESS_THAN_THRESHOLD,
                treat_missing_data=cw.TreatMissingData.BREACHING,
                alarm_description=f"No check has run for {window.to_human_string()} (two periods of the "
                "fastest cadence): schedules, the state machine or the check function are broken.",
            ).add_alarm_action(action)

        self.dashboard = cw.Dashboard(self, "Dashboard", default_interval=Duration.hours(24))
        self.dashboard.add_widgets(*self._overview(functions, state_machine, queues))
        self.dashboard.add_widgets(*self._source_panels(config))

    @staticmethod
    def _overview(
        functions: dict[str, lambda_.IFunction],
        state_machine: sfn.StateMachine,
        queues: dict[str, sqs.IQueue],
    ) -> list[cw.IWidget]:
        def graph(title: str, *metrics: cw.IMetric) -> cw.GraphWidget:
            return cw.GraphWidget(title=title, left=list(metrics), width=8)

        m = custom_metric
        fns = list(functions.values())
        sm = state_machine
        return [
            graph("Checks run / failed", m("ChecksRun"), m("CheckFailures")),
            graph(
                "Findings, anomalies, alerts firing",
                m("Findings"),
                m("Anomalies"),
                m("AlertsFiring", statistic="Max"),
            ),
            graph("Notifications sent / failed", m("NotificationsSent"), m("NotificationsFailed")),
            graph("Check duration (ms)", *(m("CheckDurationMs", statistic=s) for s in ("p50", "p90", "Max"))),
            graph("Lambda duration p90 (ms)", *(f.metric_duration(statistic="p90") for f in fns)),
            graph(
                "Lambda errors / throttles",
                *(x for f in fns for x in (f.metric_errors(), f.metric_throttles())),
            ),
            graph(
                "Executions",
                sm.metric_started(),
                sm.metric_succeeded(),
                sm.metric_failed(),
                sm.metric_timed_out(),
            ),
            graph(
                "Dead-letter queue depth",
                *(q.metric_approximate_number_of_messages_visible() for q in queues.values()),
            ),
        ]

    @staticmethod
    def _source_panels(config: Config) -> list[cw.IWidget]:
        names = [s.name for s in config.sources if s.dashboard]
        if len(names) > MAX_SOURCE_PANELS:
            raise ConfigError(
                f"{len(names)} sources set dashboard: true; at most {MAX_SOURCE_PANELS} can have per-source "
                "panels (each is a billed custom metric and a dashboard widget): turn it off for some"
            )
        return [
            cw.GraphWidget(
                title=f"Source {name}",
                left=[custom_metric("ChecksRun", source=name)],
                right=[custom_metric("Anomalies", source=name)],
                width=6,
            )
            for name in names
        ]
