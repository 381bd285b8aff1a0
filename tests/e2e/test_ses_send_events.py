"""The local stack publishes SES's Send event of every email to the feedback function (as SES's event
destination does on AWS), which confirms the email's pending ledger claim ``sent``: a sender that died
after SES accepted the message no longer sends it twice."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from cdp.adapters.idempotency import DynamoEffectLedger
from cdp.adapters.sesv2 import SesV2RawSender
from cdp.campaigns.send import ledger_tags
from cdp_infra.local import LocalConfig, LocalPipeline

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def pipeline() -> Iterator[LocalPipeline]:
    with LocalPipeline(LocalConfig(run_schedules=False, ses_send_events=True)) as p:
        yield p


def test_a_claim_left_pending_after_ses_accepted_is_confirmed_by_the_send_event(pipeline: LocalPipeline) -> None:
    # Given a claim whose holder sent the email, then died before marking it sent
    key = "campaign#welcome#r1#p-e2e"
    ledger = DynamoEffectLedger(pipeline.settings)
    assert ledger.claim(key) == "acquired"
    raw = b"From: news@example.com\r\nTo: ada@example.com\r\nSubject: Hi\r\n\r\nHello"
    ses_id = SesV2RawSender(pipeline.settings).send_raw(to="ada@example.com", raw=raw,
                                                        tags={"campaign": "welcome", **ledger_tags(key)})
    # When the stack publishes the Send event (a thread, as SES does within seconds)
    deadline = time.monotonic() + 60
    while ledger.state(key).get("state") != "sent" and time.monotonic() < deadline:
        time.sleep(0.2)
    # Then the claim is sent with SES's message id: a redelivery is a duplicate, not a second email
    assert ledger.state(key)["provider_id"] == ses_id and ledger.claim(key) == "sent"
