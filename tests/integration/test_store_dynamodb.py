"""The DynamoDB store under moto: the shared Store contract, then what only DynamoDB can show."""

from __future__ import annotations

import functools
import json
import math
import random
import secrets
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import boto3
import pytest
from aws_world import fake_aws_credentials, serialise_dynamodb_requests
from moto import mock_aws

from contract.store_contract import (
    HOUR,
    T0,
    StoreContract,
    alert_state,
    baseline,
    check_key,
    hours,
    notification,
    points_of,
    run_commit,
    run_in_threads,
    silence,
    snapshot,
    transition,
)
from driftguard.config import DetectionSettings
from driftguard.detect.seasonal import Fitted, SeasonalStrategy
from driftguard.errors import ConfigError, StateConflict
from driftguard.model import AlertStateName, CheckKey, MetricPoint, PointLabel
from driftguard.store import dynamodb, open_store
from driftguard.store.dynamodb import SILENCE_GRACE, DynamoStore, ItemTooLarge

REGION = "eu-west-1"


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    fake_aws_credentials(monkeypatch, REGION)
    serialise_dynamodb_requests(monkeypatch)
    with mock_aws():
        yield


def new_store(table: str = "driftguard-state", **options: object) -> DynamoStore:
    store = DynamoStore(table, REGION, **options)  # type: ignore[arg-type]
    store.create_table()
    return store


class TestDynamoStore(StoreContract):
    @pytest.fixture
    def store(self, aws: None) -> DynamoStore:
        return new_store()


# --------------------------------------------------------------------------- what only DynamoDB shows


@dataclass
class Request:
    operation: str
    params: dict[str, Any]


def record_requests(store: DynamoStore) -> list[Request]:
    """Every request `store` sends from now on, in order (botocore's before-call event)."""
    seen: list[Request] = []

    def hook(model: Any, params: dict[str, Any], **_: Any) -> None:
        seen.append(Request(model.name, params))

    store.client.meta.events.register("before-parameter-build.dynamodb", hook)
    return seen


def raw_item(store: DynamoStore, pk: str, sk: str) -> dict[str, Any]:
    item = boto3.client("dynamodb", region_name=REGION).get_item(
        TableName=store.table_name, Key={"pk": {"S": pk}, "sk": {"S": sk}}
    )
    return item["Item"]


def partition_items(store: DynamoStore, source: str) -> list[dict[str, Any]]:
    found = boto3.client("dynamodb", region_name=REGION).query(
        TableName=store.table_name,
        KeyConditionExpression="pk = :pk",
        ExpressionAttributeValues={":pk": {"S": f"SRC#{source}"}},
    )
    return list(found["Items"])


def epoch(at: datetime) -> int:
    return int(at.timestamp())


def many_checks(count: int) -> list[CheckKey]:
    return [check_key("shop", table=f"t{i:03d}") for i in range(count)]


def test_concurrent_attempts_of_one_run_write_one_snapshot_one_transition_per_check(aws: None) -> None:
    store = new_store()
    keys = many_checks(3)
    attempts = [
        run_commit(
            "shop",
            T0,
            row_count=n,
            points=[MetricPoint(key=k, ts=T0, value=float(n)) for k in keys],
            states=[alert_state(k, T0) for k in keys],
            transitions=[transition(k, T0).model_copy(update={"reason": f"attempt {n}"}) for k in keys],
            notifications=[notification("shop", T0)],
        )
        for n in (1, 2)
    ]

    results = run_in_threads(*(lambda c=c: store.commit_run(c) for c in attempts))

    assert sorted(results, key=repr) == [False, True]
    winner = attempts[results.index(True)]
    assert store.snapshots("shop", limit=10) == [winner.snapshot]
    stored = store.transitions("shop")
    assert sorted(t.fingerprint for t in stored) == sorted(k.fingerprint for k in keys)
    assert stored == sorted(winner.transitions, key=lambda t: t.id, reverse=True)
    assert [s.version for s in store.alert_states()] == [1, 1, 1]
    assert store.pending_notifications() == winner.notifications
    assert [p.value for k in keys for p in store.series(k, before=T0 + HOUR)] == [
        p.value for p in winner.points
    ]


