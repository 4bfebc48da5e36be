"""Monitoring the monitor: a CloudWatch dashboard and the alarms an on-call engineer needs, all to
the ops topic (`aws.alarm_email` is subscribed when set).

Custom metrics the handlers emit (EMF through Powertools Metrics), and nothing else, because
every metric/dimension combination is billed. Namespace `DriftGuard` (contracts.METRIC_NAMESPACE),
dimension `service` = the stack's name, so two stacks in one account never count each other:

    service:                 ChecksRun, CheckFailures (0 or 1 a check), Findings, Anomalies,
                             AlertsFiring, NotificationsSent, NotificationsFailed, CheckDurationMs
    service, cadence:        ChecksRun (one series per cadence: the heartbeats)
    service, source:         ChecksRun and Anomalies for `dashboard: true` sources (panels);
                             CheckFailures for sources tagged `critical` (their own alarm)

Alarms:
* Heartbeat per cadence: no check of the cadence ran within its longest real gap between two
  firings (a year of the schedule, so `0 6 * * 1-5` waits out the weekend) plus its flexible
  window and GRACE; missing data breaches.
* Fleet failure rate: the share of checks that failed, once at least FLEET_FAILURE_FLOOR failed
  (a fleet always has a few broken sources; a count threshold of 1 would stay in ALARM for good).
* Each source tagged `critical`: any failed check.
* Lambda: error rate (with a floor), duration near the timeout, throttles.
* Step Functions: failed or timed-out executions. DynamoDB: throttled reads or writes.
* EventBridge Scheduler: target errors, dropped invocations, failures to reach its DLQ; messages in
  either dead-letter queue.
* SNS: alerts that the alerts topic failed to deliver; SES (when configured): bounces, complaints,
  rejects and rendering failures of the stack's configuration set.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from itertools import pairwise
from zoneinfo import ZoneInfo

from aws_cdk import Annotations, Duration, Stack
from aws_cdk import aws_cloudwatch as cw
from aws_cdk import aws_cloudwatch_actions as cw_actions
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_scheduler as scheduler
from aws_cdk import aws_ses as ses
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from aws_cdk import aws_sqs as sqs
from aws_cdk import aws_stepfunctions as sfn

from constructs import Construct
from driftguard.config import Config, Schedule
from driftguard.contracts import CRITICAL_TAG, METRIC_NAMESPACE
from driftguard.errors import ConfigError
from driftguard.schedules import cadence_id
from infra.constructs.notifications import SES_DIMENSION, SES_FAILURE_EVENTS, alarms_of_this_account

FIVE_MINUTES = Duration.minutes(5)
RATE_PERIOD = Duration.minutes(15)
"""The period of the rate alarms: long enough to hold a firing of every 15-minute shard."""
FLEET_FAILURE_PERCENT = 10
FLEET_FAILURE_FLOOR = 3
"""The fleet alarm needs at least this many failed checks in a period, whatever the share."""
LAMBDA_ERROR_PERCENT = 10
LAMBDA_ERROR_FLOOR = 5
NEAR_TIMEOUT = 0.8
"""Duration alarm: the slowest invocation took this share of the function's timeout."""
GRACE = timedelta(minutes=10)
"""Heartbeat slack after a firing: an Express execution's 5 minutes plus metric delivery."""
MAX_ALARM_WINDOW = timedelta(days=7)
"""CloudWatch evaluates at most 7 days (periods under an hour: 1 day)."""
MAX_SOURCE_PANELS = 100
"""A dashboard holds at most 500 widgets, and each per-source series is a billed custom metric."""
MAX_CRITICAL_SOURCES = 100
"""Each is an alarm ($0.10 a month) and a custom metric ($0.30 a month), and a stack resource."""


def longest_gap(schedule: Schedule) -> timedelta:
    """The longest time between two firings of `schedule` over a year, in real (UTC) time.

    A cron that restricts neither day-of-month nor month repeats every week in its time zone: two
    weeks are scanned, plus one hour where the zone shifts for daylight saving time (a fall-back
    night lengthens one gap by that hour). Other crons are scanned over a whole year."""
    if schedule.rate is not None:
        return schedule.rate
    assert schedule.cron is not None
    _, _, day_of_month, month, _ = schedule.cron.split()
    weekly = day_of_month in ("*", "?") and month == "*"
    start = datetime(2025, 1, 1, tzinfo=ZoneInfo(schedule.timezone))
    fires = schedule.fires_between(start, start + timedelta(days=15 if weekly else 366))
    gaps = [b - a for a, b in pairwise(fires)]
    gap = max(gaps) if gaps else timedelta(days=366)
    return gap + (_dst_shift(schedule.timezone) if weekly else timedelta(0))


