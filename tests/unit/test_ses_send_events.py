"""SES's Send event closes the unknown-outcome window: every email carries its ledger key in a tag,
and the feedback function confirms the pending claim ``sent`` (docs/architecture.md, "Activation:
claims and the crash matrix", the rows after SES accepted)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cdp.activation import Contact, InMemoryEffectLedger, activate_change, effect_key
from cdp.campaigns.definition import parse_campaign
from cdp.campaigns.eligibility import Recipient
from cdp.campaigns.feedback import LEDGER_TAG, MAX_TAG_LENGTH, FeedbackReport, key_of_tag, ledger_tag, process
from cdp.campaigns.send import EmailSetup, deliver, message_key, send_test
from cdp.errors import EffectInFlight, SendOutcomeUnknown, StoreError
from cdp.segments.membership import Change, MembershipChange
from tests.unit.email_fakes import Clock, Crash, RecordingSes, SentThenCrash

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
CAMPAIGN = parse_campaign("""\
name: winback
kind: automated
channel: email
consent: email
audience: {segment: lapsed-buyers}
template:
  subject: "We miss you"
  text: "Come back."
""", "winback.yaml")
KEY = message_key("winback", "once", "p1")


class Ses(RecordingSes):
    """An SES that keeps what it accepted, and publishes their Send events."""

    def send_events(self) -> dict[str, Any]:
        """SNS's event of every Send SES published so far (SES's event publishing format)."""
        return sns(*[send_event(a.ses_id, a.tags) for a in self.accepted])


def send_event(ses_id: str, tags: Mapping[str, str]) -> dict[str, Any]:
    return {"eventType": "Send", "send": {},
            "mail": {"messageId": ses_id, "destination": ["p1@shop.test"], "timestamp": "2026-11-30T12:00:00Z",
                     "tags": {name: [value] for name, value in tags.items()}}}


def sns(*notifications: Mapping[str, Any]) -> dict[str, Any]:
    return {"Records": [{"EventSource": "aws:sns", "Sns": {"Message": json.dumps(n)}} for n in notifications]}


class Sink:
    def __init__(self) -> None:
        self.records: list[Any] = []

    def put(self, records: list[Any]) -> None:
        self.records.extend(records)


class CannotRecord(InMemoryEffectLedger):
    def mark_sent(self, key: str, provider_id: str) -> None:
        raise StoreError("throttled", retryable=True)


def setup(ses: Ses) -> EmailSetup:
    return EmailSetup("news@shop.test", ses, "https://api.shop.test/v1api", lambda: "s3cret")


def send(ses: Ses, ledger: InMemoryEffectLedger):  # type: ignore[no-untyped-def]
    recipient = Recipient(profile_id="p1", email="p1@shop.test", consent={}, traits={})
    return deliver(CAMPAIGN, recipient, run_id="once", now=NOW, ledger=ledger, setup=setup(ses))


def feedback(ses: Ses, ledger: InMemoryEffectLedger) -> FeedbackReport:
    return process(ses.send_events(), sink=Sink(), now=NOW, ledger=ledger)


# ---------------------------------------------------------------- the tag


@given(st.sampled_from(["email#", "campaign#"]), st.text(max_size=120))
def test_a_ledger_key_round_trips_through_a_tag_of_sess_allowed_characters(prefix: str, rest: str) -> None:
    key = prefix + rest
    value = ledger_tag(key)
    if value is None:
        assert len(key.encode()) > 191
        return
    assert len(value) <= MAX_TAG_LENGTH and all(c.isascii() and (c.isalnum() or c in "_-") for c in value)
    assert key_of_tag(value) == key


def test_a_key_too_long_for_a_tag_is_not_tagged() -> None:
    assert ledger_tag("campaign#c#" + "m" * 181) is None
    assert ledger_tag("campaign#c#" + "m" * 180) is not None


@pytest.mark.parametrize("value", ["", "not base64!", ledger_tag("wh#hook#x"), ledger_tag("test#a@b.c"),
                                   "Y2FtcGFpZ24jYw==", "x" * 300])
def test_a_tag_that_is_not_one_of_our_ledger_keys_names_no_claim(value: str | None) -> None:
    assert key_of_tag(value or "") is None


def test_every_campaign_and_segment_email_carries_its_ledger_key_and_a_test_send_none() -> None:
    ses = Ses()
    send(ses, InMemoryEffectLedger())
    change = MembershipChange("vip", "p1", Change.ENTERED, "r1", "2026-11-30T10:00:00Z")

    class Contacts:
        def contacts(self, ids: list[str]) -> dict[str, Contact]:
            return {"p1": Contact("p1", "p1@shop.test")}

    activate_change(change, contacts=Contacts(), ledger=InMemoryEffectLedger(), setup=setup(ses),
                    templates={"vip": CAMPAIGN.template}, now=NOW)
    send_test(CAMPAIGN, ["me@shop.test"], setup=setup(ses), now=NOW)
    campaign_tags, segment_tags, test_tags = (a.tags for a in ses.accepted)
    assert key_of_tag(campaign_tags[LEDGER_TAG]) == KEY
    assert key_of_tag(segment_tags[LEDGER_TAG]) == effect_key(change)
    assert LEDGER_TAG not in test_tags


# ---------------------------------------------------------------- the crash matrix, after SES accepted


def test_died_after_ses_accepted_the_send_event_within_the_hold_makes_the_redelivery_a_duplicate() -> None:
    # Given a sender that died between SES accepting and mark_sent
    clock, ses = Clock(), Ses()
    ledger = SentThenCrash(clock=clock)
    with pytest.raises(Crash):
        send(ses, ledger)
    # When SES's Send event arrives (within the hold)
    report = feedback(ses, ledger)
    # Then the claim is sent with SES's id, and every redelivery, in or after the hold, is a duplicate
    assert report.confirmed == 1 and ledger.items[KEY]["state"] == "sent"
    assert ledger.items[KEY]["provider_id"] == "ses-1"
    assert send(ses, ledger).duplicates == [KEY]
    clock.now += 600
    assert send(ses, ledger).duplicates == [KEY]
    assert len(ses.accepted) == 1


def test_died_after_ses_accepted_a_redelivery_before_the_send_event_is_still_in_flight() -> None:
    clock, ses = Clock(), Ses()
    ledger = SentThenCrash(clock=clock)
    with pytest.raises(Crash):
        send(ses, ledger)
    with pytest.raises(EffectInFlight):
        send(ses, ledger)  # within the hold: retried later, by when the Send event has come
    feedback(ses, ledger)
    assert send(ses, ledger).duplicates == [KEY] and len(ses.accepted) == 1


def test_a_send_event_later_than_the_hold_and_the_takeover_is_the_remaining_two() -> None:
    # Given a sender that died after SES accepted, and no Send event within the hold
    clock, ses = Clock(), Ses()
    ledger = SentThenCrash(clock=clock)
    with pytest.raises(Crash):
        send(ses, ledger)
    clock.now += 300
    # When a redelivery takes the claim over and sends, and only then the first Send event arrives
    send(ses, ledger)
    first_event = sns(send_event(ses.accepted[0].ses_id, ses.accepted[0].tags))
    report = process(first_event, sink=Sink(), now=NOW, ledger=ledger)
    # Then two emails (the documented remainder), the claim keeps the second's id, and no third
    assert len(ses.accepted) == 2 and report.already == 1
    assert ledger.items[KEY]["state"] == "sent" and ledger.items[KEY]["provider_id"] == "ses-2"
    clock.now += 600
    assert send(ses, ledger).duplicates == [KEY] and len(ses.accepted) == 2


def test_a_send_event_for_a_claim_already_taken_over_marks_it_sent_and_the_holder_cannot_reopen_it() -> None:
    # Given a sender that died after SES accepted; the hold expired; a redelivery took the claim over
    clock, ses = Clock(), Ses()
    ledger = SentThenCrash(clock=clock)
    with pytest.raises(Crash):
        send(ses, ledger)
    clock.now += 300
    assert ledger.claim(KEY) == "acquired" and ledger.items[KEY]["attempts"] == 2
    # When the first message's Send event arrives while the new holder is about to send
    assert feedback(ses, ledger).confirmed == 1
    # Then whatever the holder ends with cannot reopen it: SES refused -> release is a no-op
    ledger.release(KEY)
    ledger.mark_failed(KEY, "InvalidParameterValue")
    assert ledger.items[KEY]["state"] == "sent" and ledger.items[KEY]["provider_id"] == "ses-1"
    # and no later delivery sends: one email
    clock.now += 600
    assert send(ses, ledger).duplicates == [KEY] and len(ses.accepted) == 1


def test_marking_sent_failed_with_the_process_alive_is_repaired_by_the_send_event() -> None:
    clock, ses = Clock(), Ses()
    ledger = CannotRecord(clock=clock)
    first = send(ses, ledger)
    assert first.unrecorded == [KEY]
    feedback(ses, ledger)
    clock.now += 600  # a stray duplicate message after the hold
    assert InMemoryEffectLedger.claim(ledger, KEY) == "sent" and len(ses.accepted) == 1


def test_an_unknown_outcome_that_ses_accepted_is_confirmed_and_never_sent_again() -> None:
    clock = Clock()
    ledger, ses = InMemoryEffectLedger(clock=clock), Ses(SendOutcomeUnknown("read timeout"), accepted_then=True)
    with pytest.raises(SendOutcomeUnknown):
        send(ses, ledger)
    feedback(ses, ledger)
    clock.now += 600
    assert send(ses, ledger).duplicates == [KEY] and len(ses.accepted) == 1


def test_an_unknown_outcome_that_ses_never_accepted_has_no_send_event_and_the_takeover_sends_once() -> None:
    clock = Clock()
    ledger, ses = InMemoryEffectLedger(clock=clock), Ses(SendOutcomeUnknown("read timeout"), accepted_then=False)
    with pytest.raises(SendOutcomeUnknown):
        send(ses, ledger)
    assert feedback(ses, ledger).confirmed == 0
    clock.now += 300
    assert send(ses, ledger).sent == [KEY] and len(ses.accepted) == 1


def test_an_exhausted_claim_whose_message_ses_accepted_is_confirmed_sent() -> None:
    clock = Clock()
    ledger = InMemoryEffectLedger(clock=clock)
    ses = Ses(SendOutcomeUnknown("read timeout"), SendOutcomeUnknown("read timeout"), accepted_then=True)
    for _ in range(2):
        with pytest.raises(SendOutcomeUnknown):
            send(ses, ledger)
        clock.now += 300
    assert send(ses, ledger).skipped == {KEY: "outcome_unknown"}
    assert feedback(ses, ledger).confirmed == 1 and send(ses, ledger).duplicates == [KEY]


# ---------------------------------------------------------------- never downgrade, never create


def test_a_send_event_never_rewrites_a_sent_or_failed_claim_nor_creates_one() -> None:
    ledger = InMemoryEffectLedger()
    ledger.claim("campaign#a#1#p")
    ledger.mark_sent("campaign#a#1#p", "ses-own")
    ledger.claim("campaign#b#1#p")
    ledger.mark_failed("campaign#b#1#p", "InvalidParameterValue")
    events = sns(*[send_event(f"ses-{k}", {LEDGER_TAG: ledger_tag(k) or ""})
                   for k in ("campaign#a#1#p", "campaign#b#1#p", "campaign#c#1#p")])
    report = process(events, sink=Sink(), now=NOW, ledger=ledger)
    assert report.confirmed == 0 and report.already == 3
    assert ledger.items["campaign#a#1#p"]["provider_id"] == "ses-own"
    assert ledger.items["campaign#b#1#p"]["state"] == "failed" and "campaign#c#1#p" not in ledger.items


def test_a_redelivered_send_event_is_a_no_op_and_still_written_to_the_stream_once_per_message_id() -> None:
    ledger, ses = SentThenCrash(), Ses()
    with pytest.raises(Crash):
        send(ses, ledger)
    sinks = [Sink(), Sink()]
    reports = [process(ses.send_events(), sink=sink, now=NOW, ledger=ledger) for sink in sinks]
    assert [r.confirmed for r in reports] == [1, 0] and reports[1].already == 1
    assert len(sinks[0].records) == len(sinks[1].records) == 1  # the same messageId: unify dedupes


def test_a_ledger_failure_fails_the_invocation_so_sns_retries() -> None:
    class Down(InMemoryEffectLedger):
        def confirm_sent(self, key: str, provider_id: str) -> bool:
            raise StoreError("throttled", retryable=True)

    ledger, ses = Down(), Ses()
    send(ses, ledger)
    with pytest.raises(StoreError):
        process(ses.send_events(), sink=Sink(), now=NOW, ledger=ledger)


def test_only_send_events_touch_the_ledger() -> None:
    ledger, ses = SentThenCrash(), Ses()
    with pytest.raises(Crash):
        send(ses, ledger)
    [accepted] = ses.accepted
    ses_id, tags = accepted.ses_id, accepted.tags
    delivery = send_event(ses_id, tags) | {"eventType": "Delivery", "delivery": {"recipients": ["p1@shop.test"]}}
    process(sns(delivery), sink=Sink(), now=NOW, ledger=ledger)
    assert ledger.items[KEY]["state"] == "pending"
