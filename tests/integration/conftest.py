"""Fixtures of the collector's integration tests: the app on the stack of template.yaml (moto)."""

from __future__ import annotations

from collections.abc import Iterator
from types import ModuleType

import boto3
import pytest

from cdp.adapters.sources import DynamoSourceStore
from cdp.settings import Settings

from .collect_support import ADMIN_TOKEN, WRITE_KEY, load_app, serve_collector


@pytest.fixture
def collector(
    stack_environment: dict[str, str], stack_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> Iterator[ModuleType]:
    """The Chalice app module, its environment pointing at the stack, with WRITE_KEY registered."""
    for name, value in stack_environment.items():
        monkeypatch.setenv(name, value)
    # The stack generated its own token; the tests know theirs.
    boto3.client("secretsmanager").put_secret_value(
        SecretId=stack_settings.admin_token_secret_arn, SecretString=ADMIN_TOKEN)
    DynamoSourceStore(stack_settings).register_write_key("tests", WRITE_KEY)
    yield load_app()


@pytest.fixture
def collector_url(
    stack_environment: dict[str, str], stack_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> Iterator[str]:
    """The app served over real HTTP on loopback, for SDKs and browsers."""
    for name, value in stack_environment.items():
        monkeypatch.setenv(name, value)
    DynamoSourceStore(stack_settings).register_write_key("clients", WRITE_KEY)
    server = serve_collector(load_app("cdp_http_collect_app"))
    try:
        yield server.url
    finally:
        server.stop()
