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


def test_webhooks_replay_puts_each_dead_letter_back_with_a_fresh_schedule(stack_settings: Settings) -> None:
    from cdp_infra.destinations_cli import replay_dead_letters

    letters = SqsDeadLetters(stack_settings)
    letters.put([Delivery(CHANGE, "hook", 7, 0.0, "gave_up:retry")])
    # A change SQS's redrive moved after five failed receives: the publisher's message, no destination.
    boto3.client("sqs").send_message(QueueUrl=stack_settings.destination_dead_letter_url,
                                     MessageBody=json.dumps(CHANGE.to_dict()))
    counts = replay_dead_letters(letters, SqsDeliveryQueue(stack_settings))
    assert counts == {"gave_up:retry": 1, "?": 1} and list(letters.drain()) == []
    back = sorted((Delivery.from_dict(d) for d in _receive(stack_settings.destination_queue_url)),
                  key=lambda d: d.destination or "")
    assert back == [Delivery(CHANGE), Delivery(CHANGE, "hook")]


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
        handler = _handler(monkeypatch, {**stack_environment, "ALLOW_LOCAL_ENDPOINTS": "1",
                                         "EXTRA_DESTINATIONS_DIR": str(REPO / "examples" / "destinations")})
        sample = json.loads((REPO / "events" / "sqs-destinations.json").read_text())
        sample["Records"][0]["body"] = json.dumps(CHANGE.to_dict())
        sample["Records"] = sample["Records"][:1]
        assert handler.handler(sample, lambda_context) == {"batchItemFailures": []}
        assert len(meta.members("23851234567890123")) == 1 and len(google.members("8765432101")) == 1
        assert hook.deliveries == 1 and not (meta.violations or google.violations or hook.violations)
        handler.handler(sample, lambda_context)  # redelivered: nothing more reaches any destination
        assert (len(meta.requests), len(google.requests), len(hook.requests)) == (1, 1, 1)


def test_audience_holdings_are_kept_per_destination_and_profile(stack_settings: Settings) -> None:
    from cdp.adapters.destinations import DynamoAudienceHoldings

    holdings = DynamoAudienceHoldings(stack_settings)
    rows = [(f"p{n}", [["a" * 64, ""], ["b" * 64, ""]]) for n in range(30)]  # more than one batch write
    holdings.put("meta-vip", rows)
    holdings.put("google-vip", [("p1", [[{"emailAddress": "c" * 64}]])])
    assert holdings.held("meta-vip", ["p0", "p29", "absent"]) == {"p0": rows[0][1], "p29": rows[29][1]}
    assert sorted(holdings.profiles("meta-vip")) == sorted(f"p{n}" for n in range(30))
    holdings.put("meta-vip", [(f"p{n}", []) for n in range(30)])
    assert list(holdings.profiles("meta-vip")) == [] and list(holdings.profiles("google-vip")) == ["p1"]


def test_audience_holdings_writes_are_conditional_on_the_version_read(stack_settings: Settings) -> None:
    from cdp.activation.audiences.holdings import Holding
    from cdp.adapters.destinations import DynamoAudienceHoldings

    holdings = DynamoAudienceHoldings(stack_settings)
    holdings.put("meta-vip", [("old", [["a" * 64]])])  # written before versions: read as version 0
    assert holdings.read("meta-vip", ["old"]) == {"old": Holding([["a" * 64]], 0)}

    assert holdings.write("meta-vip", [("old", [["a" * 64], ["b" * 64]], 0), ("new", [["c" * 64]], 0)]) == []
    assert holdings.read("meta-vip", ["old", "new"]) == {"old": Holding([["a" * 64], ["b" * 64]], 1),
                                                          "new": Holding([["c" * 64]], 1)}
    # Another writer read version 0 before these writes: neither its put nor its delete lands.
    assert holdings.write("meta-vip", [("old", [], 0), ("new", [["d" * 64]], 0)]) == ["old", "new"]
    assert holdings.write("meta-vip", [("old", [], 1)]) == []
    assert holdings.read("meta-vip", ["old", "new"]) == {"new": Holding([["c" * 64]], 1)}


