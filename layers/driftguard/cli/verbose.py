"""`--verbose`: every SQL statement a command sends, with the server it went to and its time."""

from __future__ import annotations

import time
from typing import Any

import click

from driftguard.cli.text import clean

_STARTED = "driftguard_started"


def _before(conn: Any, _cursor: Any, _statement: str, _params: Any, _context: Any, _many: bool) -> None:
    conn.info.setdefault(_STARTED, []).append(time.perf_counter())


def _after(conn: Any, _cursor: Any, statement: str, _params: Any, _context: Any, _many: bool) -> None:
    started = conn.info.get(_STARTED) or [time.perf_counter()]
    elapsed_ms = (time.perf_counter() - started.pop()) * 1000
    url = conn.engine.url
    where = f"{url.get_backend_name()}:{url.host or ''}{'/' if url.host else ''}{url.database or ''}"
    one_line = " ".join(clean(statement).split())
    click.echo(f"sql {where} {elapsed_ms:.1f} ms: {one_line}", err=True)


def _failed(context: Any) -> None:
    conn = context.connection
    if conn is not None and conn.info.get(_STARTED):
        elapsed_ms = (time.perf_counter() - conn.info[_STARTED].pop()) * 1000
        statement = " ".join(clean(context.statement or "").split())
        click.echo(f"sql failed after {elapsed_ms:.1f} ms: {statement}", err=True)


def log_sql_statements() -> None:
    """Listen on every SQLAlchemy engine the command creates (sources, never the state store)."""
    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    if not event.contains(Engine, "after_cursor_execute", _after):
        event.listen(Engine, "before_cursor_execute", _before)
        event.listen(Engine, "after_cursor_execute", _after)
        event.listen(Engine, "handle_error", _failed)
