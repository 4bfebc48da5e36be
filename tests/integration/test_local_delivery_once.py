"""Never twice, locally: concurrent `redeliver --all` send each parked delivery at most once, and what
a crash left between claim and send goes exactly once with the next run, check or redeliver.

Deliveries go to a real webhook receiver on loopback that counts every request by `webhook-id`
(the receiver does not deduplicate, so a second send would show)."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml

from contract.store_contract import T0, failed, notification, run_commit
from driftguard.config import Config, load_config
from driftguard.engine import Engine
from driftguard.ledger import ClaimRequest
from driftguard.model import DeliveryStatus, Notification
from driftguard.store.sqlite import SqliteStore

DRIFTGUARD = str(Path(sys.executable).with_name("driftguard"))
PARKED = 12


class Receiver:
    """A webhook endpoint on 127.0.0.1 counting requests by webhook-id; `gate`, when set, holds every
    request until it is opened, so senders overlap for as long as the test wants."""

    def __init__(self) -> None:
        self.received: Counter[str] = Counter()
        self.gate: threading.Event | None = None
        self.arrived = threading.Semaphore(0)
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length", "0")))
                receiver.received[self.headers["webhook-id"]] += 1
                receiver.arrived.release()
                if receiver.gate is not None:
                    receiver.gate.wait(60)
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: object) -> None:  # keep test output clean
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    if r.gate is not None:
        r.gate.set()
    r.server.shutdown()


def _config(tmp_path: Path, receiver: Receiver) -> Path:
    path = tmp_path / "driftguard.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "sources": [
                    {
                        "name": "shop",
                        "kind": "sqlite",
                        "connection": {"path": str(tmp_path / "shop.db")},
                        "tables": [{"name": "orders"}],
                    }
                ],
                # A long timeout: a request held by the test must not time out and be retried.
                "channels": [
                    {
                        "name": "hook",
                        "type": "webhook",
                        "url": receiver.url,
                        "allow_private": True,
                        "timeout": "120s",
                    }
                ],
                "route": {"receivers": ["hook"]},
                "state": {"path": str(tmp_path / "state.db")},
            }
        )
    )
    return path


def _committed(config: Config, count: int, *, parked: bool) -> list[Notification]:
    """`count` notifications of the shop source in the outbox, parked (failed for good) or waiting."""
    store = SqliteStore(config.state.path)
    notes = [notification("shop", T0 + timedelta(hours=i), channel="hook") for i in range(count)]
    for note in notes:
        store.commit_run(run_commit("shop", note.run_time, notifications=[note]))
        if parked:
            store.record_delivery(failed(note))
    store.close()
    return notes


def _driftguard(config: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [DRIFTGUARD, "--config", str(config), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "COLUMNS": "200"},
    )


def test_two_concurrent_redeliver_all_send_each_parked_delivery_once(
    tmp_path: Path, receiver: Receiver
) -> None:
    config_path = _config(tmp_path, receiver)
    notes = _committed(load_config(config_path), PARKED, parked=True)
    # The first request is held until the second process sent one too (the first, one request at a
    # time, is still waiting on its own): the two replay the same parked deliveries side by side.
    receiver.gate = threading.Event()
    processes = [_driftguard(config_path, "redeliver", "--all")]
    assert receiver.arrived.acquire(timeout=120), "the first redeliver never sent anything"
    processes.append(_driftguard(config_path, "redeliver", "--all"))
    assert receiver.arrived.acquire(timeout=120), "the second redeliver never sent anything"
    receiver.gate.set()
    outputs = [p.communicate(timeout=300) for p in processes]

    assert [p.returncode for p in processes] == [0, 0], outputs
    assert receiver.received == Counter({n.id: 1 for n in notes})  # every one, each once
    store = SqliteStore(load_config(config_path).state.path)
    assert store.failed_deliveries() == [] and store.pending_notifications() == []
    assert {store.delivery(n.id).status for n in notes} == {DeliveryStatus.DELIVERED}  # type: ignore[union-attr]


def test_redeliver_from_threads_of_one_process_sends_each_once(tmp_path: Path, receiver: Receiver) -> None:
    config = load_config(_config(tmp_path, receiver))
    notes = _committed(config, PARKED, parked=True)
    store = SqliteStore(config.state.path)
    engines = [Engine(config, store) for _ in range(3)]
    start = threading.Barrier(len(engines))

    def replay(engine: Engine) -> None:
        start.wait()
        engine.deliver(
            [r.notification for r in store.failed_deliveries() if r.notification], retry_parked=True
        )

    threads = [threading.Thread(target=replay, args=(e,)) for e in engines]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)

    assert receiver.received == Counter({n.id: 1 for n in notes})
    assert store.failed_deliveries() == []


CRASHING_SENDER = textwrap.dedent(
    """
    import sys, time
    from driftguard.config import load_config
    from driftguard.engine import Engine
    from driftguard.store.sqlite import SqliteStore

    def hang(notification):
        print("claimed", notification.id, flush=True)  # claimed, not sent: the parent kills us here
        time.sleep(600)

    config = load_config(sys.argv[1])
    Engine(config, SqliteStore(config.state.path), senders={"hook": hang}).flush_outbox()
    """
)


@pytest.mark.parametrize(
    "next_command", [["run", "--at", "2026-11-17T10:00:00Z"], ["check", "shop"], ["redeliver", "--all"]]
)
def test_a_kill_between_claim_and_send_is_sent_exactly_once_by_the_next_command(
    tmp_path: Path, receiver: Receiver, next_command: list[str]
) -> None:
    config_path = _config(tmp_path, receiver)
    config = load_config(config_path)
    with sqlite3.connect(tmp_path / "shop.db") as shop:
        shop.execute("create table orders (id integer primary key)")
    notes = _committed(config, 3, parked=False)
    crashing = subprocess.Popen(
        [sys.executable, "-c", CRASHING_SENDER, str(config_path)], stdout=subprocess.PIPE, text=True
    )
    assert crashing.stdout is not None
    claimed = crashing.stdout.readline().split()
    assert claimed[0] == "claimed"
    crashing.send_signal(signal.SIGKILL)
    crashing.wait(30)
    store = SqliteStore(config.state.path)
    held = {p.notification.id: p.claimer or "" for p in store.delivery_backlog().pending}
    assert held[claimed[1]].startswith("local:")  # the claim outlived its process

    done = _driftguard(config_path, *next_command)
    out, err = done.communicate(timeout=300)
    _driftguard(config_path, "redeliver", "--all").communicate(timeout=300)  # and again: nothing more goes

    assert receiver.received == Counter({n.id: 1 for n in notes}), (out, err)
    assert store.delivery_backlog().pending == []


def test_a_live_claim_of_another_process_is_left_to_it(tmp_path: Path, receiver: Receiver) -> None:
    config = load_config(_config(tmp_path, receiver))
    (note,) = _committed(config, 1, parked=False)
    store = SqliteStore(config.state.path)
    # A process on another host holds the claim, and its lease runs: a flush here must not send it.
    assert store.claim_delivery(
        note.id, ClaimRequest("local:elsewhere:1:x", T0, timedelta(days=3650))
    ).granted

    assert Engine(config, store).flush_outbox() == []
    assert receiver.received == Counter()


def test_a_claim_is_judged_orphaned_only_for_a_process_of_this_host_that_has_exited() -> None:
    from driftguard.engine import claimer_gone, local_claimer

    exited = subprocess.Popen([sys.executable, "-c", "pass"])
    exited.wait(30)
    host = local_claimer().split(":")[1]

    assert not claimer_gone(local_claimer())  # this process
    assert claimer_gone(f"local:{host}:{exited.pid}:abc")
    assert not claimer_gone(f"local:another-host:{exited.pid}:abc")  # cannot tell: wait for the lease
    assert not claimer_gone("lambda:0f3c")  # AWS claims expire with their lease
