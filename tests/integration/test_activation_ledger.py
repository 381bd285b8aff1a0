"""The effect ledger's claim states on the template's IdempotencyTable (moto)."""

from __future__ import annotations

import pytest

from cdp.adapters.aws import reset_clients
from cdp.adapters.idempotency import DynamoEffectLedger
from cdp.settings import Settings

KEY = "email#vip#p1#r1"


class Clock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def ledger(stack_settings: Settings, clock: Clock) -> DynamoEffectLedger:
    reset_clients()  # clients made under an earlier moto would not see this one's tables
    return DynamoEffectLedger(stack_settings, hold_s=300, max_attempts=2, clock=clock)


def test_a_first_claim_is_acquired_and_stored_pending_with_its_hold(ledger: DynamoEffectLedger, clock: Clock):
    assert ledger.claim(KEY) == "acquired"

    item = ledger.state(KEY)
    assert (item["state"], item["attempts"], item["hold_until"]) == ("pending", 1, int(clock.now) + 300)
    assert item["expires_at"] > item["hold_until"]


def test_a_pending_claim_within_its_hold_is_not_taken(ledger: DynamoEffectLedger, clock: Clock):
    ledger.claim(KEY)
    clock.now += 299

    assert ledger.claim(KEY) == "pending"


def test_an_expired_pending_claim_is_taken_over_once(ledger: DynamoEffectLedger, clock: Clock):
    ledger.claim(KEY)
    clock.now += 300

    assert ledger.claim(KEY) == "acquired"
    assert ledger.state(KEY)["attempts"] == 2
    clock.now += 300
    assert ledger.claim(KEY) == "exhausted"


def test_a_sent_claim_keeps_the_provider_id_and_is_never_claimed_again(ledger: DynamoEffectLedger, clock: Clock):
    ledger.claim(KEY)
    ledger.mark_sent(KEY, "ses-0001")
    clock.now += 10_000

    assert ledger.claim(KEY) == "sent"
    assert (ledger.state(KEY)["state"], ledger.state(KEY)["provider_id"]) == ("sent", "ses-0001")


def test_a_failed_claim_keeps_its_reason_and_is_never_claimed_again(ledger: DynamoEffectLedger, clock: Clock):
    ledger.claim(KEY)
    ledger.mark_failed(KEY, "InvalidParameterValue")
    clock.now += 10_000

    assert ledger.claim(KEY) == "failed"
    assert ledger.state(KEY)["reason"] == "InvalidParameterValue"


def test_a_released_claim_is_claimed_again_at_once_and_its_attempt_is_given_back(ledger: DynamoEffectLedger):
    ledger.claim(KEY)
    ledger.release(KEY)

    assert ledger.claim(KEY) == "acquired"
    assert ledger.state(KEY)["attempts"] == 1


def test_releasing_or_failing_a_sent_claim_changes_nothing(ledger: DynamoEffectLedger):
    ledger.claim(KEY)
    ledger.mark_sent(KEY, "ses-0001")

    ledger.release(KEY)
    ledger.mark_failed(KEY, "late")

    assert ledger.claim(KEY) == "sent" and ledger.state(KEY)["attempts"] == 1


def test_activation_on_moto_sends_once_across_a_redelivery(ledger: DynamoEffectLedger, stack_settings: Settings):
    from cdp.activation import Contact, activate_change
    from cdp.campaigns.definition import Template
    from cdp.campaigns.send import EmailSetup
    from cdp.segments.membership import MembershipChange

    class Directory:
        def contacts(self, ids: list[str]) -> dict[str, Contact]:
            return {"p1": Contact("p1", "a@x.io")}

    class Sender:
        sent = 0

        def send_raw(self, **_: object) -> str:
            self.sent += 1
            return "ses-1"

    sender = Sender()
    change = MembershipChange("vip", "p1", "entered", "r1", "2026-11-20T00:00:00Z")
    for _ in range(2):
        activate_change(change, contacts=Directory(), ledger=ledger,
                        setup=EmailSetup("news@shop.test", sender, "https://x/v1api", lambda: "k"),
                        templates={"vip": Template("Hi", "Hello")})

    assert sender.sent == 1 and ledger.state(KEY)["state"] == "sent"


def test_a_send_event_confirms_a_pending_claim_sent_even_after_a_takeover(ledger: DynamoEffectLedger, clock: Clock):
    ledger.claim(KEY)
    clock.now += 300
    assert ledger.claim(KEY) == "acquired"  # taken over: attempts 2

    assert ledger.confirm_sent(KEY, "ses-first") is True
    ledger.release(KEY)  # the new holder's refusal cannot reopen it

    assert (ledger.claim(KEY), ledger.state(KEY)["provider_id"]) == ("sent", "ses-first")


def test_a_send_event_never_rewrites_a_decided_claim_nor_creates_one(ledger: DynamoEffectLedger):
    ledger.claim(KEY)
    ledger.mark_sent(KEY, "ses-own")
    ledger.claim("email#vip#p2#r1")
    ledger.mark_failed("email#vip#p2#r1", "InvalidParameterValue")

    assert ledger.confirm_sent(KEY, "ses-other") is False
    assert ledger.confirm_sent("email#vip#p2#r1", "ses-other") is False
    assert ledger.confirm_sent("email#vip#p3#r1", "ses-other") is False

    assert ledger.state(KEY)["provider_id"] == "ses-own"
    assert ledger.state("email#vip#p2#r1")["state"] == "failed" and ledger.state("email#vip#p3#r1") == {}


def test_the_feedback_function_confirms_the_claim_of_a_send_event(
        ledger: DynamoEffectLedger, stack_environment: dict[str, str], monkeypatch: pytest.MonkeyPatch,
        lambda_context: object):
    import importlib.util
    import json
    from pathlib import Path

    from cdp.campaigns.feedback import LEDGER_TAG, ledger_tag

    # Given a claim left pending by a sender that died after SES accepted the message
    ledger.claim(KEY)
    for name, value in stack_environment.items():
        monkeypatch.setenv(name, value)
    spec = importlib.util.spec_from_file_location(
        "cdp_feedback_handler", Path(__file__).resolve().parents[2] / "functions" / "feedback" / "handler.py")
    assert spec and spec.loader
    handler = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(handler)
    notification = {"eventType": "Send", "send": {}, "mail": {
        "messageId": "ses-0042", "destination": ["a@x.io"], "timestamp": "2026-11-30T12:00:00Z",
        "tags": {"segment": ["vip"], "run": ["r1"], LEDGER_TAG: [ledger_tag(KEY)]}}}
    event = {"Records": [{"EventSource": "aws:sns", "Sns": {"Message": json.dumps(notification)}}]}

    # When SNS delivers its Send event to the feedback function (twice: at least once)
    first = handler.handler(event, lambda_context)
    handler.handler(event, lambda_context)

    # Then the claim is sent with SES's message id, and the outcome event went into the stream
    assert (ledger.state(KEY)["state"], ledger.state(KEY)["provider_id"]) == ("sent", "ses-0042")
    assert first["outcomes"] == {"sent": 1}