def test_a_check_is_one_query_to_load_and_one_transaction_to_commit(aws: None) -> None:
    keys = many_checks(3)
    new_store().commit_run(run_commit("shop", T0 - HOUR, states=[alert_state(k, T0 - HOUR) for k in keys]))
    store = DynamoStore("driftguard-state", REGION)  # another container: it has read nothing yet
    requests = record_requests(store)

    loaded = store.load_source("shop")
    store.commit_run(
        run_commit(
            "shop",
            T0,
            points=[MetricPoint(key=k, ts=T0, value=1.0) for k in keys],
            states=[alert_state(k, T0, AlertStateName.RESOLVED) for k in keys],
            expected_versions={k.fingerprint: loaded.states[k.fingerprint].version for k in keys},
            transitions=[transition(keys[0], T0, AlertStateName.FIRING, AlertStateName.RESOLVED)],
            notifications=[notification("shop", T0)],
            baselines=[baseline("shop")],
            context_version=loaded.version,
        )
    )

    assert [r.operation for r in requests] == ["Query", "TransactWriteItems"]
    query, transaction = (r.params for r in requests)
    assert query["ConsistentRead"] is True
    assert query["ExpressionAttributeValues"] == {":0": {"S": "SRC#shop"}}
    puts = [i["Put"]["Item"] for i in transaction["TransactItems"]]
    kinds = sorted(
        f"SRC {i['sk']['S'].split('#')[0]}" if i["pk"]["S"].startswith("SRC#") else i["pk"]["S"].split("#")[0]
        for i in puts
    )
    # The head (which holds the new points), 3 states, the baseline, the transition, marker + outbox
    # entry, the snapshot and the run: nothing else, and no lock.
    assert kinds == sorted(
        ["SRC HEAD", *["SRC STATE"] * 3, "SRC SCHEMA", "TRANS", "NOTE", "OUTBOX", "SNAP", "RUN"]
    )
    assert store.load_source("shop").series(keys[0], before=T0 + HOUR, limit=5) == [
        MetricPoint(key=keys[0], ts=T0, value=1.0)
    ]


def test_a_warm_container_checks_the_source_it_wrote_last_with_one_transaction(aws: None) -> None:
    store = new_store()
    key = check_key("shop")
    store.commit_run(run_commit("shop", T0 - HOUR, points=points_of(key, [T0 - HOUR])))
    requests = record_requests(store)
    store.load_source("shop")  # a read finds the partition as this store left it: it is the only writer
    assert [r.operation for r in requests] == ["Query"]
    requests.clear()

    loaded = store.load_source("shop")

    assert [r.operation for r in requests] == []  # nobody else wrote since its commit: no read
    committed = store.commit_run(
        run_commit("shop", T0, points=points_of(key, [T0], value=2.0), context_version=loaded.version)
    )

    assert committed is True
    assert [r.operation for r in requests] == ["TransactWriteItems"]
    fresh = DynamoStore("driftguard-state", REGION).load_source("shop")
    assert fresh.version == loaded.version + 1
    assert [p.value for p in fresh.series(key, before=T0 + HOUR, limit=10) or []] == [1.0, 2.0]


def test_containers_taking_turns_on_a_source_read_it_each_time_and_no_commit_is_refused(
    aws: None,
) -> None:
    containers = [new_store(), DynamoStore("driftguard-state", REGION)]
    requests = [record_requests(c) for c in containers]
    key = check_key("shop")

    for n in range(6):
        store, at = containers[n % 2], T0 + n * HOUR
        loaded = store.load_source("shop")
        commit = run_commit("shop", at, points=points_of(key, [at], value=n), context_version=loaded.version)
        assert store.commit_run(commit) is True

    # Each memory is one turn old when it is next needed, so each load reads; nothing is retried.
    assert [[r.operation for r in log] for log in requests] == [["Query", "TransactWriteItems"] * 3] * 2
    final = containers[0].load_source("shop").series(key, before=T0 + 6 * HOUR, limit=10) or []
    assert [p.value for p in final] == [0, 1, 2, 3, 4, 5]


