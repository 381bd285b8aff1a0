"""The deployed tier: template.yaml built with `sam build`, deployed with `sam deploy` to the local
emulator (ministack on 127.0.0.1), and driven only through public surfaces and AWS APIs.

Collected only by `make test-deployed` (CDP_DEPLOYED_TESTS=1), so `make test` stays as fast as it
was. Without the emulator or SAM CLI (their virtualenvs need python3.12) every test is skipped
with the reason. A stack that `make deploy-local` left running is reused; otherwise the tier
deploys one and stops the emulator it started at the end.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import pytest

if os.environ.get("CDP_DEPLOYED_TESTS") != "1":
    collect_ignore_glob = ["test_*.py"]

T = TypeVar("T")
TIMINGS: dict[str, float] = {}


def eventually(probe: Callable[[], T | None], *, within: float = 180.0, every: float = 2.0) -> T:
    """The first truthy answer of ``probe``: the deployed pipeline is asynchronous (Kinesis event
    source mappings, SQS). Waiting is not what is tested; the deadline only bounds a hang."""
    deadline = time.monotonic() + within
    while True:
        answer = probe()
        if answer:
            return answer
        if time.monotonic() > deadline:
            raise AssertionError(f"no answer from {probe.__name__} within {within:.0f}s")
        time.sleep(every)


@pytest.fixture(scope="session")
def deployment() -> Iterator[Any]:
    from cdp_infra import deployed

    reason = deployed.unavailable_reason()
    if reason:
        pytest.skip(f"the local emulator cannot run here: {reason}")
    running = deployed.LocalDeployment.load()
    started = running is None  # stop only an emulator this session started
    if running is not None and _stack_exists(running):
        state = running
    else:
        try:
            state = deployed.deploy()
        except deployed.EmulatorUnavailable as exc:
            pytest.skip(f"the local emulator cannot run here: {exc}")
        TIMINGS.update({f"deploy {k}": v for k, v in state.timings.items()})
    yield state
    if started:
        deployed.stop_emulator()


def _stack_exists(state: Any) -> bool:
    import boto3

    client = boto3.client("cloudformation", endpoint_url=state.endpoint, region_name="us-east-1",
                          aws_access_key_id="test", aws_secret_access_key="test")
    try:
        return bool(client.describe_stacks(StackName=state.stack)["Stacks"])
    except Exception:
        return False


@pytest.fixture(scope="session")
def stack(deployment: Any) -> Iterator[dict[str, str]]:
    """The deployed stack's names, from its CloudFormation outputs, with boto3 pointed at it."""
    from cdp_infra.deployed import use_stack

    saved = dict(os.environ)
    variables = use_stack(deployment.stack)
    yield {**variables, "AWS_ENDPOINT_URL": deployment.endpoint}
    os.environ.clear()
    os.environ.update(saved)


@pytest.fixture(scope="session")
def outputs(deployment: Any, stack: dict[str, str]) -> dict[str, str]:
    import boto3

    from cdp_infra.deployed import stack_outputs

    return stack_outputs(boto3.client("cloudformation"), deployment.stack)


@pytest.fixture(scope="session")
def write_key(deployment: Any, stack: dict[str, str]) -> str:
    """A new source's write key, created the way an operator does: `cdp --stack NAME sources create`."""
    result = subprocess.run([sys.executable, "-m", "cdp_infra.cli", "--stack", deployment.stack,
                             "sources", "create", "smoke-tests"], capture_output=True, text=True, check=True)
    return next(line.split()[2] for line in result.stdout.splitlines() if line.startswith("write key:"))


def _operator_token(deployment: Any, name: str, *scopes: str) -> str:
    result = subprocess.run([sys.executable, "-m", "cdp_infra.cli", "--stack", deployment.stack, "operators", "add",
                             name, *(f"--scope={s}" for s in scopes)], capture_output=True, text=True, check=True)
    return next(line.split()[1] for line in result.stdout.splitlines() if line.startswith("token:"))


@pytest.fixture(scope="session")
def admin_token(deployment: Any, stack: dict[str, str]) -> str:
    """An operator's token with `profiles:read`, created the way an operator does: `cdp --stack NAME
    operators add`. The stack's break-glass secret is left alone (test_the_break_glass_token...)."""
    return _operator_token(deployment, "smoke-tests", "profiles:read")


@pytest.fixture(scope="session")
def privacy_only_token(deployment: Any, stack: dict[str, str]) -> str:
    return _operator_token(deployment, "smoke-tests-privacy", "privacy:read")


@pytest.fixture(scope="session")
def break_glass_token(stack: dict[str, str]) -> str:
    import boto3

    return str(boto3.client("secretsmanager").get_secret_value(SecretId=stack["ADMIN_TOKEN_SECRET_ARN"])["SecretString"])


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if TIMINGS:
        terminalreporter.write_line("deployed tier timings (s): " + json.dumps(TIMINGS))
