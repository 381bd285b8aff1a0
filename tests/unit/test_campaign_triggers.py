"""Behaviour-triggered campaigns: the feed unify emits, the wait (queue delay or one-time schedule), the
``unless`` check on the profile, merges followed to the survivor, exactly one message per trigger."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from cdp.activation import InMemoryEffectLedger
from cdp.campaigns.definition import check_unless, parse_campaign
from cdp.campaigns.eligibility import Policy
from cdp.campaigns.send import CampaignReport, EmailSetup
from cdp.campaigns.triggers import (
    STALE_AFTER,
    TriggerContext,
    TriggerIndex,
    TriggerMessage,
    emit_triggers,
    on_trigger,
    schedule_name,
    trigger_key,
    unless_traits,
)
from cdp.errors import EffectInFlight, InvalidCampaign
from cdp.identity.computed import ComputedTraits
from cdp.identity.config import ComputedTrait, IdentityConfig
from cdp.identity.profile import Profile
from cdp.profiles.messages import InMemoryMessageJournal

REMINDER = parse_campaign("""\
name: reminder
kind: triggered
channel: email
consent: email
trigger:
  event: Checkout Started
  where: [{property: currency, eq: EUR}]
  delay_minutes: 60
  unless: [Order Completed]
template: {subject: "Hi {{ first_name }}", text: "Your basket"}
""", "reminder.yaml")
QUICK = parse_campaign("""\
name: quick
kind: triggered
channel: email
consent: email
trigger: {event: Checkout Started, delay_minutes: 10}
template: {subject: "Hi", text: "Basket"}
quiet_hours: {start: "21:00", end: "08:00", timezone: UTC}
""", "quick.yaml")
CONFIG = IdentityConfig(computed_traits=(ComputedTrait("last_order_at", "last_time", "Order Completed"),))
NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
AT = "2026-11-30T10:00:00.000Z"  # the checkout, two hours before NOW: its hour's wait is over


def _checkout(message_id: str = "m-1", at: str = AT, currency: str = "EUR") -> dict[str, Any]:
    return {"type": "track", "event": "Checkout Started", "messageId": message_id, "timestamp": at,
            "properties": {"currency": currency}}


def _message(due: str = "2026-11-30T11:00:00.000Z", campaign: str = "reminder", profile: str = "p1") -> TriggerMessage:
    return TriggerMessage(campaign, profile, "m-1", AT, due)


class Profiles:
    def __init__(self, *profiles: Profile) -> None:
        self.by_id = {p.profile_id: p for p in profiles}

    def get_profiles(self, ids: Collection[str]) -> Mapping[str, Any]:
        return {i: self.by_id[i] for i in ids if i in self.by_id}


class Provider:
    def __init__(self, fail_after_accepting: bool = False) -> None:
        self.raw: list[bytes] = []
        self.fail_after_accepting = fail_after_accepting

    def send_raw(self, *, to: str, raw: bytes, tags: Mapping[str, str]) -> str:
        self.raw.append(raw)
        if self.fail_after_accepting:
            raise TimeoutError("the answer was lost")  # SES accepted; the process never learns it
        return "ses-1"


def _ada(last_order: str | None = None, profile_id: str = "p1") -> Profile:
    computed = ComputedTraits({"last_order_at": last_order} if last_order else {})
    return Profile(profile_id, identifiers=["email:ada@shopper.io"], traits={"first_name": "Ada"}, computed=computed)


class Harness:
    def __init__(self, *profiles: Profile, provider: Provider | None = None,
                 ledger: InMemoryEffectLedger | None = None) -> None:
        self.provider = provider or Provider()
        self.schedules: dict[str, tuple[dict[str, Any], datetime]] = {}
        self.journal = InMemoryMessageJournal()
        self.ledger = ledger or InMemoryEffectLedger()
        self.ctx = TriggerContext(
            campaigns={c.name: c for c in (REMINDER, QUICK)}, unless=unless_traits([REMINDER, QUICK], CONFIG),
            profiles=Profiles(*(profiles or (_ada(),))), journal=self.journal, ledger=self.ledger,
            setup=EmailSetup("news@shop.test", self.provider, "https://x/v1api", lambda: "k"), policy=Policy(),
            schedule=lambda name, body, due: self.schedules.setdefault(name, (body, due)))

    def run(self, message: TriggerMessage | dict, now: datetime = NOW) -> tuple[list, CampaignReport]:
        report = CampaignReport()
        body = message.to_body() if isinstance(message, TriggerMessage) else message
        return on_trigger(body, self.ctx, now=now, report=report), report


# ----------------------------------------------------------------------------- the feed (unify)
def test_a_matching_event_of_a_unified_profile_emits_one_trigger_delayed_by_what_is_left_of_its_wait() -> None:
    index = TriggerIndex([REMINDER, QUICK])
    now = datetime(2026, 11, 30, 10, 5, tzinfo=UTC)
    out = emit_triggers([_checkout()], {"m-1": "p1"}, index, now=now)
    by_campaign = {m.campaign: (m, delay) for m, delay in out.messages}
    reminder, delay = by_campaign["reminder"]
    assert reminder == TriggerMessage("reminder", "p1", "m-1", AT, "2026-11-30T11:00:00.000Z")
    assert delay == 0  # 55 minutes left: more than the queue holds, activation makes it a schedule at once
    assert by_campaign["quick"][1] == 301  # 5 minutes left (rounded up): the queue's delay is the wait


def test_filters_event_names_and_unresolved_events_emit_nothing() -> None:
    index = TriggerIndex([REMINDER])
    events = [_checkout("m-usd", currency="USD"), {**_checkout("m-other"), "event": "Product Viewed"},
              _checkout("m-failed")]
    assert emit_triggers(events, {"m-usd": "p1", "m-other": "p1"}, index, now=NOW).messages == []


def test_a_trigger_whose_wait_ended_over_a_day_ago_is_stale_and_not_emitted() -> None:
    old = (NOW - STALE_AFTER - timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    out = emit_triggers([_checkout(at=old)], {"m-1": "p1"}, TriggerIndex([REMINDER]), now=NOW)
    assert out.messages == [] and out.stale == 1


def test_an_unless_event_without_a_last_time_trait_is_refused_by_validation() -> None:
    with pytest.raises(InvalidCampaign, match="trigger.unless: 'Order Completed' needs a computed trait"):
        check_unless([REMINDER], ())
    check_unless([REMINDER], CONFIG.computed_traits)
    with pytest.raises(KeyError):
        unless_traits([REMINDER], IdentityConfig())


# ----------------------------------------------------------------------------- the wait
def test_a_wait_over_15_minutes_becomes_one_deterministically_named_one_time_schedule() -> None:
    h = Harness()
    message = _message(due="2026-11-30T13:00:00.000Z")
    later, report = h.run(message)
    again, _ = h.run(message)  # a redelivery of the same trigger
    assert later == again == [] and not h.provider.raw
    assert h.schedules == {schedule_name(message): (message.to_body(), datetime(2026, 11, 30, 13, 0, tzinfo=UTC))}
    assert len(schedule_name(message)) <= 64 and report.deferred


def test_a_wait_of_15_minutes_or_less_goes_back_on_the_queue_with_that_delay() -> None:
    h = Harness()
    [later], _ = h.run(_message(due="2026-11-30T12:10:00.000Z"))
    assert later.delay_seconds == 601 and later.body == _message(due="2026-11-30T12:10:00.000Z").to_body()
    assert not h.schedules and not h.provider.raw


# ----------------------------------------------------------------------------- the decision
def test_when_the_wait_is_over_the_reminder_is_sent_once_and_journalled() -> None:
    h = Harness()
    _, report = h.run(_message())
    _, again = h.run(_message())  # the scheduler fired twice, or SQS delivered twice
    assert len(h.provider.raw) == 1 and report.sent == [trigger_key("reminder", "m-1")]
    assert not again.sent  # the journal's cap, else the ledger's claim, stops it
    lost_journal = Harness(ledger=h.ledger)  # the journal write was lost: the ledger alone decides
    _, third = lost_journal.run(_message())
    assert third.duplicates == [trigger_key("reminder", "m-1")] and not lost_journal.provider.raw
    [sent] = h.journal.sent_to(["p1"])
    assert sent.segment == "campaign:reminder" and sent.run == "m-1"


def test_an_unless_event_since_the_trigger_cancels_even_if_it_arrived_late() -> None:
    # The order happened 30 minutes after the checkout; whenever it arrived, last_order_at holds it.
    h = Harness(_ada(last_order="2026-11-30T10:30:00.000Z"))
    _, report = h.run(_message())
    assert report.skipped_by_reason() == {"cancelled_unless": 1} and not h.provider.raw


def test_an_unless_event_before_the_trigger_does_not_cancel() -> None:
    h = Harness(_ada(last_order="2026-11-29T10:00:00.000Z"))
    _, report = h.run(_message())
    assert len(report.sent) == 1


def test_a_trigger_on_a_profile_merged_since_is_sent_to_the_surviving_profile() -> None:
    anonymous = Profile("p-anon", merged_into="p1")
    h = Harness(anonymous, _ada())
    _, report = h.run(_message(profile="p-anon"))
    assert report.sent == [trigger_key("reminder", "m-1")]
    assert [m.profile_id for m in h.journal.sent_to(["p1"])] == ["p1"]


def test_the_survivors_unless_state_counts_after_a_merge() -> None:
    h = Harness(Profile("p-anon", merged_into="p1"), _ada(last_order="2026-11-30T10:45:00.000Z"))
    _, report = h.run(_message(profile="p-anon"))
    assert report.skipped_by_reason() == {"cancelled_unless": 1}


def test_a_gone_profile_a_removed_campaign_a_stale_or_malformed_trigger_send_nothing() -> None:
    h = Harness()
    assert h.run(_message(profile="p-erased"))[1].skipped_by_reason() == {"no_profile": 1}
    assert h.run(_message(campaign="retired"))[1].skipped_by_reason() == {"no_campaign": 1}
    assert h.run(_message(), now=NOW + STALE_AFTER)[1].skipped_by_reason() == {"stale": 1}
    assert h.run({"trigger": {"campaign": "reminder", "due": "soon"}})[1].skipped_by_reason() == {"malformed": 1}
    assert not h.provider.raw


def test_quiet_hours_move_the_decision_to_their_end_through_a_schedule() -> None:
    h = Harness()
    night = datetime(2026, 11, 30, 23, 0, tzinfo=UTC)
    message = TriggerMessage("quick", "p1", "m-1", "2026-11-30T22:40:00.000Z", "2026-11-30T22:50:00.000Z")
    later, report = h.run(message, now=night)
    assert later == [] and not h.provider.raw and "quiet_hours" not in report.skipped_by_reason()
    [(body, due)] = h.schedules.values()
    assert due == datetime(2026, 12, 1, 8, 0, tzinfo=UTC) and body["trigger"]["due"] == "2026-12-01T08:00:00.000Z"
    _, morning = h.run(body, now=due + timedelta(seconds=5))
    assert len(h.provider.raw) == 1 and morning.sent


# ----------------------------------------------------------------------------- crash matrix
def test_a_crash_after_ses_accepted_leaves_the_claim_held_so_a_retry_sends_nothing() -> None:
    ledger = InMemoryEffectLedger()
    crashing = Harness(provider=Provider(fail_after_accepting=True), ledger=ledger)
    with pytest.raises(TimeoutError):
        crashing.run(_message())  # the claim stays pending: the queue redelivers
    retry = Harness(ledger=ledger)
    with pytest.raises(EffectInFlight):  # the claim's hold decides; the queue retries later
        retry.run(_message())
    assert len(crashing.provider.raw) == 1 and not retry.provider.raw


def test_a_crash_before_the_send_then_a_retry_sends_once() -> None:
    ledger = InMemoryEffectLedger()
    h = Harness(ledger=ledger)
    h.ctx.profiles.by_id.clear()  # type: ignore[attr-defined]
    assert h.run(_message())[1].skipped_by_reason() == {"no_profile": 1}  # nothing claimed
    h2 = Harness(ledger=ledger)
    _, report = h2.run(_message())
    assert len(h2.provider.raw) == 1 and report.sent


# ----------------------------------------------------------------------------- unify's side of the crash matrix
def _unify(batch: list, publish: Any, store: Any) -> Any:
    from cdp.jobs.unify_job import CampaignTriggers, unify_records

    return unify_records(batch, store, config=CONFIG, now=NOW, triggers=CampaignTriggers(TriggerIndex([REMINDER]), publish))


def _batch() -> list:
    import json

    from cdp.streams import DeliveredRecord

    events = [{**_checkout("m-1"), "userId": "u1"}, {"type": "track", "event": "Page", "messageId": "m-2",
                                                      "userId": "u1", "timestamp": AT}]
    return [DeliveredRecord("shardId-0", str(i + 1), json.dumps(e).encode()) for i, e in enumerate(events)]


def test_unify_emits_a_trigger_and_a_redelivered_batch_emits_the_same_one_again() -> None:
    from cdp.identity.store import InMemoryIdentityStore

    store, published = InMemoryIdentityStore(), []
    first = _unify(_batch(), published.extend, store)
    second = _unify(_batch(), published.extend, store)  # died after publishing, before the checkpoint
    assert first.triggers == second.triggers == 1 and published[0] == published[1]
    assert trigger_key(published[0][0].campaign, published[0][0].message_id) == "campaign#reminder#m-1"


def test_unify_retries_the_trigger_event_when_publishing_fails() -> None:
    from cdp.errors import StoreError
    from cdp.identity.store import InMemoryIdentityStore

    def down(_messages: list) -> None:
        raise StoreError("queue down")

    result = _unify(_batch(), down, InMemoryIdentityStore())
    assert result.retry == ["1"] and result.triggers == 0