def test_a_run_judged_on_a_partition_another_container_moved_is_refused_then_judged_again(
    aws: None,
) -> None:
    warm, other = new_store(), DynamoStore("driftguard-state", REGION)
    key = check_key("shop")
    warm.commit_run(run_commit("shop", T0 - 2 * HOUR, points=points_of(key, [T0 - 2 * HOUR])))
    remembered = warm.load_source("shop")
    other.commit_run(run_commit("shop", T0 - HOUR, points=points_of(key, [T0 - HOUR], value=7.0)))
    requests = record_requests(warm)

    with pytest.raises(StateConflict, match=r"changed since the run read it"):
        warm.commit_run(run_commit("shop", T0, context_version=remembered.version))

    # The refused transaction wrote nothing, and the store stops answering loads from memory.
    assert [r.operation for r in requests] == ["TransactWriteItems", "GetItem", "Query"]
    assert warm.get_run("shop", T0) is None
    requests.clear()
    current = warm.load_source("shop")
    assert [r.operation for r in requests] == ["Query"]
    assert [p.value for p in current.series(key, before=T0, limit=10) or []] == [1.0, 7.0]
    assert warm.commit_run(run_commit("shop", T0, context_version=current.version)) is True


def test_an_accepted_schema_moves_the_source_so_a_run_judged_on_the_old_one_is_refused(
    aws: None,
) -> None:
    warm, operator = new_store(), DynamoStore("driftguard-state", REGION)
    warm.commit_run(run_commit("shop", T0 - HOUR, baselines=[baseline("shop", columns=("id",))]))
    remembered = warm.load_source("shop")

    operator.put_schema_baseline(baseline("shop", by="alice", columns=("id", "currency")))

    with pytest.raises(StateConflict, match=r"changed since the run read it"):
        warm.commit_run(run_commit("shop", T0, context_version=remembered.version))
    accepted = warm.load_source("shop").baselines["orders"]
    assert (accepted.accepted_by, [c.name for c in accepted.columns]) == ("alice", ["id", "currency"])


def _at_text(at: datetime) -> str:
    return at.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def test_a_commit_without_a_load_reads_the_partition_first(aws: None) -> None:
    new_store().commit_run(run_commit("shop", T0 - HOUR))
    other = DynamoStore("driftguard-state", REGION)  # another container: it has read nothing yet
    requests = record_requests(other)

    assert other.commit_run(run_commit("shop", T0)) is True

    assert [r.operation for r in requests] == ["Query", "TransactWriteItems"]


def test_a_store_remembers_the_latest_sources_only_and_reads_the_others_again(aws: None) -> None:
    store = new_store()
    sources = [f"src{n:02d}" for n in range(dynamodb._REMEMBERED_SOURCES + 1)]
    for source in sources:
        store.load_source(source)
    requests = record_requests(store)

    store.commit_run(run_commit(sources[-1], T0))
    store.commit_run(run_commit(sources[0], T0))  # forgotten: a container's memory stays bounded

    assert [r.operation for r in requests] == ["TransactWriteItems", "Query", "TransactWriteItems"]


def test_a_commit_above_the_transaction_limit_is_split_and_reads_back_whole(aws: None) -> None:
    store = new_store()
    keys = many_checks(120)
    store.load_source("shop")
    requests = record_requests(store)
    commit = run_commit(
        "shop",
        T0,
        points=[MetricPoint(key=k, ts=t, value=1.0) for k in keys for t in (T0 - HOUR, T0)],
        states=[alert_state(k, T0) for k in keys],
        transitions=[transition(k, T0) for k in keys],
        notifications=[notification("shop", T0)],
    )

    assert store.commit_run(commit) is True

    assert [r.operation for r in requests] == ["TransactWriteItems"] * 3
    transactions = [r.params["TransactItems"] for r in requests]
    # 120 states, 120 transitions, 2 outbox items, the snapshot and the run (the points are in the head).
    assert sum(len(items) for items in transactions) == 244 + 3 + 2  # + a head each + a run check each
    assert all(len(items) <= 100 for items in transactions)
    # Each moves the head one version on from the one before; all but the last re-check the run.
    heads = [
        next(i["Put"] for i in items if "Put" in i and i["Put"]["Item"]["sk"] == {"S": "HEAD"})
        for items in transactions
    ]
    assert [h["Item"]["version"]["N"] for h in heads] == ["1", "2", "3"]
    assert all(
        [i["ConditionCheck"]["Key"]["pk"] for i in items if "ConditionCheck" in i] == [{"S": "RUN#shop"}]
        for items in transactions[:-1]
    )
    assert {"S": "RUN#shop"} in [i["Put"]["Item"]["pk"] for i in transactions[-1] if "Put" in i]
    assert store.get_run("shop", T0) == commit.run
    assert len(store.alert_states("shop")) == 120
    assert len(store.transitions("shop", limit=500)) == 120
    assert store.series(keys[-1], before=T0 + HOUR) == [p for p in commit.points if p.key == keys[-1]]
    assert store.load_source("shop").series(keys[-1], before=T0 + HOUR, limit=10) == store.series(
        keys[-1], before=T0 + HOUR
    )
    assert store.pending_notifications() == commit.notifications


