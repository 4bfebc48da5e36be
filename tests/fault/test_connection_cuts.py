"""A connection cut at any step of a check (connect, catalog, backfill, collect, custom SQL, the
end of its transaction) becomes that source's FAILED run with a clear error; the check does not
raise, the other sources go on, and the next check of the cut source reconnects and succeeds.
Against real PostgreSQL and MariaDB, through a proxy that cuts the connection the moment the
client sends the step's statement."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from tests.fault.proxy import CuttingProxy, cutting_proxy

from driftguard.collect.connect import dispose_engines
from driftguard.config import Config
from driftguard.engine import Engine
from driftguard.model import RunStatus
from driftguard.store.sqlite import SqliteStore

AT = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)

# What the client sends at each step (the statements' own text; see collect/dialects.py, table_query.py)
CATALOG = {"postgres": b"format_type(a.atttypid", "mysql": b"information_schema.tables"}
STEPS_OF_A_FIRST_CHECK = {
    "backfill catalog": None,  # the catalog marker of the kind
    "backfill": b"rows_in_window",
    "collect": b"AS last_modified",
    "custom sql": b"driftguard_check",
    "end of transaction": b"ROLLBACK",
}


@pytest.fixture(params=["postgres", "mysql"])
def server(request: pytest.FixtureRequest) -> Any:
    db = request.getfixturevalue("pg" if request.param == "postgres" else "mysql")
    name = f"{db.schema}.orders" if db.schema else "orders"
    stamp = "timestamptz" if db.kind == "postgres" else "datetime(6)"
    db.execute(f"create table {name} (id int primary key, created_at {stamp}, updated_at {stamp})")
    rows = ", ".join(
        f"({i}, '2026-03-{1 + i // 24:02d} {i % 24:02d}:00:00', '2026-03-10 11:00:00')" for i in range(200)
    )
    db.execute(f"insert into {name} values {rows}")  # noqa: S608 - test data
    return db


@pytest.fixture
def proxy(server: Any) -> Iterator[CuttingProxy]:
    with cutting_proxy(server.host, server.port) as p:
        yield p
    dispose_engines()


def config_for(server: Any, proxy: CuttingProxy, tmp_path: Path) -> Config:
    def source(name: str, port: int) -> dict[str, Any]:
        return {
            **server.source_yaml(name),
            "connection": {**server.source_yaml(name)["connection"], "port": port, "connect_timeout": "5s"},
            "statement_timeout": "10s",
            "tables": [
                {
                    "name": "orders",
                    **({"schema": server.schema} if server.schema else {}),
                    "checks": {"volume": {"column": "created_at"}, "freshness": {"column": "updated_at"}},
                }
            ],
            "sql_checks": [{"name": "ok", "sql": "select 'OK' as status"}],
        }

    return Config.model_validate(
        {
            "sources": [source("cut", proxy.port), source("direct", server.port)],
            "state": {"path": str(tmp_path)},
        }
    )


def assert_cut_recorded(engine: Engine, at: datetime) -> None:
    outcome = engine.check("cut", at)
    assert outcome.run.status == RunStatus.FAILED, outcome.run
    assert outcome.run.error_kind == "unavailable" and outcome.run.error.startswith("source cut"), outcome.run
    assert engine.store.get_run("cut", at) is not None  # recorded, not lost
    assert engine.check("direct", at).run.status == RunStatus.OK  # the others go on


@pytest.mark.parametrize("step", sorted(STEPS_OF_A_FIRST_CHECK))
def test_a_cut_at_any_step_of_a_first_check_is_that_sources_failed_run(
    server: Any, proxy: CuttingProxy, tmp_path: Path, step: str
) -> None:
    store = SqliteStore(tmp_path / "state.db")
    engine = Engine(config_for(server, proxy, tmp_path), store)
    proxy.cut_when_sent(STEPS_OF_A_FIRST_CHECK[step] or CATALOG[server.kind])
    assert_cut_recorded(engine, AT)
    assert proxy.cuts == 1
    assert engine.check("cut", AT + HOUR).run.status == RunStatus.OK  # reconnected
    store.close()


@pytest.mark.parametrize("step", ["connect", "catalog"])
def test_a_cut_of_a_steady_check_is_that_sources_failed_run(
    server: Any, proxy: CuttingProxy, tmp_path: Path, step: str
) -> None:
    store = SqliteStore(tmp_path / "state.db")
    engine = Engine(config_for(server, proxy, tmp_path), store)
    assert engine.check("cut", AT - HOUR).run.status == RunStatus.OK
    if step == "connect":
        proxy.refusing = True
    else:
        proxy.cut_when_sent(CATALOG[server.kind])
    assert_cut_recorded(engine, AT)
    proxy.refusing = False
    assert engine.check("cut", AT + HOUR).run.status == RunStatus.OK
