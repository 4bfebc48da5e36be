"""Cost model: every item a DriftGuard deployment is billed for, each with its unit price, the
quantity (measured, or derived from the stack) and the assumption behind it; per million checks and
per month for 10, 1,000 and 10,000 sources at a 15-minute cadence.

Measured inputs are recorded in MEASURED with the run that produced them (`python -m bench --only
cost`, bench.perf.cost_per_check: the real check handler under moto against the local PostgreSQL,
5 tables, checks moving between two containers as a fleet's do). `--measure` re-runs that benchmark
and prices its fresh figures instead. Everything else follows from the stack's defaults (512 MB
arm64, 400-day TTL, 56-day training window) and the alarms and metrics infra/constructs/monitoring.py
creates. Prices: AWS list prices, us-east-1, without free tiers (check them before quoting).

`python -m bench.perf.cost_model --readme` prints the README's cost table;
tests/unit/test_cost_model.py checks that the README carries exactly that table.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import timedelta

from bench.perf.report import Report, main

# ------------------------------------------------------------------------------------------ prices

PRICES = {  # USD, us-east-1 list prices, no free tier
    "lambda_gb_second_arm": 0.0000133334,
    "lambda_request": 0.20 / 1e6,
    "express_request": 1.00 / 1e6,
    "express_gb_second": 0.00001667,  # billed in 64 MB and 100 ms steps
    "scheduler_invocation": 1.00 / 1e6,
    "dynamodb_write_unit": 0.625 / 1e6,  # on-demand write request unit
    "dynamodb_read_unit": 0.125 / 1e6,  # on-demand read request unit
    "dynamodb_storage_gb_month": 0.25,
    "dynamodb_pitr_gb_month": 0.20,
    "logs_ingested_gb": 0.50,
    "custom_metric_month": 0.30,
    "alarm_metric_month": 0.10,  # standard resolution; a metric-math alarm pays per metric it reads
    "dashboard_month": 3.00,
    "kms_key_month": 1.00,
    "secret_month": 0.40,
    "nat_gateway_hour": 0.045,
    "interface_endpoint_hour": 0.01,  # per endpoint per AZ
    "glue_dpu_hour": 0.44,
}
HOURS_PER_MONTH = 730

# ------------------------------------------------------------------------------- measured inputs


@dataclass(frozen=True)
class Measured:
    """One steady check of a 5-table source, as bench.perf.cost_per_check measures it."""

    duration_ms: float  # in-process under moto, one full core of the bench machine
    write_units: float
    read_units: float  # with the bench's 14 days of history
    log_bytes: float
    aws_calls: float
    sql_round_trips_per_table: float
    source: str  # the run these figures come from


MEASURED = Measured(
    duration_ms=33.6,
    write_units=8,
    read_units=4,
    log_bytes=505,
    aws_calls=4,
    sql_round_trips_per_table=1.4,
    source="python -m bench --only cost, checks taking turns between two containers "
    "(bench/README.md, 08:26 UTC)",
)

# ------------------------------------------------------------------------------------ assumptions

TABLES_PER_SOURCE = 5
CHECKS_PER_MONTH = int(timedelta(days=30) / timedelta(minutes=15))  # 2,880 at a 15-minute cadence
MEMORY_MB = 512  # aws.check_memory_mb default
CPU_SHARE = MEMORY_MB / 1769  # Lambda gives a full vCPU at 1,769 MB, proportionally less below
AWS_CALL_MS = 10.0  # a DynamoDB call from Lambda, in-region
SQL_ROUND_TRIP_MS = 2.0  # to a database in the same region
READ_UNITS_56_DAYS = 46  # docs/dynamodb.md: a 5-table source's load Query at the 56-day window
RETAINED_KB_PER_CHECK = 0.7  # series points, run record, transitions kept until the TTL
RETENTION_DAYS = 400  # aws.retention_days default (the TTL)
HEARTBEAT_LOG_BYTES = 261  # the per-cadence ChecksRun EMF line (measured: Powertools single_metric)
PLATFORM_LOG_BYTES = 300  # Lambda's START/END/REPORT lines (assumed)
DATABASE_SERVERS = 50  # the fleet's sources share 50 servers: a secret per server
SHARD_SIZE = 250  # driftguard.schedules.TARGET_SHARD_SIZE: sources per firing
BASE_METRICS = 8  # the fleet-wide custom metrics, plus one per cadence (heartbeat)
AVAILABILITY_ZONES = 2
GLUE_DPUS, GLUE_MINIMUM_HOURS = 2, 1 / 60
MONTE_CARLO_CREDITS_PER_TABLE_DAY = 1.75  # first 1,000 table monitors; the dollar rate is not public


def alarm_metrics(cadences: int, critical_sources: int, ses: bool) -> int:
    """Alarm metrics infra/constructs/monitoring.py bills (tests/infra checks this against a synth):
    heartbeats, the fleet rate (2), two functions x (errors 2, duration, throttles), executions (2),
    two tables x 2, Scheduler (3), two dead-letter queues, the alerts topic, SES (4)."""
    return cadences + 2 + critical_sources + 2 * 4 + 2 + 2 * 2 + 3 + 2 + 1 + (4 if ses else 0)


ALARM_METRICS = alarm_metrics(cadences=1, critical_sources=0, ses=True)


@dataclass(frozen=True)
class Item:
    name: str
    unit_price: str
    quantity: str
    assumption: str
    dollars: float


def check_seconds(m: Measured) -> float:
    """A check at 512 MB: the measured CPU time stretched by the CPU share (as if all CPU-bound, which
    errs high), plus real AWS and SQL round trips (moto's in-process calls are in the CPU time)."""
    cpu = m.duration_ms / CPU_SHARE
    waits = m.aws_calls * AWS_CALL_MS + m.sql_round_trips_per_table * TABLES_PER_SOURCE * SQL_ROUND_TRIP_MS
    return (cpu + waits) / 1000


def per_check(m: Measured) -> list[Item]:
    seconds = check_seconds(m)
    gb = MEMORY_MB / 1024
    log_bytes = m.log_bytes + HEARTBEAT_LOG_BYTES + PLATFORM_LOG_BYTES
    return [
        Item(
            "Lambda duration",
            f"${PRICES['lambda_gb_second_arm']:.10f}/GB-s (arm64)",
            f"{seconds * 1000:.0f} ms x {MEMORY_MB} MB",
            f"{m.duration_ms} ms measured on a full core / {CPU_SHARE:.2f} vCPU at {MEMORY_MB} MB, "
            f"+ {m.aws_calls:g} AWS calls x {AWS_CALL_MS:g} ms + "
            f"{m.sql_round_trips_per_table * TABLES_PER_SOURCE:g} SQL round trips x {SQL_ROUND_TRIP_MS:g} ms",
            seconds * gb * PRICES["lambda_gb_second_arm"],
        ),
        Item(
            "Lambda requests",
            "$0.20/M",
            "1 invocation",
            "a quiet check (no delivery)",
            PRICES["lambda_request"],
        ),
        Item(
            "DynamoDB reads",
            "$0.125/M RRU",
            f"{READ_UNITS_56_DAYS} RRU",
            "the load Query at the default 56-day window (docs/dynamodb.md; "
            f"{m.read_units:g} measured on the bench's 14 days); every check assumed to land on "
            "another container than the last",
            READ_UNITS_56_DAYS * PRICES["dynamodb_read_unit"],
        ),
        Item(
            "DynamoDB writes",
            "$0.625/M WRU",
            f"{m.write_units:g} WRU",
            "measured: the commit transaction and Powertools' idempotency record",
            m.write_units * PRICES["dynamodb_write_unit"],
        ),
        Item(
            "CloudWatch Logs",
            "$0.50/GB ingested",
            f"{log_bytes:.0f} bytes",
            f"{m.log_bytes:g} measured + {HEARTBEAT_LOG_BYTES} heartbeat EMF line + {PLATFORM_LOG_BYTES} "
            "Lambda platform lines (assumed)",
            log_bytes / 1024**3 * PRICES["logs_ingested_gb"],
        ),
        Item(
            "Step Functions Express duration",
            "$0.00001667/GB-s (64 MB steps)",
            f"{seconds * 1000:.0f} ms x 64 MB",
            "a check's share of its firing: its own duration at the 64 MB minimum",
            (seconds // 0.1 + 1) * 0.1 * (64 / 1024) * PRICES["express_gb_second"],
        ),
    ]


def monthly(sources: int, m: Measured, *, secret_per_source: bool = False) -> list[Item]:
    checks = sources * CHECKS_PER_MONTH
    firings = -(-sources // SHARD_SIZE) * CHECKS_PER_MONTH
    per = per_check(m)
    stored_gb = sources * CHECKS_PER_MONTH / 30 * RETENTION_DAYS * RETAINED_KB_PER_CHECK / 1e6
    secrets = sources if secret_per_source else min(sources, DATABASE_SERVERS)
    return [
        *(replace(i, quantity=f"{checks:,} x {i.quantity}", dollars=checks * i.dollars) for i in per),
        Item(
            "Express executions + Scheduler",
            "$1/M + $1/M",
            f"{firings:,} firings",
            f"one schedule and execution per shard of <= {SHARD_SIZE} sources, + a plan invocation each",
            firings * (PRICES["express_request"] + PRICES["scheduler_invocation"] + PRICES["lambda_request"]),
        ),
        Item(
            "DynamoDB storage + PITR",
            "$0.25 + $0.20/GB-month",
            f"{stored_gb:,.1f} GB",
            f"{RETAINED_KB_PER_CHECK} KB kept per check until the {RETENTION_DAYS}-day TTL (steady state)",
            stored_gb * (PRICES["dynamodb_storage_gb_month"] + PRICES["dynamodb_pitr_gb_month"]),
        ),
        Item(
            "custom metrics",
            "$0.30/metric-month",
            f"{BASE_METRICS + 1}",
            "8 fleet-wide + 1 heartbeat (one cadence); +2 per dashboard source, +1 per critical source",
            (BASE_METRICS + 1) * PRICES["custom_metric_month"],
        ),
        Item(
            "alarms",
            "$0.10/alarm metric-month",
            f"{ALARM_METRICS}",
            "what monitoring.py creates at one cadence with SES, no critical source",
            ALARM_METRICS * PRICES["alarm_metric_month"],
        ),
        Item("dashboard", "$3/month", "1", "one per stack", PRICES["dashboard_month"]),
        Item("KMS key", "$1/month", "1", "the topics' key; its requests (alerts only) are negligible", 1.0),
        Item(
            "secrets",
            "$0.40/secret-month",
            f"{secrets}",
            "one per source"
            if secret_per_source
            else f"one per database server ({DATABASE_SERVERS} servers)",
            secrets * PRICES["secret_month"],
        ),
    ]


def vpc_options() -> list[Item]:
    """Not in the totals: only for `aws.vpc`, and the account may already pay for them."""
    endpoints = 2  # Secrets Manager and X-Ray; DynamoDB's gateway endpoint is free
    return [
        Item(
            "VPC: NAT gateways",
            "$0.045/hour + $0.045/GB",
            f"{AVAILABILITY_ZONES} x {HOURS_PER_MONTH} h",
            f"one per AZ ({AVAILABILITY_ZONES} AZs), data processed not counted",
            AVAILABILITY_ZONES * HOURS_PER_MONTH * PRICES["nat_gateway_hour"],
        ),
        Item(
            "VPC: interface endpoints instead",
            "$0.01/hour per AZ",
            f"{endpoints} x {AVAILABILITY_ZONES} AZs x {HOURS_PER_MONTH} h",
            "Secrets Manager and X-Ray; DynamoDB through its free gateway endpoint",
            endpoints * AVAILABILITY_ZONES * HOURS_PER_MONTH * PRICES["interface_endpoint_hour"],
        ),
    ]


def total(items: Sequence[Item]) -> float:
    return sum(i.dollars for i in items)


def glue_minimum(sources: int) -> float:
    """AWS Glue Data Quality at its least: one evaluation run per source and cadence, 2 DPUs for the
    1-minute minimum at $0.44 per DPU-hour (real runs include Spark start-up)."""
    return sources * CHECKS_PER_MONTH * GLUE_DPUS * GLUE_MINIMUM_HOURS * PRICES["glue_dpu_hour"]


FLEETS = (10, 1_000, 10_000)


def _money(dollars: float) -> str:
    return f"${dollars:,.0f}" if dollars >= 100 else f"${dollars:,.2f}"


def readme_table(m: Measured = MEASURED) -> str:
    """The README's cost table, generated (tests/unit/test_cost_model.py keeps the README in step)."""
    per_million = total(per_check(m)) * 1e6
    lines = [
        "| sources at a 15-minute cadence | checks / month | DriftGuard / month "
        "| with a secret per source | AWS Glue Data Quality (lower bound) |",
        "| --- | --- | --- | --- | --- |",
    ]
    for sources in FLEETS:
        shared, own = total(monthly(sources, m)), total(monthly(sources, m, secret_per_source=True))
        glue = glue_minimum(sources)
        lines.append(
            f"| {sources:,} | {sources * CHECKS_PER_MONTH:,} | {_money(shared)} | {_money(own)} "
            f"| {_money(glue)} ({glue / shared:,.0f}x) |"
        )
    lines.append("")
    lines.append(f"Per million checks (per-check items only): {_money(per_million)}.")
    lines.append("")
    lines.append("| item (1,000 sources) | unit price | quantity | assumption | USD / month |")
    lines.append("| --- | --- | --- | --- | --- |")
    for item in [*monthly(1_000, m), *vpc_options()]:
        cells = (item.name, item.unit_price, item.quantity, item.assumption, _money(item.dollars))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def run(quick: bool = False, measured: Measured | None = None) -> Report:
    m = measured or MEASURED
    report = Report("Cost model: every billed item, per million checks and per month", quick)
    inputs = report.table("Measured inputs", "input", "value")
    for name in (
        "duration_ms",
        "write_units",
        "read_units",
        "log_bytes",
        "aws_calls",
        "sql_round_trips_per_table",
    ):
        inputs.add(name, getattr(m, name))
    inputs.add("from", m.source)
    per = report.table(
        "Per check (USD per million checks)", "item", "unit price", "quantity", "assumption", "USD/M"
    )
    for item in per_check(m):
        per.add(item.name, item.unit_price, item.quantity, item.assumption, round(item.dollars * 1e6, 2))
    per.add("total", "", "", "", round(total(per_check(m)) * 1e6, 2))
    for sources in FLEETS:
        fleet = report.table(f"Per month, {sources:,} sources (USD)", "item", "unit price", "quantity", "USD")
        for item in monthly(sources, m):
            fleet.add(item.name, item.unit_price, item.quantity, round(item.dollars, 2))
        fleet.add("total", "", "", round(total(monthly(sources, m)), 2))
        fleet.add(
            "total, a secret per source", "", "", round(total(monthly(sources, m, secret_per_source=True)), 2)
        )
        fleet.add(
            "AWS Glue Data Quality (minimum)",
            "$0.44/DPU-hour",
            "2 DPU x 1 min per check",
            round(glue_minimum(sources), 2),
        )
        fleet.add(
            "Monte Carlo (credits, not dollars)",
            "rate per credit not public",
            f"{sources * TABLES_PER_SOURCE:,} table monitors",
            round(sources * TABLES_PER_SOURCE * MONTE_CARLO_CREDITS_PER_TABLE_DAY * 30),
        )
    vpc = report.table("Only with aws.vpc (not in the totals)", "item", "unit price", "quantity", "USD/month")
    for item in vpc_options():
        vpc.add(item.name, item.unit_price, item.quantity, round(item.dollars, 2))
    report.notes += [
        "prices: us-east-1 list prices without free tiers (PRICES in bench/perf/cost_model.py)",
        "Monte Carlo publishes its consumption in credits (1.75 credits per table monitor a day for the "
        "first 1,000), not the dollar rate of a credit; Soda Cloud's list prices were not available to "
        "this model: neither is priced in dollars here",
        "Glue DQ (minimum): one evaluation run per source and cadence, 2 DPUs for the 1-minute minimum",
    ]
    return report


def measured_now(quick: bool) -> Measured:
    """Re-measure the inputs with bench.perf.cost_per_check (PostgreSQL and moto needed)."""
    from bench.perf.cost_per_check import measure, steady_state

    same_container, taking_turns = steady_state(measure(quick))
    steady = taking_turns or same_container
    return Measured(
        duration_ms=statistics.median(c.duration_ms for c in steady),
        write_units=statistics.median(c.write_units for c in steady),
        read_units=statistics.median(c.read_units for c in steady),
        log_bytes=statistics.median(c.log_bytes for c in steady),
        aws_calls=MEASURED.aws_calls,
        sql_round_trips_per_table=MEASURED.sql_round_trips_per_table,
        source="measured in this run (bench.perf.cost_per_check)",
    )


def entry(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--readme", action="store_true")
    parser.add_argument("--measure", action="store_true")
    known, rest = parser.parse_known_args(argv)
    if known.readme:
        print(readme_table())
        return 0
    if known.measure:
        return main(lambda quick: run(quick, measured_now(quick)), __doc__, rest)
    return main(run, __doc__, rest)


if __name__ == "__main__":
    raise SystemExit(entry(sys.argv[1:]))
