"""The stack and the runtime agree through driftguard.contracts: environment, events, error names."""

from __future__ import annotations

import importlib.util
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel
from stack_helpers import REPO, Synthesized, flat

from driftguard import contracts, errors
from driftguard.contracts import CheckEnvironment, FunctionEnvironment, NotifyEnvironment

ENVIRONMENTS: dict[str, type[FunctionEnvironment]] = {
    "ChecksCheckFunction": CheckEnvironment,
    "NotificationsNotifyFunction": NotifyEnvironment,
    "WatchdogWatchdogFunction": NotifyEnvironment,  # it delivers the missed runs it records
}
RUNTIME_CODE = [
    *(REPO / "functions").glob("*/handler.py"),
    *(
        p
        for p in (REPO / "layers" / "driftguard").rglob("*.py")
        if p.name != "contracts.py" and "cli" not in p.parts
    ),
]


def function_environment(synth: Synthesized, prefix: str) -> dict[str, Any]:
    (fn,) = [r for k, r in synth.resources("AWS::Lambda::Function").items() if k.startswith(prefix)]
    return dict(fn["Properties"]["Environment"]["Variables"])


def aliases(model: type[BaseModel]) -> dict[str, str]:
    return {str(field.alias): name for name, field in model.model_fields.items()}


@pytest.mark.slow
@pytest.mark.parametrize("prefix", list(ENVIRONMENTS))
def test_infra_sets_exactly_the_variables_of_the_functions_contract(
    basic_synth: Synthesized, prefix: str
) -> None:
    model = ENVIRONMENTS[prefix]
    set_by_infra = set(function_environment(basic_synth, prefix))
    assert set_by_infra <= set(aliases(model)), "set by infra, absent from the contract"
    required = {str(f.alias) for f in model.model_fields.values() if f.is_required()}
    assert required <= set_by_infra, "required by the contract, never set"
    # and the optional ones too: the example has an ses channel, and the check function an alerts topic
    assert set_by_infra == set(aliases(model))


@pytest.mark.parametrize("model", [CheckEnvironment, NotifyEnvironment])
def test_every_variable_of_a_contract_is_read(model: type[FunctionEnvironment]) -> None:
    """Read by driftguard code (an attribute of the model), or by the library the field names."""
    code = "\n".join(p.read_text() for p in RUNTIME_CODE)
    for alias, name in aliases(model).items():
        extra = model.model_fields[name].json_schema_extra
        reader = extra.get("reader") if isinstance(extra, dict) else None
        if reader is None:
            assert re.search(rf"\.{name}\b", code), f"{alias} ({name}) is read by nothing"
        else:
            spec = importlib.util.find_spec(str(reader))
            assert spec is not None and spec.submodule_search_locations is not None
            library = "\n".join(
                p.read_text(errors="ignore")
                for location in spec.submodule_search_locations
                for p in Path(location).rglob("*.py")
            )
            assert alias in library, f"{alias}: {reader} does not read it"


def test_the_runtime_reads_its_environment_only_through_the_contracts() -> None:
    for path in RUNTIME_CODE:
        for name in re.findall(
            r"environ(?:\.get)?\(\s*\"((?:DRIFTGUARD|POWERTOOLS)_[A-Z_]+)", path.read_text()
        ):
            assert name == "POWERTOOLS_METRICS_NAMESPACE", (
                f"{path}: reads {name} outside driftguard.contracts"
            )


def test_a_missing_variable_is_one_clear_line() -> None:
    with pytest.raises(errors.ConfigError, match=r"missing: DRIFTGUARD_STATE_TABLE, POWERTOOLS_SERVICE_NAME"):
        FunctionEnvironment.from_environ({})


def states(definition: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for name, state in definition["States"].items():
        yield name, state
        if "ItemProcessor" in state:
            yield from states(state["ItemProcessor"])


def machine_states(synth: Synthesized) -> dict[str, dict[str, Any]]:
    (machine,) = synth.resources("AWS::StepFunctions::StateMachine").values()
    return dict(states(json.loads(flat(machine["Properties"]["DefinitionString"]))))


SAMPLES: dict[str, Any] = {
    "cadence": "rate-15-minutes-abc123",
    "shard": 0,
    "scheduled_time": "2026-01-01T00:00:00+00:00",
    "started": "2026-01-01T00:00:01.234Z",
    "source": "shop-pg",
    "deadline": "2026-01-01T00:04:10+00:00",
    "error": {"Error": "SourceUnavailable", "Cause": "refused"},
    "results": [{"id": "n1", "channel": "slack-data", "status": "delivered"}],
}
"""What the state machine's JSONPath fields carry at run time (a field not here is new: add it)."""


def check_function_payloads(synth: Synthesized) -> list[dict[str, Any]]:
    """The Parameters of every task invoking the check function (its ARN is the task's resource)."""
    return [
        {
            key.removesuffix(".$"): SAMPLES[key[:-2]] if key.endswith(".$") else value
            for key, value in st["Parameters"].items()
        }
        for st in machine_states(synth).values()
        if st.get("Type") == "Task" and "<ChecksCheckFunction" in st["Resource"]
    ]


@pytest.mark.slow
def test_every_payload_the_state_machine_sends_is_an_event_of_the_contract(basic_synth: Synthesized) -> None:
    payloads = check_function_payloads(basic_synth)
    assert {p.get("action", "check") for p in payloads} == set(contracts.ACTIONS)
    for payload in payloads:
        event = contracts.check_event(payload)
        assert set(payload) <= set(type(event).model_fields), f"not in the contract: {payload}"
    watchdog = 0
    for schedule in basic_synth.resources("AWS::Scheduler::Schedule").values():
        target = json.loads(schedule["Properties"]["Target"]["Input"])
        if "<WatchdogWatchdogFunction" in flat(schedule["Properties"]["Target"]["Arn"]):
            contracts.WatchdogEvent.model_validate(target)
            watchdog += 1
            continue
        event = contracts.check_event(target)
        assert isinstance(event, contracts.PlanEvent) and event.max_concurrency
    assert watchdog == 1


def test_an_unknown_action_is_refused_with_the_known_ones() -> None:
    with pytest.raises(errors.ConfigError, match=r"actions: plan, check, record_failure, record_deliveries"):
        contracts.check_event({"action": "explode"})


@pytest.mark.slow
def test_the_retried_error_names_are_the_retryable_classes_of_errors_py(basic_synth: Synthesized) -> None:
    assert contracts.retryable_error_names() == [
        "CheckInProgress",
        "QueryTimeout",
        "SourceUnavailable",
        "StateConflict",
    ]
    check = machine_states(basic_synth)["Check source"]
    retried = {e for r in check["Retry"] for e in r["ErrorEquals"]}
    assert set(contracts.retryable_error_names()) <= retried
    for name in retried - set(contracts.retryable_error_names()):
        assert name.startswith("Lambda."), f"{name} is retried but not retryable in driftguard.errors"


@pytest.mark.slow
def test_the_notify_functions_payload_is_its_event(basic_synth: Synthesized) -> None:
    (notify,) = [
        st["Parameters"]
        for st in machine_states(basic_synth).values()
        if st.get("Type") == "Task" and "<NotificationsNotifyFunction" in st["Resource"]
    ]
    fields = {key.removesuffix(".$") for key in notify}
    assert fields == set(contracts.NotifyEvent.model_fields)
