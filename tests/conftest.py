"""Shared fixtures: fake credentials for every test, and the stack of template.yaml on moto."""

from __future__ import annotations

import os
from collections.abc import Iterator

import boto3
import pytest

from cdp.settings import Settings
from cdp_infra.template import Stack

REGION = "us-east-1"


@pytest.fixture(autouse=True)
def aws_credentials(monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest) -> None:
    """No test may reach a real AWS account: credentials are fake, endpoints unset.

    End-to-end tests run against the local stack, which sets its own fake credentials and
    points AWS_ENDPOINT_URL at its moto server on loopback: leave those alone.
    """
    if request.node.get_closest_marker("e2e"):
        return
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_SECURITY_TOKEN", "testing")
    monkeypatch.setenv("AWS_SESSION_TOKEN", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.delenv("AWS_ENDPOINT_URL_DYNAMODB", raising=False)
    monkeypatch.setenv("POWERTOOLS_METRICS_NAMESPACE", "CDPTest")
    monkeypatch.setenv("POWERTOOLS_TRACE_DISABLED", "1")


@pytest.fixture(autouse=True)
def fresh_aws_clients() -> Iterator[None]:
    """Clients are cached per process (cdp.adapters.aws): each test starts and ends without them,
    so none made inside one test's moto reaches the next."""
    from cdp.adapters.aws import reset_clients

    reset_clients()
    yield
    reset_clients()


@pytest.fixture(autouse=True)
def clean_metrics() -> Iterator[None]:
    """Powertools keeps metrics in class-level state: no test sees another's."""
    from cdp.observability import metrics

    metrics.clear_metrics()
    yield
    metrics.clear_metrics()


@pytest.fixture
def moto_stack() -> Iterator[Stack]:
    """Every resource of template.yaml created inside moto, under the template's names."""
    from moto import mock_aws

    from cdp_infra.provision import provision
    from cdp_infra.template import new_stack

    with mock_aws():
        yield provision(new_stack("cdp-test", region=REGION), boto3.Session(region_name=REGION))


@pytest.fixture
def stack_environment(moto_stack: Stack) -> dict[str, str]:
    """The environment the template gives the functions (DuckDB standing in for Athena)."""
    env: dict[str, str] = {}
    for spec in moto_stack.functions().values():
        env.update(spec.environment)
    env["QUERY_ENGINE"] = "duckdb"
    env["AWS_DEFAULT_REGION"] = REGION
    return env


@pytest.fixture
def stack_settings(stack_environment: dict[str, str]) -> Settings:
    """Settings with every resource name of template.yaml, inside moto."""
    return Settings.from_env(stack_environment)


@pytest.fixture
def lambda_context() -> object:
    class _Context:
        function_name = "cdp-test"
        memory_limit_in_mb = 512
        invoked_function_arn = f"arn:aws:lambda:{REGION}:123456789012:function:cdp-test"
        aws_request_id = "00000000-0000-0000-0000-000000000000"

        @staticmethod
        def get_remaining_time_in_millis() -> int:
            return 30_000

    return _Context()


def pytest_configure(config: pytest.Config) -> None:
    os.environ.setdefault("AWS_DEFAULT_REGION", REGION)
    # Powertools Metrics reads these when cdp.observability is imported, before any fixture runs.
    os.environ.setdefault("POWERTOOLS_METRICS_NAMESPACE", "CDPTest")
    os.environ.setdefault("POWERTOOLS_SERVICE_NAME", "cdp")
