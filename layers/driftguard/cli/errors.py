"""One line for every failure a command can meet, and the exit code it maps to."""

from __future__ import annotations

import sqlite3

from driftguard.cli.common import Exit
from driftguard.cli.text import clean
from driftguard.errors import ConfigError, DriftGuardError

# AWS SDK failures, recognised by name so the CLI needs no boto3 when the state is local.
_AWS_HINTS = {
    "NoCredentialsError": "no AWS credentials: set AWS_PROFILE or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY",
    "NoRegionError": "no AWS region: add ?region=REGION to the dynamodb:// state URL or set AWS_REGION",
    "PartialCredentialsError": "incomplete AWS credentials: check AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY",
    "EndpointConnectionError": "AWS is not reachable from here: check the network and the region",
    "ClientError": "AWS refused the request: check the IAM permissions and that the table exists",
    "TableDoesNotExist": "the DynamoDB state table does not exist: deploy the stack or fix --state",
}


def _aws_hint(error: BaseException) -> str | None:
    """The hint for the first AWS SDK error in the chain (PynamoDB wraps botocore's)."""
    seen: BaseException | None = error
    while seen is not None:
        for cls in type(seen).__mro__:
            if cls.__name__ in _AWS_HINTS and cls.__module__.split(".")[0] in (
                "botocore",
                "boto3",
                "pynamodb",
            ):
                return _AWS_HINTS[cls.__name__]
        seen = seen.__cause__ or seen.__context__
    return None


def describe_failure(error: Exception) -> tuple[Exit, str]:
    """The exit code and the one line for an error that reached the top of a command."""
    message = clean(str(error)).strip() or type(error).__name__
    if isinstance(error, ConfigError):
        return Exit.USAGE, f"error: {message}"
    if isinstance(error, DriftGuardError):
        return Exit.FAILURE, f"error ({error.kind.value}): {message}"
    if hint := _aws_hint(error):
        return Exit.FAILURE, f"error (state): {hint} ({message})"
    if isinstance(error, sqlite3.Error):
        return Exit.FAILURE, f"error (state): the SQLite state failed: {message}"
    if isinstance(error, OSError):
        where = f" {error.filename}" if error.filename else ""
        return Exit.FAILURE, f"error (io):{where} {clean(error.strerror or message)}"
    return Exit.FAILURE, f"internal error: {type(error).__name__}: {message}"
