"""The effect ledger, the SES sender and the SQS change publisher on the template's resources (moto)."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import pytest

from cdp.adapters.aws import aws_client
from cdp.adapters.idempotency import DynamoEffectLedger
from cdp.adapters.sesv2 import SesV2RawSender
from cdp.adapters.sqs import SqsChangePublisher
from cdp.errors import EmailNotSent, StoreError
from cdp.segments.membership import MembershipChange
from cdp.settings import Settings

REGION = "us-east-1"

# ---------------------------------------------------------------- effect ledger


def test_a_key_is_claimed_once(stack_settings: Settings) -> None:
    ledger = DynamoEffectLedger(stack_settings)

    assert ledger.claim("email:vip:p1:r1") == "acquired"
    assert ledger.claim("email:vip:p1:r1") == "pending"
    assert DynamoEffectLedger(stack_settings).claim("email:vip:p1:r1") == "pending"


def test_claims_of_different_keys_do_not_collide(stack_settings: Settings) -> None:
    ledger = DynamoEffectLedger(stack_settings)

    assert ledger.claim("email:vip:p1:r1") == ledger.claim("email:vip:p2:r1") == "acquired"


def test_a_released_key_can_be_claimed_again(stack_settings: Settings) -> None:
    ledger = DynamoEffectLedger(stack_settings)
    ledger.claim("email:vip:p1:r1")

    ledger.release("email:vip:p1:r1")

    assert ledger.claim("email:vip:p1:r1") == "acquired"


def test_a_claim_expires_by_the_tables_ttl(stack_settings: Settings) -> None:
    DynamoEffectLedger(stack_settings, ttl_days=2, clock=lambda: 1_000_000.0).claim("k")

    item = aws_client(stack_settings, "dynamodb").get_item(
        TableName=stack_settings.idempotency_table, Key={"id": {"S": "k"}})["Item"]
    assert item["expires_at"] == {"N": str(1_000_000 + 2 * 86400)}


def test_a_missing_ledger_table_is_a_store_error_not_a_duplicate(stack_settings: Settings) -> None:
    with pytest.raises(StoreError) as raised:
        DynamoEffectLedger(replace(stack_settings, idempotency_table="no-such-table")).claim("k")
    assert not raised.value.retryable


# ---------------------------------------------------------------- SES


def sent_messages() -> list[Any]:
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.ses.models import ses_backends

    return list(ses_backends[DEFAULT_ACCOUNT_ID][REGION].sent_messages)


def test_an_email_is_sent_raw_from_the_sender_to_the_contact_under_the_configuration_set(
        stack_settings: Settings) -> None:
    raw = b"From: x\r\nTo: ada@example.com\r\nSubject: Welcome, Ada\r\n\r\nHello"
    message_id = SesV2RawSender(stack_settings).send_raw(to="ada@example.com", raw=raw,
                                                         tags={"segment": "pro-plan", "run": "2024-05-01T12:00:00Z"})

    [message] = sent_messages()
    assert message.id == message_id
    assert message.source == stack_settings.email_sender
    assert message.destinations == ["ada@example.com"]
    assert "Subject: Welcome, Ada" in message.raw_data


def test_an_unverified_sender_is_refused_as_not_sent_so_the_claim_can_be_released(stack_settings: Settings) -> None:
    sender = SesV2RawSender(replace(stack_settings, email_sender="nobody@unverified.example"))

    with pytest.raises(EmailNotSent) as raised:
        sender.send_raw(to="ada@example.com", raw=b"From: nobody@unverified.example\r\n\r\nt", tags={})

    # SES answered before accepting: nothing was sent, and once the sender is verified a retry sends.
    assert raised.value.retryable
    assert sent_messages() == []


# ---------------------------------------------------------------- SQS


def change(n: int) -> MembershipChange:
    return MembershipChange("vip", f"p{n}", "entered", "r1", "2024-05-01T12:00:00Z")


def queued(settings: Settings) -> list[dict[str, Any]]:
    sqs = aws_client(settings, "sqs")
    bodies: list[dict[str, Any]] = []
    while True:
        out = sqs.receive_message(QueueUrl=settings.activation_queue_url, MaxNumberOfMessages=10)
        if not out.get("Messages"):
            return bodies
        bodies.extend(json.loads(m["Body"]) for m in out["Messages"])


def test_each_change_arrives_as_its_own_message(stack_settings: Settings) -> None:
    SqsChangePublisher(stack_settings)([change(1), change(2)])

    assert sorted(queued(stack_settings), key=lambda b: b["profile_id"]) == [change(1).to_dict(),
                                                                             change(2).to_dict()]


def test_more_changes_than_one_batch_are_sent_in_chunks_of_ten(stack_settings: Settings) -> None:
    client = aws_client(stack_settings, "sqs")
    batch_sizes: list[int] = []

    def count(params: dict[str, Any], **_: Any) -> None:
        batch_sizes.append(len(params["Entries"]))

    client.meta.events.register("provide-client-params.sqs.SendMessageBatch", count)
    try:
        SqsChangePublisher(stack_settings)([change(n) for n in range(23)])
    finally:
        client.meta.events.unregister("provide-client-params.sqs.SendMessageBatch", count)

    assert batch_sizes == [10, 10, 3] * 2  # the email queue, then the destinations queue
    assert sorted(b["profile_id"] for b in queued(stack_settings)) == sorted(f"p{n}" for n in range(23))


def test_a_missing_queue_is_a_store_error(stack_settings: Settings) -> None:
    missing = replace(stack_settings, activation_queue_url=stack_settings.activation_queue_url + "-missing")

    with pytest.raises(StoreError):
        SqsChangePublisher(missing)([change(1)])
