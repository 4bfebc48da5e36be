"""The README's cost table is the cost model's output, and the model prices what the stack creates."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from bench.perf import cost_model

README = Path(__file__).resolve().parents[2] / "README.md"


def test_the_readme_cost_table_is_the_models_output() -> None:
    text = README.read_text()
    found = re.search(r"<!-- cost-model:start -->\n(.*?)\n<!-- cost-model:end -->", text, re.S)
    assert found, "README.md lost its cost-model markers"
    assert found.group(1) == cost_model.readme_table(), (
        "README.md's cost table is stale: paste `python -m bench.perf.cost_model --readme` between "
        "the markers"
    )


def test_every_monthly_item_has_a_price_a_quantity_and_an_assumption() -> None:
    names = set()
    for item in [*cost_model.monthly(1_000, cost_model.MEASURED), *cost_model.vpc_options()]:
        assert item.unit_price and item.quantity and item.assumption and item.dollars > 0, item
        names.add(item.name)
    for required in (
        "DynamoDB reads",
        "DynamoDB storage + PITR",
        "alarms",
        "dashboard",
        "KMS key",
        "secrets",
    ):
        assert required in names


def test_the_default_training_window_and_cpu_share_drive_the_estimate() -> None:
    reads = next(i for i in cost_model.per_check(cost_model.MEASURED) if i.name == "DynamoDB reads")
    assert reads.dollars == cost_model.READ_UNITS_56_DAYS * cost_model.PRICES["dynamodb_read_unit"]
    # at 512 MB a check's CPU time takes about 3.5 times as long as on a full core
    assert cost_model.check_seconds(cost_model.MEASURED) > cost_model.MEASURED.duration_ms / 1000 * 3.4


def test_a_secret_per_source_costs_more_than_one_per_server() -> None:
    shared = cost_model.total(cost_model.monthly(10_000, cost_model.MEASURED))
    own = cost_model.total(cost_model.monthly(10_000, cost_model.MEASURED, secret_per_source=True))
    assert own - shared == pytest.approx(
        (10_000 - cost_model.DATABASE_SERVERS) * cost_model.PRICES["secret_month"]
    )
