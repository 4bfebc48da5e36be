"""The DynamoDB store under moto: the shared Store contract, then what only DynamoDB can show."""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import boto3
import pytest
from moto import mock_aws
from moto.dynamodb.responses import DynamoHandler

from contract.store_contract import (
    HOUR,
    T0,
    StoreContract,
    alert_state,
    baseline,
    check_key,
    notification,
    points_of,
    run_commit,
    run_in_threads,
    silence,
    snapshot,
    transition,
)
from driftguard.errors import ConfigError, StateConflict
from driftguard.model import AlertStateName, CheckKey, MetricPoint
from driftguard.store import open_store
from driftguard.store.dynamodb import SILENCE_GRACE, DynamoStore, ItemTooLarge

REGION = "eu-west-1"


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": REGION,
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_REGION", raising=False)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    # DynamoDB applies each request atomically; moto checks a condition and writes in separate steps, so
    # two threads can both pass `attribute_not_exists`. Serialise moto's requests as DynamoDB would.
    serialised = threading.Lock()
    call_action = DynamoHandler.call_action

    def atomic_call_action(handler: DynamoHandler) -> Any:
        with serialised:
            return call_action(handler)

    monkeypatch.setattr(DynamoHandler, "call_action", atomic_call_action)
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


def test_a_typical_commit_is_a_lock_a_read_a_batch_of_points_and_one_transaction(aws: None) -> None:
    store = new_store()
    keys = many_checks(3)
    store.commit_run(run_commit("shop", T0 - HOUR, states=[alert_state(k, T0 - HOUR) for k in keys]))
    requests = record_requests(store)

    store.commit_run(
        run_commit(
            "shop",
            T0,
            points=[MetricPoint(key=k, ts=T0, value=1.0) for k in keys],
            states=[alert_state(k, T0, AlertStateName.RESOLVED) for k in keys],
            expected_versions={k.fingerprint: 1 for k in keys},
            transitions=[transition(keys[0], T0, AlertStateName.FIRING, AlertStateName.RESOLVED)],
            notifications=[notification("shop", T0)],
            baselines=[baseline("shop")],
        )
    )

    assert [r.operation for r in requests] == [
        "PutItem",
        "BatchGetItem",
        "BatchWriteItem",
        "TransactWriteItems",
    ]
    read, points, transaction = (r.params for r in requests[1:])
    # The run, 3 states, the transition, the notification marker and the baseline, all consistent.
    assert len(read["RequestItems"][store.table_name]["Keys"]) == 7
    assert read["RequestItems"][store.table_name]["ConsistentRead"] is True
    assert len(points["RequestItems"][store.table_name]) == 3
    # 3 states, the transition, marker + outbox entry, the baseline, the snapshot, the run, lock release.
    assert len(transaction["TransactItems"]) == 10


def test_a_commit_above_the_transaction_limit_is_split_and_reads_back_whole(aws: None) -> None:
    store = new_store()
    keys = many_checks(120)
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

    transactions = [r.params["TransactItems"] for r in requests if r.operation == "TransactWriteItems"]
    assert len(transactions) == 3  # 120 states + 120 transitions + 2 outbox + snapshot + run = 244 items
    assert all(len(items) <= 100 for items in transactions)
    # Earlier transactions re-check the source lock; the last writes the run and releases the lock.
    assert all(items[0]["ConditionCheck"]["Key"]["pk"] == {"S": "LOCK#shop"} for items in transactions[:-1])
    assert [i["Delete"]["Key"]["pk"] for i in transactions[-1] if "Delete" in i] == [{"S": "LOCK#shop"}]
    assert {"S": "RUN#shop"} in [i["Put"]["Item"]["pk"] for i in transactions[-1] if "Put" in i]
    assert [r.operation for r in requests].count("BatchWriteItem") == 10  # 240 points, 25 a request
    assert store.get_run("shop", T0) == commit.run
    assert len(store.alert_states("shop")) == 120
    assert len(store.transitions("shop", limit=500)) == 120
    assert store.series(keys[-1], before=T0 + HOUR) == [p for p in commit.points if p.key == keys[-1]]
    assert store.pending_notifications() == commit.notifications


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
    aws: None,
) -> None:
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
        "point": raw_item(store, f"SERIES#{key.fingerprint}", at),
        "transition": raw_item(store, "TRANS#shop", f"{at}#{transition(key, T0).id}"),
    }
    assert {what: int(item["expires_at"]["N"]) for what, item in expiries.items()} == dict.fromkeys(
        expiries, month
    )
    assert int(raw_item(store, "SILENCE", "s1")["expires_at"]["N"]) == epoch(T0 + HOUR + SILENCE_GRACE)
    # What is current, not history, never expires.
    assert "expires_at" not in raw_item(store, "STATE#shop", key.fingerprint)
    assert "expires_at" not in raw_item(store, "SCHEMA#shop", "orders")
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


