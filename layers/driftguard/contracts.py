"""The contract between the stack (infra/) and the Lambda runtime, in one place.

* Each function's environment is a model: infra builds it and sets `variables()` on the function,
  the runtime reads it back with `from_environ()`. A variable is a field, so a name set by infra
  and read by nothing, or read and never set, is caught by tests/infra/test_contracts.py (every
  field is read by driftguard code, or by the library named in its `reader`).
* Each event of the check function is a model with an `action` discriminator; the state machine's
  payloads and the schedules' input are validated against them in the same tests.
* The error names the state machine retries are derived from driftguard.errors (`retryable`).

Models build their validators on first use (`defer_build`): a cold start pays only for the ones
its invocation needs.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Annotated, Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from driftguard import errors

METRIC_NAMESPACE = "DriftGuard"
"""The custom metrics' namespace; the `service` dimension (POWERTOOLS_SERVICE_NAME) is the stack's
name, so two stacks in one account and region never count each other's checks."""

CRITICAL_TAG = "critical"
"""Sources with this tag get per-source failure metrics and their own alarm."""

_POWERTOOLS = "aws_lambda_powertools"


def _external(reader: str) -> dict[str, Any]:
    """Field metadata: the variable is read by this installed library, not by driftguard code."""
    return {"reader": reader}


class FunctionEnvironment(BaseModel):
    """What every DriftGuard function is given."""

    model_config = ConfigDict(frozen=True, populate_by_name=True, extra="ignore", defer_build=True)

    config_file: str = Field(default="driftguard.json", alias="DRIFTGUARD_CONFIG")
    state_table: str = Field(alias="DRIFTGUARD_STATE_TABLE")
    service: str = Field(alias="POWERTOOLS_SERVICE_NAME", json_schema_extra=_external(_POWERTOOLS))
    metrics_namespace: str = Field(
        default=METRIC_NAMESPACE,
        alias="POWERTOOLS_METRICS_NAMESPACE",
        json_schema_extra=_external(_POWERTOOLS),
    )
    log_level: str = Field(default="INFO", alias="LOG_LEVEL", json_schema_extra=_external(_POWERTOOLS))
    # DriftGuard uses no pydantic plugin: skip the entry-point scan at the first model build, which
    # every cold start pays (about 10 ms)
    pydantic_plugins: str = Field(
        default="__all__", alias="PYDANTIC_DISABLE_PLUGINS", json_schema_extra=_external("pydantic")
    )

    def variables(self) -> dict[str, str]:
        """The Lambda environment (unset optional variables are left out)."""
        return {k: str(v) for k, v in self.model_dump(by_alias=True, exclude_none=True).items()}

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None) -> Self:
        environ = os.environ if environ is None else environ
        try:
            return cls.model_validate(dict(environ))
        except ValidationError as e:
            missing = sorted(
                str(f.alias)
                for name, f in cls.model_fields.items()
                if f.alias not in environ and f.is_required()
            )
            raise errors.ConfigError(
                f"the {cls.__name__} is incomplete (missing: {', '.join(missing) or 'none'}; "
                f"{e.error_count()} problem(s)): deploy the function with the stack, which sets them"
            ) from None


class CheckEnvironment(FunctionEnvironment):
    idempotency_table: str = Field(alias="DRIFTGUARD_IDEMPOTENCY_TABLE")
    # The schedule plan shipped beside the config (driftguard-plan.json): the plan step reads its
    # shard from it instead of planning 10,000 sources at every firing; absent, it plans the config.
    plan_file: str | None = Field(default=None, alias="DRIFTGUARD_PLAN")
    # The per-source slices of the config (a folder of NAME.json beside it): the config file then has
    # no sources, and an invocation reads only its source's slice (lambda_runtime.ConfigSlices).
    config_slices: str | None = Field(default=None, alias="DRIFTGUARD_CONFIG_SLICES")

    @classmethod
    def slices_from_environ(cls, environ: Mapping[str, str] | None = None) -> str | None:
        """`config_slices` alone, for the runtime every function builds at init (only the check
        function ships slices; the others have none of the check function's variables)."""
        environ = os.environ if environ is None else environ
        return environ.get(str(cls.model_fields["config_slices"].alias)) or None


