"""The destinations' AWS side on the template's resources (moto), and DeliverFunction end to end
against the loopback fakes: queues, dead letters, on/off state, secrets, the handler."""

from __future__ import annotations

import base64
import importlib.util
import json
from pathlib import Path
from typing import Any

import boto3
import pytest

from cdp.activation.destinations import Delivery, parse_destination
from cdp.adapters.destinations import DynamoDestinationState, SecretTargets, SqsDeadLetters, SqsDeliveryQueue
from cdp.adapters.dynamo_profiles import DynamoIdentityStore
from cdp.adapters.membership import DynamoMembershipStore
from cdp.adapters.sqs import SqsChangePublisher
from cdp.errors import StoreError, UnsafeEndpoint
from cdp.identity.computed import Consent, ConsentStatement
from cdp.identity.profile import Profile
from cdp.segments.membership import Member, MembershipChange
from cdp.settings import Settings
from cdp_infra.fakes import GoogleFake, MetaFake, WebhookReceiver

REPO = Path(__file__).resolve().parents[2]
AT = "2026-11-20T11:00:00Z"
SECRET = "whsec_" + base64.b64encode(b"w" * 32).decode()
CHANGE = MembershipChange("repeat-buyers", "p1", "entered", "r1", AT)


def _receive(url: str) -> list[dict[str, Any]]:
    out = boto3.client("sqs").receive_message(QueueUrl=url, MaxNumberOfMessages=10)
    return [json.loads(m["Body"]) for m in out.get("Messages", [])]


def test_the_publisher_hands_each_change_to_the_email_and_the_destinations_queues(stack_settings: Settings) -> None:
    SqsChangePublisher(stack_settings)([CHANGE])
    assert _receive(stack_settings.activation_queue_url) == [CHANGE.to_dict()]
    assert _receive(stack_settings.destination_queue_url) == [CHANGE.to_dict()]


def test_a_retry_goes_back_on_the_queue_and_a_dead_letter_can_be_drained(stack_settings: Settings) -> None:
    retry = Delivery(CHANGE, "hook", attempt=2, not_before=123.0, reason="retry")
    SqsDeliveryQueue(stack_settings).send([(retry, 0)])
    assert [Delivery.from_dict(d) for d in _receive(stack_settings.destination_queue_url)] == [retry]
    letters = SqsDeadLetters(stack_settings)
    letters.put([Delivery(CHANGE, "hook", 7, 0.0, "gave_up:retry")])
    ((kept, receipt),) = list(letters.drain())
    assert kept.reason == "gave_up:retry"
    letters.delete(receipt)


def test_a_disabled_webhook_stays_off_until_enabled(stack_settings: Settings) -> None:
    state = DynamoDestinationState(stack_settings)
    assert state.disabled("hook") is None
    state.disable("hook", "410 Gone")
    assert state.disabled("hook") == "410 Gone"
    state.enable("hook")
    assert state.disabled("hook") is None


def _secret(settings: Settings, name: str, value: str) -> None:
    boto3.client("secretsmanager").create_secret(Name=settings.destination_secret_prefix + name, SecretString=value)


def test_secret_addresses_of_local_fakes_are_ignored_unless_running_locally(stack_settings: Settings) -> None:
    from dataclasses import replace

    _secret(stack_settings, "meta", json.dumps({"access_token": "t", "base_url": "http://127.0.0.1:9"}))
    meta = parse_destination("type: meta_audience\nsegments: [v]\nsecret: meta\naudience_id: '1'\n", "m.yaml")
    assert SecretTargets(stack_settings).audience(meta).url.startswith("https://graph.facebook.com/")  # type: ignore[attr-defined]
    local = replace(stack_settings, allow_local_endpoints="1")
    assert SecretTargets(local).audience(meta).url.startswith("http://127.0.0.1:9/")  # type: ignore[attr-defined]
    _secret(stack_settings, "hook", json.dumps({"secret": SECRET, "url": "http://127.0.0.1:9/h"}))
    hook = parse_destination("type: webhook\nsegments: [v]\nsecret: hook\nurl: http://127.0.0.1:9/h\n", "h.yaml")
    with pytest.raises(UnsafeEndpoint):
        SecretTargets(stack_settings).webhook(hook)
    assert SecretTargets(local).webhook(hook).url == "http://127.0.0.1:9/h"


def test_a_missing_secret_is_a_permanent_store_error(stack_settings: Settings) -> None:
    meta = parse_destination("type: meta_audience\nsegments: [v]\nsecret: absent\naudience_id: '1'\n", "m.yaml")
    with pytest.raises(StoreError) as caught:
        SecretTargets(stack_settings).audience(meta)
    assert not caught.value.retryable


def _handler(monkeypatch: pytest.MonkeyPatch, env: dict[str, str]) -> Any:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    spec = importlib.util.spec_from_file_location("cdp_deliver_handler", REPO / "functions" / "deliver" / "handler.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_deliver_function_syncs_both_audiences_and_signs_the_webhook(
        stack_environment: dict[str, str], stack_settings: Settings, monkeypatch: pytest.MonkeyPatch,
        lambda_context: object) -> None:
    with MetaFake("m-token") as meta, GoogleFake("g-token") as google, WebhookReceiver(SECRET) as hook:
        _secret(stack_settings, "meta-ads", json.dumps({"access_token": "m-token", "base_url": meta.url}))
        _secret(stack_settings, "google-ads", json.dumps({"access_token": "g-token", "base_url": google.url}))
        _secret(stack_settings, "crm-webhook", json.dumps({"secret": SECRET, "url": f"{hook.url}/in"}))
        DynamoIdentityStore(stack_settings).put_profile(Profile(
            profile_id="p1", identifiers=["email:ann@example.com"], traits={"first_name": "Ann"},
            consent=Consent({"ads": ConsentStatement(True, "s")})))
        DynamoMembershipStore(stack_settings).apply("repeat-buyers", [Member("p1", "r1", AT)], [])
        handler = _handler(monkeypatch, {**stack_environment, "ALLOW_LOCAL_ENDPOINTS": "1"})
        sample = json.loads((REPO / "events" / "sqs-destinations.json").read_text())
        sample["Records"][0]["body"] = json.dumps(CHANGE.to_dict())
        sample["Records"] = sample["Records"][:1]
        assert handler.handler(sample, lambda_context) == {"batchItemFailures": []}
        assert len(meta.members("23851234567890123")) == 1 and len(google.members("8765432101")) == 1
        assert hook.deliveries == 1 and not (meta.violations or google.violations or hook.violations)
        handler.handler(sample, lambda_context)  # redelivered: nothing more reaches any destination
        assert (len(meta.requests), len(google.requests), len(hook.requests)) == (1, 1, 1)
