"""Cost model: dollars per million checks, and per month for 10, 1,000 and 10,000 sources at a
15-minute cadence, derived from the stack's own settings and figures measured in the same run.

Measured here (bench.perf.cost_per_check, steady-state checks of a 5-table PostgreSQL source, in
containers taking turns on it, as a fleet's checks land: each check reads its source; a check in the
container that checked the source last skips that read, so this errs high):
Lambda duration, DynamoDB read and write units, CloudWatch Logs bytes. From the stack: check
memory (aws.check_memory_mb), schedules and shards (driftguard.schedules.plan_schedules),
custom metrics (8 per stack plus 2 per `dashboard: true` source), the distinct secrets the sources
name (the fleet here: 50 database servers, one secret each; a secret per source costs $0.40 a month
each, which at 10,000 sources is most of the bill).
Prices: AWS list prices, us-east-1, without free tiers (the PRICES table; check them against
the pricing pages before quoting). The Lambda duration is measured in-process under moto on a
shared 2-core machine: its DynamoDB calls are slower than real ones, so it errs high.

AWS Glue Data Quality, for comparison: the same checks as one evaluation run per source and
cadence, at $0.44 per DPU-hour with 2 DPUs and a 1-minute minimum (the least a run can cost;
real runs include Spark start-up and cost more).
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from datetime import timedelta

from bench.perf.cost_per_check import CheckCost, measure, steady_state
from bench.perf.report import Report, main
from driftguard.config import Config, parse_config
from driftguard.schedules import plan_schedules

PRICES = {  # USD, us-east-1 list prices
    "lambda_gb_second_arm": 0.0000133334,
    "lambda_request": 0.20 / 1e6,
    "express_request": 1.00 / 1e6,
    "express_gb_second": 0.00001667,  # billed in 64 MB and 100 ms steps
    "scheduler_invocation": 1.00 / 1e6,
    "dynamodb_write_unit": 0.625 / 1e6,  # on-demand write request unit
    "dynamodb_read_unit": 0.125 / 1e6,  # on-demand read request unit
    "logs_ingested_gb": 0.50,
    "custom_metric_month": 0.30,
    "secret_month": 0.40,
    "glue_dpu_hour": 0.44,
}
CHECKS_PER_MONTH_AT_15_MIN = int(timedelta(days=30) / timedelta(minutes=15))  # 2,880
GLUE_DPUS, GLUE_MINIMUM_HOURS = 2, 1 / 60
BASE_METRICS, METRICS_PER_DASHBOARD_SOURCE = 8, 2


def fleet_config(sources: int) -> Config:
    """`sources` PostgreSQL sources at 15 minutes on 50 database servers, one secret per server."""
    return parse_config(
        "sources:\n"
        + "".join(
            f"  - {{name: s{i:05d}, kind: postgres, schedule: {{rate: 15m}}, "
            f"connection: {{host: db{i % 50}.internal, database: shop, password_secret: db{i % 50}}}}}\n"
            for i in range(sources)
        )
    )


def per_check_dollars(steady: Sequence[CheckCost], memory_mb: int) -> dict[str, float]:
    seconds = statistics.median(c.duration_ms for c in steady) / 1000
    log_bytes = statistics.median(c.log_bytes for c in steady)
    return {
        "Lambda compute": seconds * memory_mb / 1024 * PRICES["lambda_gb_second_arm"],
        "Lambda requests": PRICES["lambda_request"],
        "DynamoDB writes": statistics.median(c.write_units for c in steady) * PRICES["dynamodb_write_unit"],
        "DynamoDB reads": statistics.median(c.read_units for c in steady) * PRICES["dynamodb_read_unit"],
        "CloudWatch Logs": log_bytes / 1024**3 * PRICES["logs_ingested_gb"],
        # The check's share of its shard's Express execution: the execution lasts about as long as its
        # checks in parallel, so per check it is the check's own duration at the 64 MB minimum.
        "Step Functions Express (duration)": (seconds // 0.1 + 1)
        * 0.1
        * (64 / 1024)
        * PRICES["express_gb_second"],
    }


def monthly(sources: int, per_check: dict[str, float]) -> dict[str, float]:
    config = fleet_config(sources)
    groups = plan_schedules(config)
    firings = len(groups) * CHECKS_PER_MONTH_AT_15_MIN
    checks = sources * CHECKS_PER_MONTH_AT_15_MIN
    return {
        "per-check costs": checks * sum(per_check.values()),
        "Express requests + schedules": firings
        * (PRICES["express_request"] + PRICES["scheduler_invocation"]),
        "custom metrics": BASE_METRICS * PRICES["custom_metric_month"],
        "secrets": len({s.connection.password_secret for s in config.sources}) * PRICES["secret_month"],
        "glue_dq": checks * GLUE_DPUS * GLUE_MINIMUM_HOURS * PRICES["glue_dpu_hour"],
        "schedules": len(groups),
    }


def run(quick: bool = False) -> Report:
    report = Report("Cost model: dollars per million checks and per month", quick)
    costs = measure(quick)
    same_container, taking_turns = steady_state(costs)
    steady = taking_turns or same_container
    memory_mb = Config().aws.check_memory_mb
    per_check = per_check_dollars(steady, memory_mb)
    inputs = report.table(
        "Measured inputs (median of steady-state checks in containers taking turns on the source)",
        "input",
        "value",
    )
    inputs.add("check duration (ms, in-process under moto)", statistics.median(c.duration_ms for c in steady))
    inputs.add("check memory (MB, aws.check_memory_mb default)", memory_mb)
    inputs.add("DynamoDB write units per check", statistics.median(c.write_units for c in steady))
    inputs.add("DynamoDB read units per check", statistics.median(c.read_units for c in steady))
    inputs.add("log bytes per check", statistics.median(c.log_bytes for c in steady))
    million = report.table("Per million checks (USD)", "component", "USD")
    for name, dollars in per_check.items():
        million.add(name, round(dollars * 1e6, 2))
    million.add(
        "total per million checks (before per-firing and monthly fixed costs)",
        round(sum(per_check.values()) * 1e6, 2),
    )
    fleet = report.table(
        "Per month at a 15-minute cadence (USD)",
        "sources",
        "checks/month",
        "schedules",
        "per-check costs",
        "Express + Scheduler",
        "metrics + secrets",
        "DriftGuard total",
        "Glue DQ (minimum)",
        "Glue / DriftGuard",
    )
    for sources in (10, 1_000, 10_000):
        m = monthly(sources, per_check)
        total = m["per-check costs"] + m["Express requests + schedules"] + m["custom metrics"] + m["secrets"]
        fleet.add(
            sources,
            sources * CHECKS_PER_MONTH_AT_15_MIN,
            int(m["schedules"]),
            round(m["per-check costs"], 2),
            round(m["Express requests + schedules"], 2),
            round(m["custom metrics"] + m["secrets"], 2),
            round(total, 2),
            round(m["glue_dq"], 2),
            round(m["glue_dq"] / total, 1),
        )
    report.notes += [
        "prices: us-east-1 list prices without free tiers, see PRICES in bench/perf/cost_model.py",
        "Glue DQ (minimum): one evaluation run per source and cadence at 2 DPUs for the 1-minute minimum, "
        "$0.44 per DPU-hour; real runs take longer (Spark start-up), so this is Glue's lower bound",
        "the check duration is measured under moto on a loaded 2-core machine; with real DynamoDB latency "
        "(a few ms per call) it is expected lower, so the Lambda line errs high",
    ]
    return report


def entry(argv: Sequence[str] | None = None) -> int:
    return main(run, __doc__, argv)


if __name__ == "__main__":
    raise SystemExit(entry())
