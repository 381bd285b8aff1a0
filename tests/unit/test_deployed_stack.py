"""Finding a deployed stack's resources from its outputs, and the local deploy's preconditions."""

from __future__ import annotations

from pathlib import Path

import pytest

from cdp.settings import COLLECTOR_FIELDS, FUNCTION_FIELDS
from cdp_infra import deployed
from cdp_infra.template import load_template


def _outputs_as_deployed(stack: str) -> dict[str, str]:
    """What CloudFormation answers for template.yaml's outputs: each names a resource of ``stack``."""
    return {key: f"{stack}:{key}" for key in load_template()["Outputs"]}


def test_every_variable_a_function_needs_is_found_from_the_stack_outputs() -> None:
    variables = deployed.environment_from_outputs(_outputs_as_deployed("cdp-dev"))
    needed = {name.upper() for name in FUNCTION_FIELDS | COLLECTOR_FIELDS}
    needed -= {"QUERY_ENGINE", "EMAIL_SENDER"}  # options, not resources
    assert needed <= set(variables)
    assert variables["PROFILES_TABLE"] == "cdp-dev:ProfilesTable"
    assert variables["EVENTS_STREAM"] == "cdp-dev:EventsStreamName"
    assert variables["ACTIVATION_QUEUE_URL"] == "cdp-dev:ActivationQueueUrl"
    assert variables["CDP_URL"] == "cdp-dev:CollectorUrl"


def test_the_collector_url_maps_to_the_emulators_execute_api_path() -> None:
    url = deployed.local_collector_url("https://abc123.execute-api.us-east-1.amazonaws.com/v1api",
                                       "http://127.0.0.1:4566")
    assert url == "http://127.0.0.1:4566/_aws/execute-api/abc123/v1api"


def test_the_local_deploy_says_why_it_cannot_run_without_its_tools(monkeypatch: pytest.MonkeyPatch,
                                                                  tmp_path: Path) -> None:
    monkeypatch.setattr(deployed, "SAM_VENV", tmp_path / ".venv-sam")
    reason = deployed.unavailable_reason()
    assert reason is not None and "make sam-cli" in reason and "python3.12" in reason


def test_the_build_is_for_the_hosts_architecture(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(deployed.platform, "machine", lambda: "aarch64")
    assert deployed.host_architecture() == "arm64"
    monkeypatch.setattr(deployed.platform, "machine", lambda: "x86_64")
    assert deployed.host_architecture() == "x86_64"


def test_the_template_defaults_to_arm64_for_aws() -> None:
    parameter = load_template()["Parameters"]["Architecture"]
    assert parameter["Default"] == "arm64" and set(parameter["AllowedValues"]) == {"arm64", "x86_64"}
