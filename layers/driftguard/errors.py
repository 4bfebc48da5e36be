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
    STATE = "state"  # the local state file cannot be used (unwritable, corrupt, full disk, gone)
    INTERNAL = "internal"


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


class StateError(DriftGuardError):
    """The state store cannot be used: its message names the file, what is wrong and what to do.
    Nothing of the failed write was kept (each write is one transaction)."""

    kind = ErrorKind.STATE


class StateMissing(StateError):
    """A command that only reads state found none (it never creates one)."""


class UnexpectedSourceError(DriftGuardError):
    """Collecting a source failed in a way no rule classifies (a driver or library error). It is
    recorded as that source's failed run, like any other failure of the source."""

    kind = ErrorKind.INTERNAL

    @classmethod
    def of(cls, source: object, error: BaseException) -> UnexpectedSourceError:
        name = getattr(source, "name", source)
        return cls(f"source {name}: unexpected {type(error).__name__}: {error}")


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


class CheckInProgress(DriftGuardError):
    """Another execution is checking the same source and scheduled time and did not finish while
    this one waited: the state machine retries (and then reuses its result); never a failure."""

    kind = ErrorKind.INTERNAL
    retryable = True
