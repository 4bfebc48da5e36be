"""What every CLI command shares: the config and state it works on, how it reports, how it exits.

Commands take `cli: CliContext` via `@pass_cli`; `cli.config` and the stores load lazily, so
`driftguard schema` or `driftguard init` never need a config file. Every command takes `--json`
(`@json_option`) and then prints one JSON document on stdout, for scripts.

Exit codes are a contract, the same for every command (`Exit`): 0 ok, 1 needs attention (an
anomaly or alert, as chosen by `--fail-on`), 2 usage or config error, 3 a source, the state or a
delivery failed.

Rich (and the display helpers built on it) is imported only by what prints for people: a
`--json` run never needs it, and it is about a sixth of the CLI's start-up.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import IntEnum
from typing import TYPE_CHECKING, Any, TypeVar

import click

from driftguard.config import Config, load_config
from driftguard.model import utc, utcnow
from driftguard.store import StateNotFound, Store, open_store

if TYPE_CHECKING:
    from rich.console import Console

F = TypeVar("F", bound=Callable[..., Any])

DEFAULT_CONFIG = "driftguard.yaml"
# How far ahead of this machine's clock `--at` may be: clocks of the scheduler and this machine
# disagree by seconds, never by minutes. Anything later has not happened yet and cannot be checked.
CLOCK_SKEW = timedelta(minutes=2)
# Outside a terminal (CI logs, pipes, cron mail) nothing is cut to fit: lines are as long as they need.
PLAIN_WIDTH = 400


class Exit(IntEnum):
    OK = 0
    ATTENTION = 1  # anomalies or alerts, per --fail-on
    USAGE = 2  # a wrong argument, config or state location
    FAILURE = 3  # a source, the state or a delivery failed


class UserError(click.ClickException):
    """A mistake in what was asked (unknown name, empty range, nothing to act on): exit 2."""

    exit_code = Exit.USAGE


class FailedError(click.ClickException):
    """Something outside failed (a file that cannot be written, a function that raised): exit 3."""

    exit_code = Exit.FAILURE


def say_failed(message: str) -> None:
    """One line on stderr for a failure the command reports and goes on from (exit 3 follows)."""
    from driftguard.cli.text import clean

    click.echo(f"error: {clean(message)}", err=True)


def now() -> datetime:
    """The CLI's clock: every command reads the time here, once."""
    return utcnow()


@dataclass
class CliContext:
    config_path: str
    state_url: str | None = None
    debug: bool = False
    _config: Config | None = field(default=None, repr=False)
    _store: Store | None = field(default=None, repr=False)
    _console: Console | None = field(default=None, repr=False)
    _err_console: Console | None = field(default=None, repr=False)

    @property
    def console(self) -> Console:
        if self._console is None:
            self._console = make_console()
        return self._console

    @property
    def err_console(self) -> Console:
        if self._err_console is None:
            self._err_console = make_console(stderr=True)
        return self._err_console

    @property
    def config(self) -> Config:
        if self._config is None:
            self._config = load_config(self.config_path)
        return self._config

    @property
    def resolved_state_url(self) -> str:
        """--state / $DRIFTGUARD_STATE, else the config's state.path (relative to the config file)."""
        return self.state_url or self.config.state.path

    @property
    def store(self) -> Store:
        """The state, created on first use: for commands that check or change something."""
        if self._store is None:
            self._store = open_store(self.resolved_state_url, retention=self.config.state.retention)
        return self._store

    @property
    def reader(self) -> Store:
        """The state for commands that only read: a missing file is an error, never created."""
        if self._store is None:
            self._store = open_store(self.resolved_state_url, create=False)
        return self._store

    def scratch_store_if_missing(self) -> Store:
        """The state if it exists, else an empty one in memory (a dry run stores nothing)."""
        if self._store is None:
            try:
                self._store = open_store(self.resolved_state_url, create=False)
            except StateNotFound:
                self._store = open_store(":memory:")
        return self._store

    def close(self) -> None:
        if self._store is not None:
            self._store.close()


def make_console(*, stderr: bool = False) -> Console:
    """A Rich console that never cuts text to 80 columns when it is not a terminal."""
    from rich.console import Console

    console = Console(stderr=stderr, highlight=False)
    if not console.is_terminal and "COLUMNS" not in os.environ:
        console = Console(stderr=stderr, highlight=False, width=PLAIN_WIDTH, soft_wrap=True)
    return console


pass_cli = click.make_pass_decorator(CliContext)


def json_option(f: F) -> F:
    return click.option("--json", "as_json", is_flag=True, help="Print one JSON document (for scripts).")(f)


FAIL_ON = ("anomaly", "critical", "never")


def fail_on_option(f: F) -> F:
    """Which findings make the exit code 1. The default, like Soda's scans (non-zero on a warning
    as on a failure), is any anomaly; failures exit 3 whatever this says."""
    return click.option(
        "--fail-on",
        type=click.Choice(FAIL_ON),
        default="anomaly",
        show_default=True,
        help="Exit 1 on any anomaly (or firing alert, for status), only on critical ones, or never; "
        "failures still exit 3.",
    )(f)


def print_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, default=_json_default, sort_keys=False))


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if hasattr(value, "model_dump"):
        return value.model_dump(mode="json")
    return str(value)


def parse_time(value: str, *, now: datetime, param: str) -> datetime:
    """'now', an ISO 8601 time (UTC when no offset), or a relative '-2h' / '-3d'."""
    from driftguard.config import parse_duration

    text = value.strip()
    if text.lower() == "now":
        return now
    if text.startswith("-"):
        try:
            return now - parse_duration(text[1:])
        except ValueError as e:
            raise click.BadParameter(str(e), param_hint=param) from None
    try:
        return utc(datetime.fromisoformat(text.replace("Z", "+00:00")))
    except ValueError:
        raise click.BadParameter(
            f"{value!r} is not a time: use 'now', ISO 8601 (2024-05-01T09:00:00Z) or '-2h'", param_hint=param
        ) from None


def parse_past_time(value: str, *, now: datetime, param: str) -> datetime:
    """A time that has happened: a check cannot see data of a time still to come, and a future
    snapshot would make the real run of that time a duplicate."""
    when = parse_time(value, now=now, param=param)
    if when > now + CLOCK_SKEW:
        raise click.BadParameter(
            f"{when.isoformat()} is in the future (now {now.replace(microsecond=0).isoformat()}): "
            "a check can only judge data that exists; give a past time or leave it out",
            param_hint=param,
        )
    return when


def parse_range(start: str, end: str, *, now: datetime, params: tuple[str, str]) -> tuple[datetime, datetime]:
    """A time range whose end is not before its start."""
    lo = parse_time(start, now=now, param=params[0])
    hi = parse_time(end, now=now, param=params[1])
    if hi < lo:
        raise click.BadParameter(
            f"{params[1]} {hi.isoformat()} is before {params[0]} {lo.isoformat()}: swap them",
            param_hint=params[1],
        )
    return lo, hi
