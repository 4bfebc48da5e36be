"""`driftguard test-connection [SOURCE]`: can DriftGuard reach, log in, stay read-only and see
every configured table? Each step says what failed and, for a missing grant, the GRANT to run."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import click

from driftguard.cli.common import CliContext, Exit, json_option, pass_cli, print_json, say_failed
from driftguard.cli.text import clean
from driftguard.config import Config, Source, TableConfig
from driftguard.errors import CheckDefinitionError, DriftGuardError, PermissionDenied

_WRITE_PRIVILEGES = ("ALL PRIVILEGES", "INSERT", "UPDATE", "DELETE", "CREATE", "DROP", "ALTER")


@dataclass
class Step:
    name: str  # reach, login, read-only, table <name>
    ok: bool
    detail: str = ""
    fix: str = ""  # what to run or change when not ok

    def as_dict(self) -> dict[str, Any]:
        return {"step": self.name, "ok": self.ok, "detail": self.detail, "fix": self.fix}


@dataclass
class Report:
    source: str
    kind: str
    steps: list[Step] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(s.ok for s in self.steps)


def _qualified(source: Source, table: TableConfig, default_schema: str) -> str:
    if source.kind == "mysql":
        return f"`{source.connection.database}`.`{table.name}`"
    if source.kind == "postgres":
        return f'"{table.db_schema or default_schema}"."{table.name}"'
    if source.kind == "clickhouse":
        database = (table.db_schema or source.connection.database or "").replace("`", "``")
        return f"`{database}`.`{table.name.replace('`', '``')}`"
    return f'"{table.name}"'


def _grant(source: Source, table: TableConfig, user: str, default_schema: str) -> str:
    if source.kind == "postgres":
        schema = table.db_schema or default_schema
        return (
            f'GRANT USAGE ON SCHEMA "{schema}" TO "{user}"; '
            f'GRANT SELECT ON "{schema}"."{table.name}" TO "{user}";'
        )
    if source.kind == "mysql":
        name, _, host = user.partition("@")
        return f"GRANT SELECT ON `{source.connection.database}`.`{table.name}` TO '{name}'@'{host or '%'}';"
    if source.kind == "clickhouse":  # servers before 20.5 grant databases in users.xml (allow_databases)
        database = table.db_schema or source.connection.database
        return f"GRANT SELECT ON `{database}`.`{table.name}` TO `{source.connection.user}`"
    return f"make {source.connection.path} readable by the user running DriftGuard"


def _login_fix(source: Source, message: str) -> str:
    """MySQL refuses the login itself to a user with no privilege on the database: the table
    grants fix that; anything else is the user or password."""
    if source.kind == "mysql" and "to database" in message:
        user = f"{source.connection.user or 'USER'}@%"
        return " ".join(_grant(source, t, user, "") for t in source.tables) or (
            f"GRANT SELECT ON `{source.connection.database}`.* TO '{source.connection.user}'@'%';"
        )
    return "check the user and password (login refused)"


def _writes_postgres(session: Any) -> list[str]:
    row = session.execute_text(
        "select r.rolsuper, r.rolcreaterole, r.rolcreatedb, "
        "has_database_privilege(current_database(), 'CREATE') from pg_roles r where r.rolname = current_user",
        where="read-only check",
    ).one()
    names = ("superuser", "CREATEROLE", "CREATEDB", "CREATE on the database")
    return [n for n, flag in zip(names, row, strict=True) if flag]


def _writes_mysql(session: Any) -> list[str]:
    grants = [str(r[0]) for r in session.execute_text("SHOW GRANTS", where="read-only check")]
    found = []
    for grant in grants:
        head = grant.upper().split(" ON ", 1)[0]
        found += [
            f"{p} ({clean(grant)})" for p in _WRITE_PRIVILEGES if p in head and not p.startswith("USAGE")
        ]
    return found


def _user(source: Source, session: Any) -> str:
    if source.kind == "postgres":
        return str(session.execute_text("select current_user", where="login").scalar())
    if source.kind == "mysql":
        return str(session.execute_text("select current_user()", where="login").scalar())
    return ""


def test_source(config: Config, source: Source) -> Report:
    """Run the steps in order; a step that cannot run because an earlier one failed is left out."""
    from driftguard.collect.connect import lease_pool
    from driftguard.secrets import SecretResolver

    report = Report(source.name, source.kind)
    timeout = config.statement_timeout_of(source)
    try:
        lease = lease_pool(source, resolver=SecretResolver())
    except DriftGuardError as e:
        report.steps.append(
            Step("credentials", False, clean(e), "set the password variable or secret the config names")
        )
        return report
    try:
        return _steps(report, source, lease.engine, timeout)
    finally:
        lease.release()  # the server's pool closes with its last lease


def _steps(report: Report, source: Source, engine: Any, timeout: timedelta) -> Report:
    from driftguard.collect.session import SourceSession

    report.steps.append(Step("credentials", True, "resolved"))
    try:
        session = SourceSession(source.name, engine, timeout)
    except PermissionDenied as e:
        report.steps.append(Step("connect", False, clean(e), _login_fix(source, str(e))))
        return report
    except DriftGuardError as e:
        report.steps.append(
            Step("connect", False, clean(e), "check host, port, database and the network path")
        )
        return report
    try:
        user = _user(source, session)
        report.steps.append(Step("connect", True, f"logged in as {user}" if user else "opened read-only"))
        writes = {"postgres": _writes_postgres, "mysql": _writes_mysql}.get(source.kind, lambda _s: [])(
            session
        )
        report.steps.append(
            Step(
                "read-only",
                not writes,
                "the user can also: " + "; ".join(writes) if writes else "no write privileges found",
                "use a user with only SELECT (and USAGE) grants" if writes else "",
            )
        )
        default_schema = ""
        if source.kind == "postgres":
            default_schema = str(session.execute_text("select current_schema()", where="schema").scalar())
        for table in source.tables:
            name = _qualified(source, table, default_schema)
            try:
                session.execute_text(f"select 1 from {name} where 1 = 0", where=f"table {table.name}")  # noqa: S608 - names from the config, quoted
                report.steps.append(Step(f"table {table.name}", True, "visible"))
            except PermissionDenied:
                report.steps.append(
                    Step(
                        f"table {table.name}",
                        False,
                        "exists but may not be read",
                        _grant(source, table, user, default_schema),
                    )
                )
            except CheckDefinitionError as e:
                report.steps.append(
                    Step(
                        f"table {table.name}",
                        False,
                        f"not found: {clean(e)}",
                        "check the table (and schema) name in the config",
                    )
                )
    finally:
        session.close()
    return report


@click.command("test-connection")
@click.argument("source", required=False)
@json_option
@pass_cli
def test_connection(cli: CliContext, source: str | None, as_json: bool) -> None:
    """Check each source (or SOURCE): credentials, connection and login, a read-only user, and that
    every configured table can be read; prints the GRANT to run for a table that cannot.

    Exit 3 when a source cannot be reached or a table not read, 1 when the user could write."""
    config = cli.config
    sources = [config.source(source)] if source else list(config.sources)
    reports = [test_source(config, s) for s in sources]
    if as_json:
        print_json(
            [
                {"source": r.source, "kind": r.kind, "ok": r.ok, "steps": [s.as_dict() for s in r.steps]}
                for r in reports
            ]
        )
    else:
        for r in reports:
            click.echo(f"{clean(r.source)} ({r.kind}): {'ok' if r.ok else 'PROBLEMS'}")
            for s in r.steps:
                click.echo(f"  {'ok  ' if s.ok else 'FAIL'} {clean(s.name)}: {s.detail}")
                if s.fix:
                    click.echo(f"       fix: {s.fix}")
    blocking = [(r, s) for r in reports for s in r.steps if not s.ok and s.name != "read-only"]
    for r, s in blocking:
        say_failed(f"source {r.source}: {s.name}: {s.detail}" + (f"; fix: {s.fix}" if s.fix else ""))
    if blocking:
        sys.exit(Exit.FAILURE)
    if any(not r.ok for r in reports):
        sys.exit(Exit.ATTENTION)


commands = [test_connection]
