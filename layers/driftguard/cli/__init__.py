"""The operator's CLI: `driftguard --help`.

Commands live in small modules by topic (monitor, silences, backtest, demo, invoke); each
exposes `commands`, registered here on one click group.
"""

from __future__ import annotations

import importlib
import sys

import click

from driftguard import __version__
from driftguard.cli.common import DEFAULT_CONFIG, CliContext
from driftguard.errors import ConfigError, DriftGuardError

_COMMAND_MODULES = (
    "driftguard.cli.monitor",
    "driftguard.cli.demo",
    "driftguard.cli.silences",
    "driftguard.cli.backtest",
    "driftguard.cli.aws",
    "driftguard.cli.report",
)


class _Group(click.Group):
    """Turns DriftGuard's own errors into one clear line and a non-zero exit, never a traceback."""

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except ConfigError as e:
            click.echo(f"error: {e}", err=True)
            sys.exit(2)
        except DriftGuardError as e:
            click.echo(f"error ({e.kind.value}): {e}", err=True)
            sys.exit(1)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option(
    "--config",
    "-c",
    "config_path",
    envvar="DRIFTGUARD_CONFIG",
    default=DEFAULT_CONFIG,
    show_default=True,
    help="Config file (env DRIFTGUARD_CONFIG).",
)
@click.option(
    "--state",
    "state_url",
    envvar="DRIFTGUARD_STATE",
    default=None,
    help="State: a SQLite file path or dynamodb://TABLE?region=R (env DRIFTGUARD_STATE; "
    "default: the config's state.path).",
)
@click.version_option(__version__, prog_name="driftguard")
@click.pass_context
def main(ctx: click.Context, config_path: str, state_url: str | None) -> None:
    """DriftGuard watches SQL tables and tells you when their data goes wrong:
    freshness, volume, schema drift, distribution drift and your own SQL checks."""
    cli = CliContext(config_path=config_path, state_url=state_url)
    ctx.obj = cli
    ctx.call_on_close(cli.close)


for _module in _COMMAND_MODULES:
    for _command in importlib.import_module(_module).commands:
        main.add_command(_command)