class NotifyEnvironment(FunctionEnvironment):
    """The notify function's, and the watchdog's: both deliver to the configured channels."""

    # the stack's alerts topic, for `sns` channels without their own topic_arn (the notify function
    # publishes every notification: the state machine passes ids only)
    alerts_topic_arn: str | None = Field(default=None, alias="DRIFTGUARD_ALERTS_TOPIC_ARN")
    # The stack's SES configuration set (bounce and complaint suppression, delivery metrics), for
    # `ses` channels that do not name their own; absent when no `ses` channel is configured.
    ses_configuration_set: str | None = Field(default=None, alias="DRIFTGUARD_SES_CONFIGURATION_SET")


# ------------------------------------------------------------------------------------ events


class _Event(BaseModel):
    # Unknown fields are tolerated at run time; tests/infra/test_contracts.py holds the state
    # machine's payloads to exactly these fields.
    model_config = ConfigDict(frozen=True, extra="allow", defer_build=True)


class PlanEvent(_Event):
    """A schedule's input (the state machine passes it on to the plan step)."""

    action: Literal["plan"]
    cadence: str
    shard: int = Field(ge=0)
    scheduled_time: str
    # the execution's start ($$.Execution.StartTime): the firing's deadline counts from it
    started: str | None = None
    # read by the Map (MaxConcurrencyPath) from the execution input, not by the function
    max_concurrency: int | None = Field(default=None, ge=1)


class CheckEvent(_Event):
    action: Literal["check"] = "check"
    source: str
    scheduled_time: str
    # when the firing's checks must have ended (the plan step sets it): a later attempt is recorded
    # as missed instead of started
    deadline: str | None = None


class CatchError(BaseModel):
    """What a Step Functions Catch puts at its ResultPath."""

    model_config = ConfigDict(frozen=True, extra="allow", defer_build=True)

    Error: str
    Cause: str | None = None


class RecordFailureEvent(_Event):
    action: Literal["record_failure"]
    source: str
    scheduled_time: str
    error: CatchError


class DeliveryResult(BaseModel):
    model_config = ConfigDict(frozen=True, extra="allow", defer_build=True)

    id: str
    channel: str
    status: Literal["delivered", "failed"]


class RecordDeliveriesEvent(_Event):
    action: Literal["record_deliveries"]
    results: list[DeliveryResult]


CheckFunctionEvent = Annotated[
    PlanEvent | CheckEvent | RecordFailureEvent | RecordDeliveriesEvent, Field(discriminator="action")
]
_check_events: TypeAdapter[CheckFunctionEvent] | None = None

ACTIONS = ("plan", "check", "record_failure", "record_deliveries")


def check_event(event: Any) -> PlanEvent | CheckEvent | RecordFailureEvent | RecordDeliveriesEvent:
    """The check function's event, validated (an event without `action` is a check)."""
    global _check_events
    if _check_events is None:
        _check_events = TypeAdapter(CheckFunctionEvent)
    if isinstance(event, dict) and "action" not in event:
        event = {**event, "action": "check"}
    try:
        return _check_events.validate_python(event)
    except ValidationError as e:
        first = e.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "event"
        raise errors.ConfigError(
            f"the check function got an event it does not understand ({where}: {first['msg']}); "
            f"actions: {', '.join(ACTIONS)}"
        ) from None


class WatchdogEvent(_Event):
    """The watchdog schedule's input."""

    action: Literal["watchdog"]
    time: str


class NotifyEvent(_Event):
    """One notification by reference: the notify function reads its body from the store."""

    id: str
    channel: str


# ------------------------------------------------------------------------------------ errors


def retryable_error_names() -> list[str]:
    """The driftguard.errors classes whose failures may succeed when tried again: the state machine
    retries these names (Step Functions matches the raised class name)."""
    return sorted(
        name
        for name, cls in vars(errors).items()
        if isinstance(cls, type) and issubclass(cls, errors.DriftGuardError) and cls.retryable is True
    )
