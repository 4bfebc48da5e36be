"""Any number of DriftGuard stacks in one account and region: two configs, synthesized side by side,
share no physical name, no metric identity and no export."""

from __future__ import annotations

import pytest
import yaml
from stack_helpers import REPO, Synthesized, actions_on, flat, role_statements, synthesize

PHYSICAL_NAMES = {
    "Name",  # schedules (within their group), schedule groups, SES configuration sets
    "AlarmName",
    "AliasName",
    "DashboardName",
    "FunctionName",
    "LayerName",
    "LogGroupName",
    "QueueName",
    "RoleName",
    "SecretName",
    "StateMachineName",
    "TableName",
    "TopicName",
}
"""Properties that name a resource in the account and region (an inline PolicyName is the role's)."""


@pytest.fixture(scope="module")
def second(pinned_layer: None, tmp_path_factory: pytest.TempPathFactory) -> Synthesized:
    """A second team's deployment: its own stack name, and the SES identity the first stack verified."""
    config = yaml.safe_load((REPO / "examples" / "aws-basic.yaml").read_text())
    config["aws"] |= {"stack_name": "DriftGuard-Payments", "ses_create_identity": False}
    path = tmp_path_factory.mktemp("second-config") / "driftguard.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return synthesize(path, tmp_path_factory.mktemp("second"))


def physical_names(synth: Synthesized) -> set[tuple[str, str]]:
    """(type, name) of every resource with a literal physical name; a schedule is named in its group."""
    resources = synth.json["Resources"]
    names: set[tuple[str, str]] = set()
    for resource in resources.values():
        props = flat(resource.get("Properties", {}))
        for key, value in props.items():
            if key not in PHYSICAL_NAMES or not isinstance(value, str) or value.startswith("<"):
                continue
            if resource["Type"] == "AWS::Scheduler::Schedule":
                group = resource["Properties"]["GroupName"]
                if isinstance(group, dict):  # a Ref to the stack's group: its name
                    group = resources[group["Ref"]]["Properties"]["Name"]
                value = f"{group}/{value}"
            names.add((resource["Type"], value))
        if resource["Type"] == "AWS::SES::EmailIdentity":
            names.add((resource["Type"], props["EmailIdentity"]))
    return names


def metric_identities(synth: Synthesized) -> set[tuple[str, str, tuple[tuple[str, str], ...]]]:
    """(namespace, metric, dimensions) of every custom metric an alarm or the dashboard reads."""
    found: set[tuple[str, str, tuple[tuple[str, str], ...]]] = set()
    for alarm in synth.resources("AWS::CloudWatch::Alarm").values():
        props = alarm["Properties"]
        metrics = [m["MetricStat"]["Metric"] for m in props.get("Metrics", []) if "MetricStat" in m]
        if "MetricName" in props:
            metrics.append(props)
        for m in metrics:
            if m["Namespace"] == "DriftGuard":
                dims = tuple(sorted((d["Name"], str(flat(d["Value"]))) for d in m.get("Dimensions", [])))
                found.add((m["Namespace"], m["MetricName"], dims))
    return found


def exports(synth: Synthesized) -> set[str]:
    return {str(flat(o["Export"]["Name"])) for o in synth.json.get("Outputs", {}).values() if "Export" in o}


@pytest.mark.slow
def test_two_stacks_share_no_physical_name_metric_or_export(
    basic_synth: Synthesized, second: Synthesized
) -> None:
    assert basic_synth.stack.stack_name != second.stack.stack_name
    first_names, second_names = physical_names(basic_synth), physical_names(second)
    assert ("AWS::SES::EmailIdentity", "example.com") in first_names
    assert any(t == "AWS::Scheduler::ScheduleGroup" for t, _ in second_names)
    assert not first_names & second_names
    first_metrics, second_metrics = metric_identities(basic_synth), metric_identities(second)
    assert len(first_metrics) >= 4 and len(second_metrics) == len(first_metrics)
    assert not first_metrics & second_metrics
    assert not exports(basic_synth) & exports(second)


@pytest.mark.slow
def test_an_already_verified_ses_identity_is_used_not_created(second: Synthesized) -> None:
    """An identity is account-wide: creating it again (a second stack, or a redeploy after it was
    verified by hand) fails the deploy, so the second stack only sends from it."""
    assert second.resources("AWS::SES::EmailIdentity") == {}
    sends = actions_on(role_statements(second, "NotificationsNotifyFunctionServiceRole"), "ses:SendEmail")
    assert "arn:<AWS::Partition>:ses:<AWS::Region>:<AWS::AccountId>:identity/example.com" in sends
    assert len(second.resources("AWS::SES::ConfigurationSet")) == 1
