"""The connection budget against a real PostgreSQL: a `driftguard run` of 60 sources on one server
with --workers 4 never holds more connections than the server's `max_connections`, and holds
none once it is done. pg_stat_activity is sampled from the test while the run goes on."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import uuid
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import yaml

DRIFTGUARD = str(Path(sys.executable).with_name("driftguard"))
SOURCES = 60


class ConnectionSampler:
    """Counts the server's connections named `application_name`, every few milliseconds."""

    def __init__(self, engine: sa.Engine, application_name: str) -> None:
        self.engine = engine
        self.application_name = application_name
        self.samples: list[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def held(self) -> int:
        with self.engine.connect() as c:
            return int(
                c.execute(
                    sa.text("select count(*) from pg_stat_activity where application_name = :n"),
                    {"n": self.application_name},
                ).scalar_one()
            )

    def _sample(self) -> None:
        while not self._stop.wait(0.005):
            self.samples.append(self.held())

    def __enter__(self) -> ConnectionSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


def budget_config(pg: Any, tmp_path: Path, application_name: str, max_connections: int | None) -> Path:
    pg.execute(
        "create table orders (id int primary key, amount float, created_at timestamptz)",
        "insert into orders select g, g * 1.5, now() - g * interval '1 minute'"
        " from generate_series(1, 200) g",
    )
    connection: dict[str, Any] = {
        "host": pg.host,
        "port": pg.port,
        "database": pg.database,
        "user": pg.user,
        "options": {"application_name": application_name},
    }
    if max_connections is not None:
        connection["max_connections"] = max_connections
    sources = [
        {
            "name": f"s{i:02d}",
            "kind": "postgres",
            "connection": connection,
            "tables": [{"name": "orders", "schema": pg.schema, "checks": {"volume": {"exact": True}}}],
            # a short sleep makes the checks overlap, as slow real checks would
            "sql_checks": [{"name": "slow", "sql": "select 'OK' as status from pg_sleep(0.05)"}],
        }
        for i in range(SOURCES)
    ]
    config = tmp_path / "dg.yaml"
    config.write_text(
        yaml.safe_dump({"sources": sources, "state": {"path": str(tmp_path / "state.db")}}), encoding="utf-8"
    )
    return config


@pytest.mark.postgres
@pytest.mark.parametrize("max_connections", [None, 3])
def test_a_run_of_60_sources_holds_at_most_the_servers_budget(
    pg: Any, tmp_path: Path, max_connections: int | None
) -> None:
    application_name = f"dg-budget-{uuid.uuid4().hex[:8]}"
    config = budget_config(pg, tmp_path, application_name, max_connections)
    with ConnectionSampler(pg.engine, application_name) as sampler:
        result = subprocess.run(
            [DRIFTGUARD, "--config", str(config), "run", "--workers", "4", "--json"],
            capture_output=True,
            text=True,
            timeout=300,
            env={**os.environ, "COLUMNS": "200"},
        )
    assert result.returncode == 0, result.stderr
    budget = max_connections or 2
    peak = max(sampler.samples)
    print(f"\n{SOURCES} sources, --workers 4, max_connections {budget}: peak {peak} connection(s) held")
    assert 0 < peak <= budget, sampler.samples
    assert sampler.held() == 0  # the last source's end closed the pool
    runs = json.loads(result.stdout)["runs"]
    assert [r["status"] for r in runs] == ["ok"] * SOURCES  # waiting for a connection fails no check
