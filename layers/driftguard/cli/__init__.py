"""The operator's CLI: `driftguard --help`.

Commands live in small modules by topic (monitor, silences, backtest, demo, aws, ...); each exposes
`commands`, and one line in `_COMMAND_MODULES` registers a module.

Every failure ends as one line on stderr and a documented exit code (`common.Exit`); `--debug`
adds the traceback. Ctrl-C and SIGTERM stop the command: a check is committed whole or not at all,
so an interrupted run is never recorded as checked.
"""

from __future__ import annotations

import importlib
import signal
import sys
import threading
import traceback
from collections.abc import Sequence
from types import FrameType
from typing import Any, NoReturn

import click

from driftguard import __version__
from driftguard.cli.common import DEFAULT_CONFIG, CliContext, Exit
from driftguard.cli.errors import describe_failure

_COMMAND_MODULES = (
    "driftguard.cli.monitor",
    "driftguard.cli.demo",
    "driftguard.cli.silences",
    "driftguard.cli.backtest",
    "driftguard.cli.aws",
    "driftguard.cli.connection",
    "driftguard.cli.report",
)

# The options every command accepts before or after its name: `driftguard validate -c x.yaml`.
_GLOBAL_WITH_VALUE = ("--config", "-c", "--state")
_GLOBAL_FLAGS = ("--debug", "--verbose", "-v")
INTERRUPTED = 130  # 128 + SIGINT, as shells report it
TERMINATED = 143  # 128 + SIGTERM


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where Ctrl-C would be so both stop the same way."""


def _on_sigterm(_signum: int, _frame: FrameType | None) -> NoReturn:
    raise Terminated


def hoist_global_options(args: Sequence[str]) -> list[str]:
    """Move the global options found after the command name in front of it, so click sees them
    as the group's; arguments after `--` are left alone."""
    front: list[str] = []
    rest: list[str] = []
    i = 0
    while i < len(args):
        arg = args[i]
        if arg == "--":
            rest.extend(args[i:])
            break
        if arg in _GLOBAL_WITH_VALUE and i + 1 < len(args):
            front += [arg, args[i + 1]]
            i += 2
            continue
        if arg in _GLOBAL_FLAGS or arg.split("=", 1)[0] in ("--config", "--state"):
            front.append(arg)
        else:
            rest.append(arg)
        i += 1
    return front + rest


class _Group(click.Group):
    """Hoists global options, and turns every failure into one clear line and its exit code."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        return super().parse_args(ctx, hoist_global_options(args))

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.exceptions.Exit, click.ClickException, click.Abort):
            raise
        except KeyboardInterrupt as e:
            code = TERMINATED if isinstance(e, Terminated) else INTERRUPTED
            click.echo(
                "interrupted: stopped; checks not finished were not recorded (run again to check them)",
                err=True,
            )
            self._maybe_traceback(ctx)
            sys.exit(code)
        except Exception as e:
            code, line = describe_failure(e)
            click.echo(line, err=True)
            if not self._maybe_traceback(ctx) and code == Exit.FAILURE and line.startswith("internal"):
                click.echo("  (run again with --debug for the traceback)", err=True)
            sys.exit(int(code))

    @staticmethod
    def _maybe_traceback(ctx: click.Context) -> bool:
        if isinstance(ctx.obj, CliContext) and ctx.obj.debug:
            traceback.print_exc()
            return True
        return False


@click.group(
    cls=_Group,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
    epilog="--config/-c, --state, --verbose/-v and --debug may also follow the command's name. "
    "Exit codes: 0 ok, 1 needs attention (see --fail-on), 2 usage or config error, "
    "3 a source, the state or a delivery failed.",
)
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
@click.option("--verbose", "-v", is_flag=True, help="Log each SQL statement and its time on stderr.")
@click.option(
    "--debug",
    is_flag=True,
    envvar="DRIFTGUARD_DEBUG",
    help="Show the traceback of a failure (env DRIFTGUARD_DEBUG).",
)
@click.version_option(__version__, prog_name="driftguard")
@click.pass_context
def main(ctx: click.Context, config_path: str, state_url: str | None, verbose: bool, debug: bool) -> None:
    """DriftGuard watches SQL tables and tells you when their data goes wrong:
    freshness, volume, schema drift, distribution drift and your own SQL checks."""
    cli = CliContext(config_path=config_path, state_url=state_url, debug=debug)
    ctx.obj = cli
    ctx.call_on_close(cli.close)
    if verbose:
        from driftguard.cli.verbose import log_sql_statements

        log_sql_statements()
    # Signal handlers belong to the main thread (a CLI embedded in a worker thread keeps its own).
    main_thread = threading.current_thread() is threading.main_thread()
    if main_thread and signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        signal.signal(signal.SIGTERM, _on_sigterm)
        ctx.call_on_close(lambda: signal.signal(signal.SIGTERM, signal.SIG_DFL))


for _module in _COMMAND_MODULES:
    for _command in importlib.import_module(_module).commands:
        main.add_command(_command)
