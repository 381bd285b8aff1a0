"""Reads template.yaml, the single source of truth for every resource and name.

The local runner and the tests use this module to create the same resources the SAM
deployment creates, and to compute the environment each function gets. Only the
intrinsic functions the template uses are evaluated: Ref, Fn::Sub, Fn::GetAtt, Fn::FindInMap.
"""

from __future__ import annotations

import copy
import functools
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
#: The user's destinations (deployed) and the demo's (loaded by the local stack only).
DESTINATIONS_DIR = REPO_ROOT / "config" / "destinations"
EXAMPLE_DESTINATIONS = REPO_ROOT / "examples" / "destinations"


def destination_dirs() -> list[Path]:
    """Where the stack in use reads destinations: ``config/destinations`` and, for the local stack
    (``cdp dev`` writes its environment), the folder it names in ``EXTRA_DESTINATIONS_DIR``."""
    extra = os.environ.get("EXTRA_DESTINATIONS_DIR")
    return [DESTINATIONS_DIR, *([Path(extra)] if extra else [])]
TEMPLATE_PATH = REPO_ROOT / "template.yaml"


class TemplateError(Exception):
    """The template uses something the local runner cannot evaluate."""


class _CfnLoader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # type: ignore[misc]
    """YAML loader that turns CloudFormation short-form tags into their long form (libyaml when present)."""


def _construct_tag(loader: yaml.SafeLoader, tag_suffix: str, node: yaml.Node) -> dict[str, Any]:
    name = "Ref" if tag_suffix == "Ref" else f"Fn::{tag_suffix}"
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
        if name == "Fn::GetAtt":
            value = value.split(".", 1)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)  # type: ignore[arg-type]
    return {name: value}


_CfnLoader.add_multi_constructor("!", _construct_tag)


def load_template(path: Path | str = TEMPLATE_PATH) -> dict[str, Any]:
    """The parsed template (a fresh copy: callers may change it)."""
    resolved = Path(path).resolve()
    return copy.deepcopy(_parse(resolved, resolved.stat().st_mtime_ns))


@functools.lru_cache(maxsize=8)
def _parse(path: Path, _mtime_ns: int) -> dict[str, Any]:
    with open(path, encoding="utf-8") as fh:
        return yaml.load(fh, Loader=_CfnLoader)  # noqa: S506 - our own loader, SafeLoader based


@dataclass
class FunctionSpec:
    logical_id: str
    code_uri: Path
    handler: str
    environment: dict[str, str]
    events: dict[str, dict[str, Any]]
    timeout: int

    @property
    def module_file(self) -> Path:
        module, _, _attr = self.handler.rpartition(".")
        return self.code_uri / f"{module.replace('.', '/')}.py"

    @property
    def handler_attr(self) -> str:
        return self.handler.rpartition(".")[2]


