"""Typed errors. Their class names are part of the contract with the Step Functions flow:
the state machine retries `SourceUnavailable`, `QueryTimeout` and `StateConflict` and never
retries `ConfigError`, `PermissionDenied` or `CheckDefinitionError`.
"""

from __future__ import annotations

from enum import StrEnum


class ErrorKind(StrEnum):
    CONFIG = "config"
    UNAVAILABLE = "unavailable"
    TIMEOUT = "timeout"
    PERMISSION = "permission"
    DEFINITION = "definition"  # the check is wrong: missing table/column, bad SQL, wrong type
    SECRET = "secret"
    INTERNAL = "internal"
    MISSED = "missed"  # no check ran at all for a scheduled time (see driftguard.watchdog)


class DriftGuardError(Exception):
    """Base class. `retryable` tells orchestration whether trying again can help."""

    kind: ErrorKind = ErrorKind.INTERNAL
    retryable: bool = False


class ConfigError(DriftGuardError):
    """The configuration is wrong. The message names the file, line, key and the fix."""

    kind = ErrorKind.CONFIG

    def __init__(self, message: str, *, problems: list[str] | None = None) -> None:
        super().__init__(message)
        self.problems = problems or [message]


class SecretError(DriftGuardError):
    """A referenced credential is missing (unset environment variable, unknown secret)."""

    kind = ErrorKind.SECRET


class SourceUnavailable(DriftGuardError):
    """The database cannot be reached right now (network, DNS, server down, too many connections)."""

    kind = ErrorKind.UNAVAILABLE
    retryable = True


class QueryTimeout(DriftGuardError):
    """A statement ran past its timeout and was cancelled."""

    kind = ErrorKind.TIMEOUT
    retryable = True


class PermissionDenied(DriftGuardError):
    """Authentication failed or the user may not read what the check needs."""

    kind = ErrorKind.PERMISSION


class CheckDefinitionError(DriftGuardError):
    """The check cannot work as written: unknown table or column, a timestamp column that is not a
    time type, custom SQL that is not one read-only statement, or a result without `status`."""

    kind = ErrorKind.DEFINITION


class RunMissed(DriftGuardError):
    """No check of the source was recorded for a scheduled time: the watchdog records it instead."""

    kind = ErrorKind.MISSED


class StateConflict(DriftGuardError):
    """Another writer changed alert state between read and commit (optimistic locking)."""

    kind = ErrorKind.INTERNAL
    retryable = True


class DeliveryError(DriftGuardError):
    """A notification could not be delivered. `retryable` False means permanent (e.g. 4xx)."""

    def __init__(self, message: str, *, retryable: bool, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.retry_after = retry_after