def hold_lock(store: DynamoStore, source: str, token: str, lease_seconds: float) -> None:
    """Put the commit lock of `source` as another writer would, its lease ending `lease_seconds` from now."""
    store.client.put_item(
        TableName=store.table_name,
        Item={
            "pk": {"S": f"LOCK#{source}"},
            "sk": {"S": "LOCK"},
            "token": {"S": token},
            "lease_until": {"N": str(time.time() + lease_seconds)},
        },
    )


def test_the_lock_of_a_crashed_commit_is_taken_over_once_its_lease_ends(aws: None) -> None:
    store = new_store()
    hold_lock(store, "shop", "crashed", lease_seconds=-1)

    assert store.commit_run(run_commit("shop", T0)) is True


def test_a_commit_waits_one_lease_for_a_live_lock_then_gives_up_writing_nothing(aws: None) -> None:
    store = new_store(lock_lease_seconds=0.3)
    hold_lock(store, "shop", "alive", lease_seconds=3600)
    started = time.monotonic()

    with pytest.raises(StateConflict, match="held its lock"):
        store.commit_run(run_commit("shop", T0))

    assert time.monotonic() - started >= 0.3
    assert store.runs() == []
    assert raw_item(store, "LOCK#shop", "LOCK")["token"] == {"S": "alive"}


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


@pytest.mark.parametrize("intruder", ["state", "lock"])
def test_a_writer_that_got_round_the_lock_makes_the_transaction_write_nothing(
    aws: None, intruder: str
) -> None:
    store = new_store()
    key = check_key("shop")
    store.commit_run(run_commit("shop", T0 - HOUR, states=[alert_state(key, T0 - HOUR)]))

    def intrude(**_: Any) -> None:
        if intruder == "state":  # a commit that ignored the lock moved the state after our pre-read
            item = raw_item(store, "STATE#shop", key.fingerprint) | {"version": {"N": "2"}}
            store.client.put_item(TableName=store.table_name, Item=item)
        else:  # our lease ran out and another commit took the lock
            hold_lock(store, "shop", "someone else", lease_seconds=60)

    store.client.meta.events.register("before-parameter-build.dynamodb.TransactWriteItems", intrude)

    with pytest.raises(StateConflict, match="meanwhile" if intruder == "state" else "expired mid-commit"):
        store.commit_run(
            run_commit(
                "shop",
                T0,
                states=[alert_state(key, T0, AlertStateName.RESOLVED)],
                expected_versions={key.fingerprint: 1},
                transitions=[transition(key, T0, AlertStateName.FIRING, AlertStateName.RESOLVED)],
                notifications=[notification("shop", T0)],
            )
        )

    assert store.get_run("shop", T0) is None
    assert store.snapshots("shop", limit=5) == store.snapshots("shop", as_of=T0 - HOUR, limit=5)
    assert store.transitions("shop") == []
    assert store.pending_notifications() == []
    assert [s.state for s in store.alert_states()] == [AlertStateName.FIRING]