def test_a_retry_of_a_run_committed_in_several_transactions_writes_nothing(aws: None) -> None:
    store = new_store()
    keys = many_checks(60)
    commit = run_commit("shop", T0, states=[alert_state(k, T0) for k in keys], transitions=[])
    assert store.commit_run(commit) is True
    retry = run_commit(
        "shop",
        T0,
        states=[alert_state(k, T0, AlertStateName.RESOLVED) for k in keys],
        expected_versions={k.fingerprint: 1 for k in keys},
        transitions=[transition(k, T0) for k in keys],
    )

    assert store.commit_run(retry) is False

    assert {s.state for s in store.alert_states("shop")} == {AlertStateName.FIRING}
    assert store.transitions("shop") == []


def test_a_large_commit_refused_for_a_conflict_writes_no_state(aws: None) -> None:
    store = new_store()
    keys = many_checks(120)
    store.commit_run(run_commit("shop", T0 - HOUR, states=[alert_state(keys[-1], T0 - HOUR)]))

    with pytest.raises(StateConflict):
        store.commit_run(run_commit("shop", T0, states=[alert_state(k, T0) for k in keys]))

    assert [s.key for s in store.alert_states()] == [keys[-1]]
    assert store.get_run("shop", T0) is None
    assert store.commit_run(run_commit("shop", T0)) is True  # the lock was released


def test_a_snapshot_above_the_item_limit_is_split_into_parts(aws: None) -> None:
    store = new_store()
    # Random hex compresses about 2:1, so this is well over one item's 400 KB even compressed.
    big = snapshot("shop", T0).model_copy(
        update={"sql_errors": {f"q{i}": secrets.token_hex(4096) for i in range(120)}}
    )
    commit = run_commit("shop", T0).model_copy(update={"snapshot": big})
    store.commit_run(commit)
    store.commit_run(run_commit("shop", T0 + HOUR))

    assert store.snapshots("shop", as_of=T0) == [big]
    assert store.snapshots("shop", limit=5) == [snapshot("shop", T0 + HOUR), big]
    assert int(raw_item(store, "SNAP#shop", "2026-03-02T09:00:00.000000Z")["parts"]["N"]) >= 2


def test_a_model_too_large_for_one_item_fails_clearly_and_writes_nothing(aws: None) -> None:
    store = new_store()
    huge = notification("shop", T0).model_copy(update={"silence_hint": secrets.token_hex(400_000)})

    with pytest.raises(ItemTooLarge, match=r"notification .* bytes compressed"):
        store.commit_run(run_commit("shop", T0, notifications=[huge]))

    assert store.runs() == []
    assert store.commit_run(run_commit("shop", T0)) is True


