"""`driftguard test-connection` against real PostgreSQL and MariaDB with a restricted user:
a table it may not read is reported with the GRANT that fixes it, and that GRANT works."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import yaml
from click.testing import CliRunner, Result
from tests.conftest import Database

from driftguard.cli import main
from driftguard.collect.connect import dispose_engines


def _config(tmp_path: Path, db: Database, user: str, **connection: Any) -> Path:
    source = db.source_yaml("warehouse")
    source["connection"] = {**source["connection"], "user": user, **connection}  # type: ignore[dict-item]
    source["tables"] = [{"name": "orders", **({"schema": db.schema} if db.schema else {})}]
    path = tmp_path / "dg.yaml"
    path.write_text(yaml.safe_dump({"sources": [source], "state": {"path": str(tmp_path / "s.db")}}))
    return path


def _test_connection(cfg: Path) -> tuple[Result, list[dict[str, Any]]]:
    dispose_engines()  # each try logs in afresh, as a new process would
    result = CliRunner().invoke(main, ["--config", str(cfg), "test-connection", "--json"])
    return result, json.loads(result.stdout)[0]["steps"]


def _step(steps: list[dict[str, Any]], name: str) -> dict[str, Any]:
    return next(s for s in steps if s["step"] == name)


def _literal(engine: sa.Engine, statement: str) -> str:
    """PyMySQL formats '%' even without parameters: double it there."""
    return statement.replace("%", "%%") if engine.dialect.name == "mysql" else statement


def _grant_fixes_it(admin: sa.Engine, cfg: Path) -> None:
    result, steps = _test_connection(cfg)
    assert result.exit_code == 3, result.output
    # PostgreSQL lets the user in and refuses the table; MariaDB refuses a user with no grant at all
    # on the database at login. Either way the failing step names the GRANT to run.
    failed = [s for s in steps if not s["ok"]]
    assert len(failed) == 1 and failed[0]["step"] in ("connect", "table orders"), steps
    assert failed[0]["fix"].startswith("GRANT") and "orders" in failed[0]["fix"]
    assert "GRANT" in result.stderr and "Traceback" not in result.output
    with admin.begin() as c:
        for statement in filter(None, (s.strip() for s in failed[0]["fix"].split(";"))):
            c.exec_driver_sql(_literal(admin, statement))
    result, steps = _test_connection(cfg)
    assert result.exit_code == 0, result.output
    assert _step(steps, "table orders")["ok"]


@pytest.mark.postgres
def test_postgres_missing_grant_is_named_and_fixes_it(
    _pg_admin: sa.Engine, pg: Database, tmp_path: Path
) -> None:
    role = f"dg_ro_{uuid.uuid4().hex[:8]}"
    pg.execute("create table orders (id int)")
    with _pg_admin.begin() as c:
        c.exec_driver_sql(f'create role "{role}" login')
    try:
        _grant_fixes_it(_pg_admin, _config(tmp_path, pg, role))
        # The superuser can write: reachable and readable, but not a read-only user (exit 1).
        result, steps = _test_connection(_config(tmp_path, pg, "postgres"))
        assert result.exit_code == 1 and not _step(steps, "read-only")["ok"]
        assert "superuser" in _step(steps, "read-only")["detail"]
    finally:
        dispose_engines()
        with _pg_admin.begin() as c:
            c.exec_driver_sql(f'drop owned by "{role}"')
            c.exec_driver_sql(f'drop role "{role}"')


@pytest.mark.mysql
def test_mariadb_missing_grant_is_named_and_fixes_it(
    _mysql_admin: sa.Engine, mysql: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    user = f"dg_ro_{uuid.uuid4().hex[:8]}"
    mysql.execute("create table orders (id int)")
    monkeypatch.setenv("DG_TEST_PASSWORD", "s3cret-ro")
    with _mysql_admin.begin() as c:
        for host in ("%", "localhost", "127.0.0.1"):
            c.exec_driver_sql(_literal(c.engine, f"create user '{user}'@'{host}' identified by 's3cret-ro'"))
    try:
        _grant_fixes_it(_mysql_admin, _config(tmp_path, mysql, user, password_env="DG_TEST_PASSWORD"))
        result, steps = _test_connection(_config(tmp_path, mysql, "root"))
        assert result.exit_code == 1 and not _step(steps, "read-only")["ok"]
    finally:
        dispose_engines()
        with _mysql_admin.begin() as c:
            for host in ("%", "localhost", "127.0.0.1"):
                c.exec_driver_sql(_literal(c.engine, f"drop user if exists '{user}'@'{host}'"))


@pytest.mark.postgres
def test_postgres_unreachable_and_wrong_login_say_what_to_check(pg: Database, tmp_path: Path) -> None:
    result, steps = _test_connection(_config(tmp_path, pg, "postgres", port=1))
    assert result.exit_code == 3 and not _step(steps, "connect")["ok"]
    assert "host, port" in _step(steps, "connect")["fix"]
    result, steps = _test_connection(_config(tmp_path, pg, "no_such_role_dg"))
    assert result.exit_code == 3 and not _step(steps, "connect")["ok"]
