"""What every CLI command shares: the config and state it works on, and how it reports.

Commands take `cli: CliContext` via `@pass_cli`; `cli.config` and `cli.store` load lazily, so
`driftguard schema` or `driftguard init` never need a config file. Every command that reports
takes `--json` (`@json_option`) and then prints one JSON document on stdout, for scripts.

Rich (and the display helpers built on it) is imported only by what prints for people: a
`--json` run never needs it, and it is about a sixth of the CLI's start-up.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar

import click

from driftguard.config import Config, load_config
from driftguard.model import utc
from driftguard.store import Store, open_store

if TYPE_CHECKING:
    from rich.console import Console

F = TypeVar("F", bound=Callable[..., Any])

DEFAULT_CONFIG = "driftguard.yaml"


@dataclass
class CliContext:
    config_path: str
    state_url: str | None = None
    _config: Config | None = field(default=None, repr=False)
    _store: Store | None = field(default=None, repr=False)
    _console: Console | None = field(default=None, repr=False)
    _err_console: Console | None = field(default=None, repr=False)

    @property
    def console(self) -> Console:
        if self._console is None:
            from rich.console import Console

            self._console = Console(highlight=False)
        return self._console

    @property
    def err_console(self) -> Console:
        if self._err_console is None:
            from rich.console import Console

            self._err_console = Console(stderr=True, highlight=False)
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
        if self._store is None:
            self._store = open_store(self.resolved_state_url, retention=self.config.state.retention)
        return self._store

    def close(self) -> None:
        if self._store is not None:
            self._store.close()


pass_cli = click.make_pass_decorator(CliContext)


def json_option(f: F) -> F:
    return click.option("--json", "as_json", is_flag=True, help="Print one JSON document (for scripts).")(f)


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