def test_history_items_expire_retention_days_after_their_time_and_silences_after_their_end(
    aws: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(dynamodb, "_OPEN_POINTS", 1)  # the point is sealed into a segment at once
    store = new_store(retention_days=30)
    key = check_key("shop")
    store.commit_run(
        run_commit(
            "shop",
            T0,
            points=points_of(key, [T0]),
            states=[alert_state(key, T0)],
            transitions=[transition(key, T0)],
            baselines=[baseline("shop")],
        )
    )
    store.put_silence(silence("s1", T0, T0 + HOUR))
    at = "2026-03-02T09:00:00.000000Z"
    month = epoch(T0 + timedelta(days=30))

    expiries = {
        "run": raw_item(store, "RUN#shop", at),
        "snapshot": raw_item(store, "SNAP#shop", at),
        "series segment": raw_item(store, f"SERIES#{key.fingerprint}", at),
        "transition": raw_item(store, "TRANS#shop", f"{at}#{transition(key, T0).id}"),
    }
    assert {what: int(item["expires_at"]["N"]) for what, item in expiries.items()} == dict.fromkeys(
        expiries, month
    )
    assert int(raw_item(store, "SILENCE", "s1")["expires_at"]["N"]) == epoch(T0 + HOUR + SILENCE_GRACE)
    # What is current, not history, never expires.
    (tail,) = [i for i in partition_items(store, "shop") if i["sk"]["S"].startswith("TAIL#")]
    assert int(tail["expires_at"]["N"]) == month  # a segment goes with the newest point it holds
    assert "expires_at" not in raw_item(store, "SRC#shop", f"STATE#{key.fingerprint}")
    assert "expires_at" not in raw_item(store, "SRC#shop", "SCHEMA#orders")
    assert "expires_at" not in raw_item(store, "SRC#shop", "HEAD")
    ttl = boto3.client("dynamodb", region_name=REGION).describe_time_to_live(TableName=store.table_name)
    assert ttl["TimeToLiveDescription"] == {"AttributeName": "expires_at", "TimeToLiveStatus": "ENABLED"}


def test_stores_of_different_tables_in_one_process_do_not_interfere(aws: None) -> None:
    first, second = new_store("state-a"), new_store("state-b")

    first.commit_run(run_commit("shop", T0))
    second.put_silence(silence("s1", T0, T0 + HOUR))

    assert [r.source for r in first.runs()] == ["shop"]
    assert second.runs() == []
    assert first.silences() == []
    assert [s.id for s in second.silences()] == ["s1"]


def test_region_comes_from_the_argument_then_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AWS_REGION", raising=False)
    monkeypatch.delenv("AWS_DEFAULT_REGION", raising=False)
    with pytest.raises(ConfigError, match=r"dynamodb://t\?region=REGION"):
        DynamoStore("t")

    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-west-2")
    assert DynamoStore("t").region == "us-west-2"
    monkeypatch.setenv("AWS_REGION", "ap-south-1")
    assert DynamoStore("t").region == "ap-south-1"
    assert DynamoStore("t", "eu-central-1").region == "eu-central-1"
    opened = open_store("dynamodb://state?region=eu-north-1")
    assert isinstance(opened, DynamoStore)
    assert (opened.table_name, opened.region) == ("state", "eu-north-1")


def test_a_commit_on_a_stale_read_reads_again_and_loses_no_point(aws: None) -> None:
    store, backfill = new_store(), new_store()
    key, other = check_key("shop"), check_key("shop", table="customers")
    store.load_source("shop")
    backfill.put_points(points_of(other, [T0 - HOUR]) + points_of(key, [T0 - HOUR]))  # moves the head
    requests = record_requests(store)

    assert store.commit_run(run_commit("shop", T0, points=points_of(key, [T0], value=5.0))) is True

    # The transaction on the stale read failed and wrote nothing; after a read, the second went through.
    assert [r.operation for r in requests] == ["TransactWriteItems", "GetItem", "Query", "TransactWriteItems"]
    loaded = store.load_source("shop")
    assert [p.value for p in loaded.series(key, before=T0 + HOUR, limit=10) or []] == [1.0, 5.0]
    assert [p.value for p in loaded.series(other, before=T0 + HOUR, limit=10) or []] == [1.0]


def test_a_partition_written_in_another_layout_is_refused_clearly(aws: None) -> None:
    store = new_store()
    store.client.put_item(
        TableName=store.table_name,
        Item={"pk": {"S": "SRC#shop"}, "sk": {"S": "HEAD"}, "version": {"N": "3"}, "layout": {"N": "1"}},
    )

    with pytest.raises(ConfigError, match=r"layout 1.*layout 2"):
        store.load_source("shop")


def test_tails_keep_the_newest_points_in_small_items_and_say_when_they_cannot_answer(
    aws: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(dynamodb, "_SEGMENT_POINTS", 4)
    monkeypatch.setattr(dynamodb, "_OPEN_POINTS", 2)
    store = new_store(tail_points=10)
    key = check_key("shop")
    store.put_points(points_of(key, hours(30)))

    loaded = store.load_source("shop")
    tails = [i for i in partition_items(store, "shop") if i["sk"]["S"].startswith("TAIL#")]
    assert 10 <= sum(len(dynamodb._unpack(i["body"]["B"])) for i in tails) < 10 + 4
    assert all(len(dynamodb._unpack(i["body"]["B"])) <= 4 for i in tails)
    last = T0 + 30 * HOUR
    assert loaded.series(key, before=last, limit=10) == store.series(key, before=last, limit=10)
    assert loaded.series(key, before=last, limit=25) is None  # older points left the tail
    assert loaded.series(key, before=T0 + 5 * HOUR, limit=1) is None
    assert store.series(key, before=last, limit=25) == points_of(key, hours(30))[-25:]

    def segment_puts(at: datetime) -> list[str]:
        requests = record_requests(store)
        store.commit_run(run_commit("shop", at, points=points_of(key, [at], value=99.0)))
        (transaction,) = [r.params["TransactItems"] for r in requests if r.operation == "TransactWriteItems"]
        puts = [i["Put"]["Item"] for i in transaction if "Put" in i]
        history = ["SERIES" for i in puts if i["pk"]["S"].startswith("SERIES#")]
        return history + ["TAIL" for i in puts if i["sk"]["S"].startswith("TAIL#")]

    assert segment_puts(last) == []  # the point waits in the head
    assert segment_puts(last + HOUR) == ["SERIES", "TAIL"]  # sealed: one segment
    window = store.load_source("shop").series(key, before=last + 2 * HOUR, limit=10)
    assert window == store.series(key, before=last + 2 * HOUR, limit=10)
    assert window is not None and [p.value for p in window[-2:]] == [99.0, 99.0]

    # A point older than the tail holds goes into the series' history segments (read whole for it).
    old = MetricPoint(key=key, ts=T0 - HOUR, value=7.0, label=PointLabel.INCIDENT)
    store.put_points([old])
    assert store.series(key, before=T0 + HOUR, limit=5) == [old, points_of(key, [T0])[0]]
    assert store.load_source("shop").series(key, before=last + 2 * HOUR, limit=10) == window
    assert store.label_points(key, T0 - HOUR, T0, PointLabel.NONE) == 2
    assert store.series(key, before=T0, limit=5) == [old.model_copy(update={"label": PointLabel.NONE})]


def test_a_full_tail_item_stays_far_below_the_item_limit() -> None:
    rng = random.Random(7)
    worst = [
        (rng.randrange(-(2**62), 2**62), rng.uniform(-1e300, 1e300), "maintenance")
        for _ in range(dynamodb._SEGMENT_POINTS)
    ]
    worst.sort()

    body = dynamodb._pack(worst)

    assert len(body) < 50_000  # of the 400 KB an item may hold
    assert dynamodb._unpack(body) == tuple(worst)


def test_a_baseline_accepted_while_a_commit_is_in_flight_is_kept_and_the_commit_goes_through(
    aws: None,
) -> None:
    store, operator = new_store(), new_store()
    accepted = baseline("shop", by="alice", columns=("id", "total"))
    transactions = 0

    def operator_accepts_first(**_: Any) -> None:
        nonlocal transactions
        transactions += 1
        if transactions == 1:
            operator.put_schema_baseline(accepted)

    store.client.meta.events.register("before-call.dynamodb.TransactWriteItems", operator_accepts_first)
    commit = run_commit(
        "shop", T0, baselines=[baseline("shop")], transitions=[transition(check_key("shop"), T0)]
    )

    assert store.commit_run(commit) is True

    assert transactions == 2  # the learned baseline's insert-once failed; retried without it
    assert store.schema_baselines("shop").get("orders") == accepted
    assert store.transitions("shop") == commit.transitions


@pytest.mark.parametrize("intruder", ["state", "run"])
def test_a_writer_between_the_read_and_the_transaction_makes_it_write_nothing(
    aws: None, intruder: str
) -> None:
    store = new_store()
    key = check_key("shop")
    store.commit_run(run_commit("shop", T0 - HOUR, states=[alert_state(key, T0 - HOUR)]))

    other = new_store()  # another container, with its own client
    intrusions = 0

    def intrude(**_: Any) -> None:
        nonlocal intrusions
        intrusions += 1
        if intrusions > 1:
            return
        if intruder == "state":  # another run moved the state after our read
            item = raw_item(store, "SRC#shop", f"STATE#{key.fingerprint}") | {"version": {"N": "2"}}
            store.client.put_item(TableName=store.table_name, Item=item)
        else:  # another attempt of this run committed it first
            other.commit_run(run_commit("shop", T0, row_count=7))

    store.client.meta.events.register("before-parameter-build.dynamodb.TransactWriteItems", intrude)
    commit = run_commit(
        "shop",
        T0,
        states=[alert_state(key, T0, AlertStateName.RESOLVED)],
        expected_versions={key.fingerprint: 1},
        transitions=[transition(key, T0, AlertStateName.FIRING, AlertStateName.RESOLVED)],
        notifications=[notification("shop", T0)],
    )

    if intruder == "state":
        with pytest.raises(StateConflict, match="meanwhile"):
            store.commit_run(commit)
        assert store.get_run("shop", T0) is None
        assert store.snapshots("shop", limit=5) == store.snapshots("shop", as_of=T0 - HOUR, limit=5)
    else:
        assert store.commit_run(commit) is False
        assert store.snapshots("shop", limit=1) == [snapshot("shop", T0, row_count=7)]
    assert store.transitions("shop") == []
    assert store.pending_notifications() == []
    assert [s.state for s in store.alert_states()] == [AlertStateName.FIRING]


# --------------------------------------------------------------------------- fits


@functools.cache
def fitted_json() -> dict[str, Any]:
    """What detection keeps of a real full judgement: 56 days of a 15-minute count series with a
    daily and a weekly shape and Poisson-like noise (Fitted.to_json of a weekly seasonal fit)."""
    rng = random.Random(7)
    key = check_key("shop")
    step, count = timedelta(minutes=15), 56 * 96
    history = []
    for n in range(count):
        at = T0 - (count - n) * step
        hour = at.hour + at.minute / 60
        level = 1000 * (1 + 0.5 * math.sin(2 * math.pi * hour / 24)) * (0.7 if at.weekday() >= 5 else 1.0)
        history.append(MetricPoint(key=key, ts=at, value=float(max(0, round(rng.gauss(level, 30))))))
    judgement = SeasonalStrategy().judge(history, T0, 1000.0, DetectionSettings())
    assert judgement.fitted is not None
    return judgement.fitted.to_json()


def fits_of(keys: list[CheckKey]) -> dict[str, dict[str, Any]]:
    """A fit per series, each its own (its floats moved a little), as a run of a large source keeps them."""
    rng = random.Random(11)

    def moved(value: Any) -> Any:
        if isinstance(value, float) and math.isfinite(value):
            return value * rng.uniform(0.9, 1.1)
        if isinstance(value, list):
            return [moved(v) for v in value]
        if isinstance(value, dict):
            return {k: moved(v) for k, v in value.items()}
        return value

    return {k.fingerprint: {**moved(fitted_json()), "fingerprint": k.fingerprint} for k in keys}


def test_a_fit_is_an_item_of_its_own_in_the_source_partition_far_below_the_item_limit(aws: None) -> None:
    store = new_store(retention_days=30)
    (key,) = many_checks(1)
    fits = fits_of([key])
    assert Fitted.from_json(fits[key.fingerprint]) is not None  # a fit detection can use again

    store.commit_run(run_commit("shop", T0, fits=fits))

    item = raw_item(store, "SRC#shop", f"FIT#{key.fingerprint}")
    assert json.loads(zlib.decompress(item["body"]["B"])) == fits[key.fingerprint]
    assert len(item["body"]["B"]) < 4_000  # of the 400 KB an item may hold
    assert int(item["expires_at"]["N"]) == epoch(T0 + timedelta(days=30))  # unless a later run fits again
    assert DynamoStore("driftguard-state", REGION).load_source("shop").fits == fits


def test_600_fits_in_one_commit_are_split_within_the_transaction_limits_and_load_back(aws: None) -> None:
    store = new_store()
    keys = many_checks(600)  # a segmented table's most series
    store.load_source("shop")
    requests = record_requests(store)
    commit = run_commit("shop", T0, fits=fits_of(keys))

    assert store.commit_run(commit) is True

    transactions = [r.params["TransactItems"] for r in requests if r.operation == "TransactWriteItems"]
    assert [r.operation for r in requests] == ["TransactWriteItems"] * len(transactions)
    assert all(len(items) <= 100 for items in transactions)
    fit_puts = [i["Put"]["Item"] for items in transactions for i in items if "Put" in i]
    fit_puts = [i for i in fit_puts if i["sk"]["S"].startswith("FIT#")]
    assert len(fit_puts) == 600
    assert all(
        sum(len(i["Put"]["Item"].get("body", {}).get("B", b"")) for i in items if "Put" in i) < 4_000_000
        for items in transactions
    )
    # 600 fits, the snapshot and the run in chunks of 98 (+ the head and a check of the run each).
    assert len(transactions) == math.ceil(602 / 98)
    assert DynamoStore("driftguard-state", REGION).load_source("shop").fits == commit.fits
    assert store.get_run("shop", T0) == commit.run


def test_the_context_served_from_memory_holds_the_fits_this_store_wrote(aws: None) -> None:
    store = new_store()
    keys = many_checks(3)
    store.commit_run(run_commit("shop", T0 - HOUR, fits=fits_of(keys)))
    loaded = store.load_source("shop")  # a read finds the partition as this store left it
    refitted = {keys[0].fingerprint: {**fits_of(keys[:1])[keys[0].fingerprint], "at": T0.timestamp()}}
    requests = record_requests(store)
    store.commit_run(run_commit("shop", T0, fits=refitted, context_version=loaded.version))

    remembered = store.load_source("shop")

    assert [r.operation for r in requests] == ["TransactWriteItems"]  # no read: served from memory
    assert remembered.fits == {**fits_of(keys), **refitted}
    assert remembered.fits == DynamoStore("driftguard-state", REGION).load_source("shop").fits
    assert remembered.fits[keys[0].fingerprint]["at"] == T0.timestamp()


def test_a_stored_fit_that_cannot_be_read_is_left_out_of_the_load(
    aws: None, caplog: pytest.LogCaptureFixture
) -> None:
    store = new_store()
    key, damaged = many_checks(2)
    store.commit_run(run_commit("shop", T0, states=[alert_state(key, T0)], fits=fits_of([key])))
    boto3.client("dynamodb", region_name=REGION).put_item(
        TableName=store.table_name,
        Item={"pk": {"S": "SRC#shop"}, "sk": {"S": f"FIT#{damaged.fingerprint}"}, "body": {"B": b"not zlib"}},
    )

    loaded = DynamoStore("driftguard-state", REGION).load_source("shop")

    assert loaded.fits == fits_of([key])
    assert list(loaded.states) == [key.fingerprint]
    assert any("cannot be read" in r.getMessage() for r in caplog.records)


def test_a_fit_above_the_item_limit_is_left_out_and_the_run_goes_through(
    aws: None, caplog: pytest.LogCaptureFixture
) -> None:
    store = new_store()
    key, huge = many_checks(2)
    # Random hex compresses about 2:1, so this is above the item limit even compressed.
    fits = {**fits_of([key]), huge.fingerprint: {"noise": secrets.token_hex(400_000)}}

    assert store.commit_run(run_commit("shop", T0, fits=fits)) is True

    assert store.get_run("shop", T0) is not None
    assert store.load_source("shop").fits == fits_of([key])
    assert DynamoStore("driftguard-state", REGION).load_source("shop").fits == fits_of([key])
    assert any(
        huge.fingerprint in r.getMessage() and "bytes compressed" in r.getMessage() for r in caplog.records
    )