def _dst_shift(timezone: str) -> timedelta:
    zone = ZoneInfo(timezone)
    offsets = {datetime(2025, m, 1, tzinfo=zone).utcoffset() for m in (1, 7)}
    low, high = min(o for o in offsets if o is not None), max(o for o in offsets if o is not None)
    return high - low


@dataclass(frozen=True)
class Cadence:
    id: str
    schedule: Schedule
    sources: int

    @property
    def window(self) -> timedelta:
        """How long the heartbeat waits for a check of this cadence, in whole minutes."""
        window = longest_gap(self.schedule) + (self.schedule.flexible_window or timedelta(0)) + GRACE
        return timedelta(minutes=-(-window.total_seconds() // 60))


def cadences(config: Config) -> list[Cadence]:
    found: dict[str, tuple[Schedule, int]] = {}
    for source in config.sources:
        schedule = config.schedule_of(source)
        key = cadence_id(schedule)
        found[key] = (schedule, found.get(key, (schedule, 0))[1] + 1)
    return [Cadence(key, schedule, count) for key, (schedule, count) in sorted(found.items())]


@dataclass(frozen=True)
class Monitored:
    """What the alarms watch."""

    functions: dict[str, lambda_.Function]
    state_machine: sfn.StateMachine
    queues: dict[str, sqs.IQueue]
    tables: dict[str, dynamodb.ITable]
    schedule_group: scheduler.IScheduleGroup
    alerts_topic: sns.ITopic
    ses_configuration_set: ses.IConfigurationSet | None


class Monitoring(Construct):
    def __init__(
        self, scope: Construct, construct_id: str, *, config: Config, key: kms.IKey, watched: Monitored
    ) -> None:
        super().__init__(scope, construct_id)
        self.service = Stack.of(self).stack_name
        self.topic = sns.Topic(self, "OpsTopic", master_key=key, enforce_ssl=True)
        # enforce_ssl leaves the topic policy with its Deny only: without this Allow, CloudWatch
        # is "not authorized to perform SNS:Publish" and no alarm is ever delivered.
        self.topic.add_to_resource_policy(
            iam.PolicyStatement(
                sid="AllowThisAccountsAlarmsToPublish",
                principals=[iam.ServicePrincipal("cloudwatch.amazonaws.com")],
                actions=["sns:Publish"],
                resources=[self.topic.topic_arn],
                conditions=alarms_of_this_account(self),
            )
        )
        if config.aws.alarm_email:
            self.topic.add_subscription(subscriptions.EmailSubscription(config.aws.alarm_email))
        self._action = cw_actions.SnsAction(self.topic)
        self.cadences = cadences(config)
        self._heartbeats()
        self._fleet(config)
        self._functions(watched.functions)
        self._pipeline(watched)

        self.dashboard = cw.Dashboard(self, "Dashboard", default_interval=Duration.hours(24))
        self.dashboard.add_widgets(*self._overview(watched))
        self.dashboard.add_widgets(*self._source_panels(config))

    def metric(
        self,
        name: str,
        *,
        statistic: str = "Sum",
        period: Duration = FIVE_MINUTES,
        **dimensions: str,
    ) -> cw.Metric:
        """A DriftGuard custom metric of this stack (dimension `service` = the stack's name)."""
        return cw.Metric(
            namespace=METRIC_NAMESPACE,
            metric_name=name,
            dimensions_map={"service": self.service, **dimensions},
            statistic=statistic,
            period=period,
        )

    def _alarm(
        self,
        name: str,
        metric: cw.IMetric,
        description: str,
        *,
        threshold: float = 1,
        below: bool = False,
        missing_breaches: bool = False,
    ) -> cw.Alarm:
        alarm = cw.Alarm(
            self,
            f"{name}Alarm",
            metric=metric,
            threshold=threshold,
            evaluation_periods=1,
            comparison_operator=cw.ComparisonOperator.LESS_THAN_THRESHOLD
            if below
            else cw.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            treat_missing_data=cw.TreatMissingData.BREACHING
            if missing_breaches
            else cw.TreatMissingData.NOT_BREACHING,
            alarm_description=description,
        )
        alarm.add_alarm_action(self._action)
        return alarm

    def _heartbeats(self) -> None:
        for cadence in self.cadences:
            window = cadence.window
            limit = MAX_ALARM_WINDOW if window >= timedelta(hours=1) else timedelta(days=1)
            if window > limit:
                Annotations.of(self).add_warning_v2(
                    "driftguard:heartbeat",
                    f"cadence {cadence.id}: no heartbeat alarm, its longest gap needs a {window} window "
                    f"and CloudWatch evaluates at most {limit}; the fleet and Scheduler alarms still apply",
                )
                continue
            self._alarm(
                f"Heartbeat-{cadence.id}",
                self.metric(
                    "ChecksRun", period=Duration.seconds(int(window.total_seconds())), cadence=cadence.id
                ),
                f"No check of cadence {cadence.id} ({cadence.sources} sources) ran for {window}, its "
                "longest gap between firings plus slack: its schedules, the state machine or the check "
                "function are broken.",
                below=True,
                missing_breaches=True,
            )

    def _fleet(self, config: Config) -> None:
        failure_rate = cw.MathExpression(
            expression=f"IF(failed >= {FLEET_FAILURE_FLOOR} AND checks > 0, 100 * failed / checks, 0)",
            using_metrics={
                "failed": self.metric("CheckFailures", period=RATE_PERIOD),
                "checks": self.metric("ChecksRun", period=RATE_PERIOD),
            },
            label="Failed checks (%)",
            period=RATE_PERIOD,
        )
        self._alarm(
            "FleetFailureRate",
            failure_rate,
            f"At least {FLEET_FAILURE_PERCENT}% of checks failed (and at least {FLEET_FAILURE_FLOOR}): "
            "a shared cause (network, credentials, a release). See the ERROR alerts.",
            threshold=FLEET_FAILURE_PERCENT,
        )
        critical = [s.name for s in config.sources if CRITICAL_TAG in s.tags]
        if len(critical) > MAX_CRITICAL_SOURCES:
            raise ConfigError(
                f"{len(critical)} sources are tagged {CRITICAL_TAG!r}; at most {MAX_CRITICAL_SOURCES} can "
                "have their own alarm (each is an alarm and a billed custom metric): untag some"
            )
        for name in critical:
            self._alarm(
                f"Critical-{name}",
                self.metric("CheckFailures", period=RATE_PERIOD, source=name),
                f"A check of critical source {name} failed.",
            )

    def _functions(self, functions: dict[str, lambda_.Function]) -> None:
        for name, fn in functions.items():
            errors = cw.MathExpression(
                expression=f"IF(errors >= {LAMBDA_ERROR_FLOOR} AND invocations > 0, "
                "100 * errors / invocations, 0)",
                using_metrics={
                    "errors": fn.metric_errors(period=RATE_PERIOD, statistic="Sum"),
                    "invocations": fn.metric_invocations(period=RATE_PERIOD, statistic="Sum"),
                },
                label=f"{name} errors (%)",
                period=RATE_PERIOD,
            )
            self._alarm(
                f"{name}Errors",
                errors,
                f"At least {LAMBDA_ERROR_PERCENT}% of the {name} function's invocations failed (at least "
                f"{LAMBDA_ERROR_FLOOR}).",
                threshold=LAMBDA_ERROR_PERCENT,
            )
            assert fn.timeout is not None
            near = fn.timeout.to_milliseconds() * NEAR_TIMEOUT
            self._alarm(
                f"{name}NearTimeout",
                fn.metric_duration(period=FIVE_MINUTES, statistic="Maximum"),
                f"An invocation of the {name} function took {NEAR_TIMEOUT:.0%} of its "
                f"{fn.timeout.to_seconds()} s timeout: the next slow one times out.",
                threshold=near,
            )
            self._alarm(
                f"{name}Throttles",
                fn.metric_throttles(period=FIVE_MINUTES, statistic="Sum"),
                f"The {name} function was throttled (reserved concurrency or account limit).",
            )

    def _pipeline(self, watched: Monitored) -> None:
        sm = watched.state_machine
        self._alarm(
            "ExecutionsFailed",
            cw.MathExpression(
                expression="failed + timedout",
                using_metrics={
                    "failed": sm.metric_failed(period=FIVE_MINUTES, statistic="Sum"),
                    "timedout": sm.metric_timed_out(period=FIVE_MINUTES, statistic="Sum"),
                },
                label="Failed or timed-out executions",
                period=FIVE_MINUTES,
            ),
            "A firing failed or timed out: not all sources were checked.",
        )
        for name, table in watched.tables.items():
            self._alarm(
                f"{name}TableThrottles",
                cw.MathExpression(
                    expression="reads + writes",
                    using_metrics={
                        "reads": table.metric("ReadThrottleEvents", period=FIVE_MINUTES, statistic="Sum"),
                        "writes": table.metric("WriteThrottleEvents", period=FIVE_MINUTES, statistic="Sum"),
                    },
                    label=f"{name} table throttled requests",
                    period=FIVE_MINUTES,
                ),
                f"DynamoDB throttled the {name} table (a hot partition or the account's on-demand limit).",
            )
        group = watched.schedule_group
        self._alarm(
            "SchedulerTargetErrors",
            cw.MathExpression(
                expression="errors + dropped + undeliverable",
                using_metrics={
                    "errors": group.metric_target_errors(period=FIVE_MINUTES, statistic="Sum"),
                    "dropped": group.metric_dropped(period=FIVE_MINUTES, statistic="Sum"),
                    "undeliverable": group.metric_failed_to_be_sent_to_dlq(
                        period=FIVE_MINUTES, statistic="Sum"
                    ),
                },
                label="Scheduler target errors, dropped, not dead-lettered",
                period=FIVE_MINUTES,
            ),
            "EventBridge Scheduler could not start the state machine (target errors, dropped "
            "invocations or invocations that did not reach its dead-letter queue).",
        )
        for name, queue in watched.queues.items():
            self._alarm(
                f"{name}DeadLetters",
                queue.metric_approximate_number_of_messages_visible(period=FIVE_MINUTES, statistic="Max"),
                f"The {name} dead-letter queue holds messages: redrive them.",
            )
        self._alarm(
            "AlertsUndelivered",
            watched.alerts_topic.metric_number_of_notifications_failed(period=FIVE_MINUTES, statistic="Sum"),
            "The alerts topic failed to deliver to a subscription (an endpoint down, or a policy "
            "refusing SNS).",
        )
        if watched.ses_configuration_set is not None:
            name = watched.ses_configuration_set.configuration_set_name
            metrics = {
                event.lower(): cw.Metric(
                    namespace="AWS/SES",
                    metric_name="".join(part.capitalize() for part in event.split("_")),
                    dimensions_map={SES_DIMENSION: name},
                    statistic="Sum",
                    period=FIVE_MINUTES,
                )
                for event in SES_FAILURE_EVENTS
            }
            self._alarm(
                "SesUndelivered",
                cw.MathExpression(
                    expression=" + ".join(metrics),
                    using_metrics=metrics,
                    label="SES failures",
                    period=FIVE_MINUTES,
                ),
                "Alert e-mail bounced, was rejected or complained about (the address is then suppressed).",
            )

    def _overview(self, watched: Monitored) -> list[cw.IWidget]:
        def graph(title: str, *metrics: cw.IMetric) -> cw.GraphWidget:
            return cw.GraphWidget(title=title, left=list(metrics), width=8)

        m = self.metric
        fns = list(watched.functions.values())
        sm = watched.state_machine
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
                *(q.metric_approximate_number_of_messages_visible() for q in watched.queues.values()),
            ),
        ]

    def _source_panels(self, config: Config) -> list[cw.IWidget]:
        names = [s.name for s in config.sources if s.dashboard]
        if len(names) > MAX_SOURCE_PANELS:
            raise ConfigError(
                f"{len(names)} sources set dashboard: true; at most {MAX_SOURCE_PANELS} can have per-source "
                "panels (each is a billed custom metric and a dashboard widget): turn it off for some"
            )
        return [
            cw.GraphWidget(
                title=f"Source {name}",
                left=[self.metric("ChecksRun", source=name)],
                right=[self.metric("Anomalies", source=name)],
                width=6,
            )
            for name in names
        ]
