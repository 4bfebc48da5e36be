"""Helpers of the infrastructure tests: one in-process synth, and reading the template."""

from __future__ import annotations

import json
import os
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from aws_cdk import App  # noqa: E402
from aws_cdk.assertions import Template  # noqa: E402
from infra.stack import DriftGuardStack, add_stack  # noqa: E402


@dataclass
class Synthesized:
    stack: DriftGuardStack
    template: Template
    outdir: Path
    seconds: float

    @property
    def json(self) -> dict[str, Any]:
        return dict(self.template.to_json())

    @property
    def template_file(self) -> Path:
        return self.outdir / f"{self.stack.stack_name}.template.json"

    def resources(self, cfn_type: str) -> dict[str, dict[str, Any]]:
        return {k: r for k, r in self.json["Resources"].items() if r["Type"] == cfn_type}

    def asset_dir(self, logical_id: str) -> Path:
        """The staged asset of a function or layer (the cloud assembly names it by its hash)."""
        props = self.json["Resources"][logical_id]["Properties"]
        key = (props.get("Code") or props["Content"])["S3Key"]
        return self.outdir / f"asset.{key.removesuffix('.zip')}"


def synthesize(config_path: Path, outdir: Path) -> Synthesized:
    """One in-process synth with the cdk.json context, the cdk-nag plugin included."""
    context = json.loads((REPO / "cdk.json").read_text())["context"]
    started = time.perf_counter()
    app = App(context=context, outdir=str(outdir))
    stack = add_stack(app, config_path)
    app.synth()
    template = Template.from_stack(stack)
    return Synthesized(stack=stack, template=template, outdir=outdir, seconds=time.perf_counter() - started)


def flat(value: Any) -> Any:
    """A CloudFormation value with Fn::Join / Ref / Fn::GetAtt rendered as text: '<Ref>' placeholders."""
    if isinstance(value, dict) and len(value) == 1:
        ((key, arg),) = value.items()
        if key == "Fn::Join":
            return str(arg[0]).join(str(flat(part)) for part in arg[1])
        if key == "Ref":
            return f"<{arg}>"
        if key == "Fn::GetAtt":
            return f"<{'.'.join(arg)}>"
    if isinstance(value, dict):
        return {k: flat(v) for k, v in value.items()}
    if isinstance(value, list):
        return [flat(v) for v in value]
    return value


def role_statements(synth: Synthesized, role_prefix: str) -> list[dict[str, Any]]:
    """The statements of the inline policies of the role whose logical id starts with role_prefix."""
    out: list[dict[str, Any]] = []
    for policy in synth.resources("AWS::IAM::Policy").values():
        roles = [r["Ref"] for r in policy["Properties"].get("Roles", [])]
        if any(r.startswith(role_prefix) for r in roles):
            out += flat(policy["Properties"]["PolicyDocument"]["Statement"])
    return out


def actions_on(statements: list[dict[str, Any]], action: str) -> list[str]:
    """The resources `action` is allowed on (as flattened text)."""
    resources: list[str] = []
    for st in statements:
        actions = st["Action"] if isinstance(st["Action"], list) else [st["Action"]]
        if st["Effect"] == "Allow" and action in actions:
            resources += st["Resource"] if isinstance(st["Resource"], list) else [st["Resource"]]
    return resources


SECRET_ARN = "arn:<AWS::Partition>:secretsmanager:<AWS::Region>:<AWS::AccountId>:secret:"
"""How a secret ARN the stack builds from a name reads once flattened."""


def only(synth: Synthesized, cfn_type: str, prefix: str) -> dict[str, Any]:
    """The properties of the one resource of `cfn_type` whose logical id starts with `prefix`."""
    (resource,) = [r for k, r in synth.resources(cfn_type).items() if k.startswith(prefix)]
    return resource["Properties"]


def acknowledgements(synth: Synthesized) -> dict[str, str]:
    """The cdk-nag findings the stack acknowledged (`AwsSolutions-IAM5[Resource::*]`), with their reasons."""
    metadata = json.loads((synth.outdir / f"{synth.stack.stack_name}.metadata.json").read_text())
    return {
        re.sub(r"^[Aa]nnotation::", "", rule): reason  # the prefix's case depends on aws-cdk-lib's version
        for entries in metadata.values()
        for entry in entries
        if entry["type"] == "aws:cdk:acknowledged-rules"
        for rule, reason in entry["data"].items()
    }
