"""The admin token: a secret the stack generates, read by the collector through a cache."""

from __future__ import annotations

import json
import logging
from types import ModuleType

import boto3
import pytest

from cdp.adapters.secrets import CachedSecret
from cdp.errors import StoreError
from cdp.settings import Settings

from .collect_support import ADMIN_TOKEN, proxy_event


def call(collector: ModuleType, event: dict[str, object]) -> dict[str, object]:
    return dict(collector.app(event, None))


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_the_stack_generates_a_long_random_admin_token(stack_settings: Settings) -> None:
    value = boto3.client("secretsmanager").get_secret_value(SecretId=stack_settings.admin_token_secret_arn)
    assert len(value["SecretString"]) == 48 and value["SecretString"].isalnum()


def test_the_stack_key_exists_and_rotates(stack_settings: Settings) -> None:
    kms = boto3.client("kms")
    described = boto3.client("secretsmanager").describe_secret(SecretId=stack_settings.admin_token_secret_arn)
    assert kms.get_key_rotation_status(KeyId=described["KmsKeyId"])["KeyRotationEnabled"] is True


def test_a_rotated_secret_is_read_again_only_after_the_ttl(stack_settings: Settings) -> None:
    # Given the secret read once through a cache of 300 s
    sm, clock = boto3.client("secretsmanager"), Clock()
    secret = CachedSecret(stack_settings, stack_settings.admin_token_secret_arn, ttl_seconds=300, clock=clock)
    first = secret.value()
    # When it is rotated
    sm.put_secret_value(SecretId=stack_settings.admin_token_secret_arn, SecretString="rotated-token-0123456789")
    # Then the cached value holds until the TTL, and the new one after it
    clock.now = 299.0
    assert secret.value() == first
    clock.now = 300.0
    assert secret.value() == "rotated-token-0123456789"


def test_a_missing_secret_is_a_store_error(stack_settings: Settings) -> None:
    with pytest.raises(StoreError) as raised:
        CachedSecret(stack_settings, "arn:aws:secretsmanager:us-east-1:123456789012:secret:nope").value()
    assert raised.value.reason == "secret_unavailable" and raised.value.retryable is False


def test_a_profile_read_is_audited_without_the_identifier(
    collector: ModuleType, caplog: pytest.LogCaptureFixture
) -> None:
    event = proxy_event("/v1/profiles/email:alice@example.com", method="GET",
                        headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
                        resource="/v1/profiles/{identifier}",
                        path_parameters={"identifier": "email:alice@example.com"})
    with caplog.at_level(logging.INFO, logger="cdp.audit"):
        response = call(collector, event)
    lines = [json.loads(r.getMessage()) for r in caplog.records if r.name == "cdp.audit"]
    assert response["statusCode"] == 404  # the stack is empty: nobody is alice
    assert [(x["route"], x["identifier_type"], x["status"], x["caller"]) for x in lines] == [
        ("profile", "email", 404, "198.51.100.7")]
    assert "alice" not in caplog.text
