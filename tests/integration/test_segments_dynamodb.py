"""A segmented table at the default cap, checked by the engine with the DynamoDB store (moto):
every item the runs write, by kind, stays under DynamoDB's 400 KB item limit. Prints the largest
item of each kind (the figures docs and the README quote)."""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
from aws_world import fake_aws_credentials
from moto import mock_aws

from driftguard.collect.connect import dispose_engines
from driftguard.engine import Engine
from driftguard.model import CheckKind, FindingStatus
from driftguard.store.dynamodb import DynamoStore
from unit.test_segments import NOW, config_for, make_orders

REGION = "eu-west-1"
ITEM_LIMIT = 400 * 1024


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    fake_aws_credentials(monkeypatch, REGION)
    with mock_aws():
        yield
    dispose_engines()


def item_size(item: dict[str, Any]) -> int:
    """DynamoDB's item size: attribute names plus values (strings and binaries by length, numbers
    counted generously at 21 bytes)."""
    size = 0
    for name, value in item.items():
        size += len(name.encode())
        ((kind, raw),) = value.items()
        size += len(raw) if kind == "B" else 21 if kind == "N" else len(str(raw).encode())
    return size


def kind_of(item: dict[str, Any]) -> str:
    pk, sk = item["pk"]["S"], item["sk"]["S"]
    if pk.startswith("SRC#"):
        return sk.split("#")[0]  # HEAD, STATE, TAIL, SCHEMA
    return pk.split("#")[0]  # RUN, SNAP, SERIES, TRANS, NOTE, OUTBOX ...


def test_every_item_of_a_segmented_table_at_the_cap_fits_dynamodb(aws: None, tmp_path: Path) -> None:
    rng = random.Random(17)
    rate = {f"country-{i:03d}": 3 + rng.randrange(12) for i in range(130)}
    make_orders(tmp_path / "shop.db", rate, 30, NOW - timedelta(hours=30), rng)
    config = config_for(tmp_path, limit=100, columns=True)
    store = DynamoStore("driftguard-state", REGION)
    store.create_table()
    Engine(config, store).check("shop", NOW)
    make_orders(tmp_path / "shop.db", {c: 60 + rng.randrange(40) for c in rate}, 1, NOW, rng)
    # not delivered: the outbox entry (the whole notification) stays to be measured
    spike = Engine(config, store, deliver_inline=False).check("shop", NOW + timedelta(hours=1))
    volume = {f.key.segment for f in spike.findings if f.key.check == CheckKind.VOLUME}
    assert sum(f.status == FindingStatus.ANOMALY for f in spike.findings) >= 101
    assert len(spike.notifications) == 1

    client = boto3.client("dynamodb", region_name=REGION)
    largest: dict[str, int] = {}
    count: dict[str, int] = {}
    for page in client.get_paginator("scan").paginate(TableName="driftguard-state"):
        for item in page["Items"]:
            kind = kind_of(item)
            largest[kind] = max(largest.get(kind, 0), item_size(item))
            count[kind] = count.get(kind, 0) + 1
    print(f"\n{len(volume)} segments, {len(spike.findings)} findings in the run")
    for kind in sorted(largest):
        print(f"{kind:<8} items {count[kind]:>5}  largest {largest[kind]:>7,} bytes")
    assert {"RUN", "SNAP", "OUTBOX", "HEAD", "STATE"} <= set(largest)
    assert max(largest.values()) < ITEM_LIMIT, largest