def test_a_google_secret_with_an_oauth_client_gets_one_token_source_per_warm_function(stack_settings: Settings) -> None:
    from dataclasses import replace

    from cdp.activation.audiences.google import GoogleOAuth

    local = replace(stack_settings, allow_local_endpoints="1")
    google = parse_destination("type: google_audience\nsegments: [v]\nsecret: g\naccount_id: '1'\nuser_list_id: '2'\n",
                               "g.yaml")
    _secret(stack_settings, "g", json.dumps({"client_id": "c", "client_secret": "s", "refresh_token": "r",
                                             "token_url": "http://127.0.0.1:9/token"}))
    targets = SecretTargets(local)
    first, second = targets.audience(google), targets.audience(google)
    assert isinstance(first.tokens, GoogleOAuth) and first.tokens is second.tokens  # type: ignore[attr-defined]
    assert first.tokens.token_url == "http://127.0.0.1:9/token"  # type: ignore[attr-defined]
    assert SecretTargets(stack_settings).audience(google).tokens.token_url == "https://oauth2.googleapis.com/token"  # type: ignore[attr-defined]
    _secret(stack_settings, "bad", json.dumps({"client_id": "c", "refresh_token": "r"}))
    from cdp.errors import InvalidConfig

    with pytest.raises(InvalidConfig):
        SecretTargets(stack_settings).audience(replace(google, secret="bad"))


def test_a_consent_signal_on_the_queue_makes_the_deliver_function_remove_the_person(
        stack_environment: dict[str, str], stack_settings: Settings, monkeypatch: pytest.MonkeyPatch,
        lambda_context: object) -> None:
    from cdp.adapters.destinations import DynamoAudienceHoldings
    from cdp.adapters.sqs import SqsConsentSignals

    with MetaFake("m-token") as meta, GoogleFake(client_id="c", client_secret="s", refresh_token="r") as google:
        _secret(stack_settings, "meta-ads", json.dumps({"access_token": "m-token", "base_url": meta.url}))
        _secret(stack_settings, "google-ads", json.dumps({"client_id": "c", "client_secret": "s", "refresh_token": "r",
                                                          "base_url": google.url, "token_url": f"{google.url}/token"}))
        store = DynamoIdentityStore(stack_settings)  # (no webhook secret: its deliveries are dead-lettered)
        store.put_profile(Profile(profile_id="p1", identifiers=["email:ann@example.com"],
                                  consent=Consent({"ads": ConsentStatement(True, "s")})))
        DynamoMembershipStore(stack_settings).apply("repeat-buyers", [Member("p1", "r1", AT)], [])
        handler = _handler(monkeypatch, {**stack_environment, "ALLOW_LOCAL_ENDPOINTS": "1",
                                         "EXTRA_DESTINATIONS_DIR": str(REPO / "examples" / "destinations")})

        def run(body: dict[str, Any]) -> None:
            sample = json.loads((REPO / "events" / "sqs-destinations.json").read_text())
            sample["Records"] = sample["Records"][:1]
            sample["Records"][0]["body"] = json.dumps(body)
            assert handler.handler(sample, lambda_context) == {"batchItemFailures": []}

        run(CHANGE.to_dict())
        assert len(meta.members("23851234567890123")) == 1 and len(google.members("8765432101")) == 1
        profile = store.get_profiles(["p1"])["p1"]
        profile.consent = Consent({"ads": ConsentStatement(False, "t")})
        store.put_profile(profile)
        SqsConsentSignals(stack_settings)(["p1"])
        (signal,) = _receive(stack_settings.destination_queue_url)
        run(signal)
        assert meta.members("23851234567890123") == set() and google.members("8765432101") == set()
        assert list(DynamoAudienceHoldings(stack_settings).profiles("meta-repeat-buyers")) == []
        assert google.issued == 1 and not (meta.violations or google.violations)


def test_the_deliver_function_reports_only_the_messages_not_done(
        stack_environment: dict[str, str], stack_settings: Settings, monkeypatch: pytest.MonkeyPatch,
        lambda_context: object) -> None:
    with WebhookReceiver(SECRET) as hook:
        _secret(stack_settings, "crm-webhook", json.dumps({"secret": SECRET, "url": f"{hook.url}/in"}))
        handler = _handler(monkeypatch, {**stack_environment, "ALLOW_LOCAL_ENDPOINTS": "1",
                                         "EXTRA_DESTINATIONS_DIR": str(REPO / "examples" / "destinations")})
        ctx = handler.context()
        real_release = ctx.ledger.release

        def release(key: str) -> None:  # giving the claim back after the 503 fails: the retry is not recorded
            raise StoreError("throttled", retryable=True)

        ctx.ledger.release = release
        hook.fail_next(503, {})
        sample = json.loads((REPO / "events" / "sqs-destinations.json").read_text())
        record = sample["Records"][0]
        other = MembershipChange("repeat-buyers", "p2", "entered", "r1", AT)
        sample["Records"] = [{**record, "messageId": "m1", "body": json.dumps(CHANGE.to_dict())},
                             {**record, "messageId": "m2", "body": json.dumps(other.to_dict())},
                             {**record, "messageId": "m3", "body": "not json"}]
        assert handler.handler(sample, lambda_context) == {"batchItemFailures": [{"itemIdentifier": "m1"}]}
        ctx.ledger.release = real_release
        assert hook.deliveries == 1  # m2's change; m3 is dropped as malformed (it can never succeed)
