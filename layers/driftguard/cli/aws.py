"""AWS commands: run a Lambda handler in-process (`invoke`), list the schedules a config deploys."""

from __future__ import annotations

import importlib.util
import json
import os
import sys
import uuid
from contextlib import ExitStack, redirect_stdout
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click

from driftguard.cli.common import CliContext, Exit, UserError, json_option, pass_cli, print_json
from driftguard.config import SnsChannel, format_duration
from driftguard.moto_stack import create_stack_resources

FUNCTIONS_DIR = Path(__file__).resolve().parents[3] / "functions"
MOCK_REGION = "us-east-1"


@dataclass
class LocalLambdaContext:
    """What Powertools reads from a Lambda context."""

    function_name: str
    memory_limit_in_mb: int = 512
    aws_request_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    invoked_function_arn: str = ""

    def get_remaining_time_in_millis(self) -> int:
        return 90_000


def _load_handler(function: str) -> Any:
    path = FUNCTIONS_DIR / function / "handler.py"
    if not path.is_file():
        raise UserError(f"no handler at {path}: `invoke` runs the functions/ folder of a DriftGuard checkout")
    spec = importlib.util.spec_from_file_location(f"driftguard_function_{function}", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.handler


@click.command()
@click.argument("function", type=click.Choice(["check", "notify"]))
@click.argument("event_file", type=click.Path(exists=True, dir_okay=False))
@click.option(
    "--mock-aws", is_flag=True, help="Run against moto (creates the tables, topic and queue it needs)."
)
@click.option(
    "--secret",
    "secrets",
    multiple=True,
    metavar="NAME=VALUE",
    help="With --mock-aws: a Secrets Manager secret to create (repeatable).",
)
@click.option("--state-table", default="driftguard-state", show_default=True)
@click.option("--idempotency-table", default="driftguard-idempotency", show_default=True)
@json_option
@pass_cli
def invoke(
    cli: CliContext,
    function: str,
    event_file: str,
    mock_aws: bool,
    secrets: tuple[str, ...],
    state_table: str,
    idempotency_table: str,
    as_json: bool,
) -> None:
    """Run a Lambda handler in-process with EVENT_FILE and print its output as JSON.

    Without --mock-aws it uses the account your AWS credentials point to. A function error
    (printed as Lambda reports it) exits 3."""
    del as_json  # accepted like on every command: the output is always one JSON document
    config = cli.config  # validates the config before anything runs
    try:
        event = json.loads(Path(event_file).read_text(encoding="utf-8"))
    except ValueError as e:
        raise UserError(f"{event_file}: not JSON: {e}") from None
    parsed_secrets = {}
    for item in secrets:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise click.BadParameter(f"{item!r}: write NAME=VALUE", param_hint="--secret")
        parsed_secrets[name] = value
    if parsed_secrets and not mock_aws:
        raise click.UsageError("--secret only applies with --mock-aws")
    env = {
        "DRIFTGUARD_CONFIG": str(Path(cli.config_path).resolve()),
        "DRIFTGUARD_STATE_TABLE": state_table,
        "DRIFTGUARD_IDEMPOTENCY_TABLE": idempotency_table,
        "POWERTOOLS_SERVICE_NAME": "driftguard",
        "POWERTOOLS_METRICS_NAMESPACE": "DriftGuard",
    }
    if mock_aws:
        env |= {
            "POWERTOOLS_TRACE_DISABLED": "1",
            "AWS_DEFAULT_REGION": MOCK_REGION,
            "AWS_REGION": MOCK_REGION,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
        }
    os.environ.update(env)
    with ExitStack() as stack:
        if mock_aws:
            from moto import mock_aws as moto_mock

            stack.enter_context(moto_mock())
            resources = create_stack_resources(
                region=MOCK_REGION,
                state_table=state_table,
                idempotency_table=idempotency_table,
                secrets=parsed_secrets,
                topic_names=[
                    c.topic_arn.split(":")[-1]
                    for c in config.channels
                    if isinstance(c, SnsChannel) and c.topic_arn
                ],
            )
            os.environ["DRIFTGUARD_ALERTS_TOPIC_ARN"] = resources.topic_arn
            os.environ["DRIFTGUARD_DLQ_URL"] = resources.dlq_url
        handler = _load_handler(function)
        context = LocalLambdaContext(function_name=f"driftguard-{function}")
        try:
            # Logs and EMF metrics go to stdout in Lambda; here stdout is the handler's output only.
            with redirect_stdout(sys.stderr):
                result = handler(event, context)
        except Exception as e:  # reported the way Lambda reports a function error
            print_json({"errorType": type(e).__name__, "errorMessage": str(e)})
            sys.exit(Exit.FAILURE)
    print_json(result)


@click.command()
@json_option
@pass_cli
def schedules(cli: CliContext, as_json: bool) -> None:
    """The EventBridge Scheduler schedules the stack creates for this config (cadence, shard, sources)."""
    from driftguard.schedules import plan_schedules

    groups = plan_schedules(cli.config)
    if as_json:
        print_json(
            [
                {
                    "name": g.name,
                    "cadence": g.cadence_id,
                    "shard": g.shard,
                    "expression": g.expression,
                    "timezone": g.timezone,
                    "sources": list(g.sources),
                    "max_concurrency": g.max_concurrency,
                }
                for g in groups
            ]
        )
        return
    for g in groups:
        window = f", flexible window {format_duration(g.flexible_window)}" if g.flexible_window else ""
        click.echo(
            f"{g.name}: {g.expression} {g.timezone}{window}; {len(g.sources)} source(s), "
            f"{g.max_concurrency} at once: {', '.join(g.sources)}"
        )


commands = [invoke, schedules]
