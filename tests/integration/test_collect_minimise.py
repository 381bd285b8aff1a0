"""Minimisation options on the collector of the template's stack (moto): what reaches the stream."""

from __future__ import annotations

import re
from types import ModuleType

import boto3
import pytest

from cdp.settings import Settings

from .collect_support import basic, proxy_event, stream_events

BATCH = {"batch": [{"type": "identify", "userId": "u1", "messageId": "m1",
                    "traits": {"email": "a@example.com", "birthday": "1990-01-01"}}]}


def test_the_stack_keeps_everything_by_default(collector: ModuleType, stack_settings: Settings) -> None:
    collector.app(proxy_event("/v1/batch", body=BATCH, headers={"Authorization": basic()}), None)
    (_, event), = stream_events(stack_settings)
    assert event["context"]["ip"] == "198.51.100.7" and event["traits"]["birthday"] == "1990-01-01"


def test_hash_mode_replaces_the_address_by_a_hash_under_the_stacks_generated_key(
        collector: ModuleType, stack_settings: Settings, stack_environment: dict[str, str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLLECT_IP_MODE", "hash")
    monkeypatch.setenv("COLLECT_DROP_TRAITS", "birthday")
    arn = stack_environment["COLLECT_IP_HASH_KEY_SECRET_ARN"]
    assert len(boto3.client("secretsmanager").get_secret_value(SecretId=arn)["SecretString"]) >= 16
    response = collector.app(proxy_event("/v1/batch", body=BATCH, headers={"Authorization": basic()}), None)
    assert response["statusCode"] == 200
    (_, event), = stream_events(stack_settings)
    assert re.fullmatch(r"[0-9a-f]{32}", event["context"]["ip"])
    assert event["traits"] == {"email": "a@example.com"}