@dataclass
class Stack:
    """What a template looks like once its names are known."""

    template: dict[str, Any]
    stack_name: str
    region: str
    account_id: str
    parameters: dict[str, str]
    # Ref value and attributes of every resource, filled as resources are created.
    refs: dict[str, str] = field(default_factory=dict)
    attrs: dict[str, dict[str, str]] = field(default_factory=dict)

    @property
    def resources(self) -> dict[str, dict[str, Any]]:
        return self.template["Resources"]

    def of_type(self, resource_type: str) -> dict[str, dict[str, Any]]:
        return {k: v for k, v in self.resources.items() if v["Type"] == resource_type}

    # ------------------------------------------------------------ intrinsic functions
    def _pseudo(self, name: str) -> str | None:
        return {
            "AWS::StackName": self.stack_name,
            "AWS::Region": self.region,
            "AWS::AccountId": self.account_id,
            "AWS::Partition": "aws",
            "AWS::URLSuffix": "amazonaws.com",
        }.get(name)

    def _ref(self, name: str) -> str:
        pseudo = self._pseudo(name)
        if pseudo is not None:
            return pseudo
        if name in self.parameters:
            return self.parameters[name]
        if name in self.refs:
            return self.refs[name]
        raise TemplateError(f"cannot resolve Ref {name!r} (not created yet?)")

    def _getatt(self, logical: str, attribute: str) -> str:
        try:
            return self.attrs[logical][attribute]
        except KeyError:
            raise TemplateError(f"cannot resolve Fn::GetAtt {logical}.{attribute}") from None

    def _sub(self, arg: Any) -> str:
        text, variables = (arg, {}) if isinstance(arg, str) else (arg[0], arg[1])

        def replace(match: re.Match[str]) -> str:
            expr = match.group(1)
            if expr.startswith("!"):
                return "${" + expr[1:] + "}"
            if expr in variables:
                return str(self.resolve(variables[expr]))
            if "." in expr and not expr.startswith("AWS::"):
                logical, attribute = expr.split(".", 1)
                return self._getatt(logical, attribute)
            return self._ref(expr)

        return re.sub(r"\$\{([^}]+)\}", replace, text)

    def resolve(self, value: Any) -> Any:
        if isinstance(value, dict):
            if len(value) == 1:
                (key, arg), = value.items()
                if key == "Ref":
                    return self._ref(arg)
                if key == "Fn::Sub":
                    return self._sub(arg)
                if key == "Fn::GetAtt":
                    logical, attribute = arg if isinstance(arg, list) else arg.split(".", 1)
                    return self._getatt(logical, attribute)
                if key == "Fn::FindInMap":
                    name, top, second = (self.resolve(part) for part in arg)
                    return str(self.template["Mappings"][name][top][second])
                if key.startswith("Fn::"):
                    raise TemplateError(f"intrinsic {key} is not supported by the local runner")
            return {k: self.resolve(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.resolve(v) for v in value]
        return value

    def properties(self, logical_id: str) -> dict[str, Any]:
        return self.resolve(self.resources[logical_id].get("Properties", {}))

    # ------------------------------------------------------------ functions
    def functions(self, repo_root: Path = REPO_ROOT) -> dict[str, FunctionSpec]:
        globals_fn = self.template.get("Globals", {}).get("Function", {})
        global_env = globals_fn.get("Environment", {}).get("Variables", {})
        specs = {}
        for logical, resource in self.of_type("AWS::Serverless::Function").items():
            props = resource["Properties"]
            env = {**global_env, **props.get("Environment", {}).get("Variables", {})}
            specs[logical] = FunctionSpec(
                logical_id=logical,
                code_uri=repo_root / props["CodeUri"],
                handler=props["Handler"],
                environment={k: str(self.resolve(v)) for k, v in env.items()},
                events={name: {"Type": ev["Type"], **self.resolve(ev.get("Properties", {}))}
                        for name, ev in props.get("Events", {}).items()},
                timeout=int(props.get("Timeout", globals_fn.get("Timeout", 3))),
            )
        return specs


def new_stack(
    stack_name: str = "cdp-local",
    *,
    region: str = "us-east-1",
    account_id: str = "123456789012",
    parameter_overrides: Mapping[str, str] | None = None,
    template: dict[str, Any] | None = None,
) -> Stack:
    template = template or load_template()
    params = {name: str(p.get("Default", "")) for name, p in template.get("Parameters", {}).items()}
    for name, value in (parameter_overrides or {}).items():
        if name not in params:
            raise TemplateError(f"unknown template parameter {name!r}")
        params[name] = str(value)
    return Stack(template=template, stack_name=stack_name, region=region,
                 account_id=account_id, parameters=params)


def sam_transform(template: dict[str, Any] | None = None, *, region: str = "us-east-1") -> dict[str, Any]:
    """The template as CloudFormation deploys it: the SAM transform, run offline.

    Code locations are replaced by S3 URIs first, as `sam package` does. No managed policy is
    resolved (the template attaches none). Raises samtranslator's InvalidDocumentException.
    """
    from samtranslator.translator.transform import transform

    class NoManagedPolicies:
        def load(self) -> dict[str, str]:
            return {}

    template = template or load_template()
    for resource in template["Resources"].values():
        props = resource.get("Properties", {})
        for key in ("CodeUri", "ContentUri"):
            if key in props:
                props[key] = f"s3://artifacts/{props[key].strip('/')}.zip"
    return dict(transform(template, {"AWS::Region": region}, NoManagedPolicies()))
