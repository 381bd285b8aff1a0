"""Campaign files, templates, eligibility, unsubscribe links and the once-per-(campaign, run, person) send."""

from __future__ import annotations

import email
from datetime import UTC, datetime, timedelta
from email import policy as email_policy
from pathlib import Path
from urllib.parse import parse_qsl, urlparse

import pytest

from cdp.activation import InMemoryEffectLedger
from cdp.campaigns.definition import check_segments, load_campaigns, parse_campaign
from cdp.campaigns.eligibility import PastSend, Policy, Recipient, next_allowed, skip_reason
from cdp.campaigns.render import render
from cdp.campaigns.send import EmailSetup, deliver, dry_run, message_key
from cdp.campaigns.unsubscribe import UnsubscribeLink, opt_out_event, unsubscribe_url, verify_link
from cdp.errors import EffectInFlight, EmailNotSent, InvalidCampaign, SendOutcomeUnknown, Unauthorized
from cdp.identity.computed import event_consent
from cdp.privacy.consent import may_contact
from tests.unit.email_fakes import Clock, Crash, RecordingSes, SentThenCrash

ROOT = Path(__file__).resolve().parents[2]
NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)

BASE = """\
name: winback
kind: automated
channel: email
consent: email
audience: {segment: lapsed-buyers}
template:
  subject: "We miss you, {{ first_name }}"
  text: "Hi {{ first_name }}, come back."
"""


def setup(provider: RecordingSes) -> EmailSetup:
    return EmailSetup(sender_address="news@shop.test", provider=provider,
                      unsubscribe_base_url="https://api.shop.test/v1api", link_key=lambda: "s3cret")


def person(pid: str = "p1", **traits: object) -> Recipient:
    return Recipient(profile_id=pid, email=f"{pid}@shop.test", consent={}, traits=traits)


# ---------------------------------------------------------------- files


def test_the_shipped_campaigns_validate_against_the_shipped_segments() -> None:
    from cdp.segments.catalog import all_segments

    campaigns = load_campaigns(ROOT / "campaigns")
    check_segments(campaigns, [s.name for s in all_segments(ROOT / "segments")])
    assert {c.kind for c in campaigns} == {"automated", "triggered", "adhoc"}


@pytest.mark.parametrize(("change", "where"), [
    ("kind: automated", "c.yaml:2: kind: must be one of"),
    ("channel: email", "c.yaml:3: channel: must be one of"),
    ("audience: {segment: lapsed-buyers}", "c.yaml:5: audience: an adhoc campaign is sent once"),
])
def test_an_invalid_campaign_file_names_its_line_and_field(change: str, where: str) -> None:
    broken = {"kind: automated": "kind: weekly", "channel: email": "channel: pigeon",
              "audience: {segment: lapsed-buyers}": "audience: {segment: lapsed-buyers, when: entry}"}[change]
    text = BASE.replace(change, broken)
    if "adhoc" in where:
        text = text.replace("kind: automated", "kind: adhoc")
    with pytest.raises(InvalidCampaign) as caught:
        parse_campaign(text, "c.yaml")
    assert str(caught.value).startswith(where)


def test_a_duplicate_key_and_a_template_that_does_not_compile_are_refused_with_their_line() -> None:
    with pytest.raises(InvalidCampaign, match=r"^c.yaml:4: channel: duplicate key"):
        parse_campaign(BASE.replace("consent: email", "channel: email"), "c.yaml")
    with pytest.raises(InvalidCampaign, match=r"^c.yaml:7: template.subject: template does not compile"):
        parse_campaign(BASE.replace("{{ first_name }}\"\n  text", "{{ first_name \"\n  text"), "c.yaml")


def test_a_triggered_campaign_reads_its_event_filters_delay_and_unless() -> None:
    text = BASE.replace("kind: automated", "kind: triggered").replace(
        "audience: {segment: lapsed-buyers}",
        "trigger: {event: Checkout Started, where: [{property: currency, eq: EUR}], delay_minutes: 60,"
        " unless: [Order Completed]}")
    trigger = parse_campaign(text, "c.yaml").trigger
    assert trigger is not None and trigger.delay_minutes == 60 and trigger.unless == ("Order Completed",)
    assert trigger.matches({"type": "track", "event": "Checkout Started", "properties": {"currency": "EUR"}})
    assert not trigger.matches({"type": "track", "event": "Checkout Started", "properties": {"currency": "USD"}})


def test_an_audience_naming_an_unknown_segment_is_refused() -> None:
    with pytest.raises(InvalidCampaign, match="no segment named 'lapsed-buyers'"):
        check_segments([parse_campaign(BASE, "c.yaml")], ["repeat-buyers"])


# ---------------------------------------------------------------- templates


def test_html_escapes_every_trait_and_text_keeps_it() -> None:
    template = parse_campaign(BASE.replace('text: "Hi', 'html: "<p>Hi {{ first_name }}</p>"\n  text: "Hi'),
                              "c.yaml").template
    out = render(template, {"first_name": "<script>x</script>"}, unsubscribe_url="https://u")
    assert "<script>" not in out.html and "&lt;script&gt;" in out.html
    assert out.text.startswith("Hi <script>x</script>")


def test_a_missing_trait_renders_its_documented_fallback_never_a_blank() -> None:
    template = parse_campaign(BASE.replace("come back.", "your plan is {{ plan }}."), "c.yaml").template
    out = render(template, {"first_name": "  "}, unsubscribe_url="https://u")
    assert out.subject == "We miss you, there" and out.text == "Hi there, your plan is -."


# ---------------------------------------------------------------- eligibility


def test_consent_denied_for_the_purpose_or_for_marketing_refuses_contact() -> None:
    assert may_contact({}, "email")
    assert not may_contact({"email": False}, "email")
    assert not may_contact({"marketing": False}, "email")
    assert may_contact({"ads": False}, "email")


@pytest.mark.parametrize(("recipient", "history", "suppressed", "reason"), [
    (Recipient("p1", None, {}, {}), [], (), "no_email"),
    (Recipient("p1", None, {}, {"email": "bad"}, unvalidated_email=True), [], (), "no_valid_email"),
    (Recipient("p1", "a@shop.test", {"email": False}, {}), [], (), "no_consent"),
    (Recipient("p1", "a@shop.test", {}, {}), [], {"a@shop.test"}, "suppressed"),
    (Recipient("p1", "a@shop.test", {}, {}), [PastSend("winback", NOW - timedelta(hours=2))], (), "frequency_cap"),
    (Recipient("p1", "a@shop.test", {}, {}), [PastSend("other", NOW - timedelta(days=1))] * 3, (), "global_cap"),
    (Recipient("p1", "a@shop.test", {}, {}), [PastSend("other", NOW - timedelta(days=8))] * 3, (), None),
])
def test_each_skip_reason(recipient: Recipient, history: list[PastSend], suppressed: set[str],
                          reason: str | None) -> None:
    campaign = parse_campaign(BASE, "c.yaml")
    assert skip_reason(campaign, recipient, now=NOW, history=history, suppressed=suppressed,
                       policy=Policy()) == reason


def test_quiet_hours_follow_the_persons_timezone_and_end_at_the_local_end_time() -> None:
    campaign = parse_campaign(BASE + 'quiet_hours: {start: "21:00", end: "08:00", timezone: UTC}\n', "c.yaml")
    tokyo = Recipient("p1", "a@shop.test", {}, {"timezone": "Asia/Tokyo"})  # 21:00 there at 12:00 UTC
    nowhere = Recipient("p2", "b@shop.test", {}, {"timezone": "Mars/Olympus"})  # invalid: the campaign's UTC
    assert skip_reason(campaign, tokyo, now=NOW, history=[], suppressed=(), policy=Policy()) == "quiet_hours"
    assert skip_reason(campaign, nowhere, now=NOW, history=[], suppressed=(), policy=Policy()) is None
    assert campaign.quiet_hours is not None
    assert next_allowed(campaign.quiet_hours, tokyo.traits, NOW, Policy()) == datetime(2026, 11, 30, 23, 0, tzinfo=UTC)


# ---------------------------------------------------------------- unsubscribe links


def test_an_unsubscribe_link_verifies_and_a_tampered_or_expired_one_does_not() -> None:
    link = UnsubscribeLink("p1", "winback", "email")
    params = dict(parse_qsl(urlparse(unsubscribe_url("https://x/v1api", link, "k", now=1000)).query))
    assert verify_link(params, "k", now=2000) == link
    with pytest.raises(Unauthorized, match="link_invalid"):
        verify_link({**params, "p": "p2"}, "k", now=2000)
    with pytest.raises(Unauthorized, match="link_invalid"):
        verify_link(params, "another key", now=2000)
    with pytest.raises(Unauthorized, match="link_expired"):
        verify_link(params, "k", now=1000 + 61 * 86400)


def test_the_opt_out_event_denies_the_purpose_the_way_unify_reads_consent() -> None:
    event = opt_out_event(UnsubscribeLink("p1", "winback", "email"), "a@shop.test", method="one-click")
    assert event_consent(event) == {"email": False}
    assert event["messageId"] == opt_out_event(UnsubscribeLink("p1", "winback", "email"), "a@shop.test",
                                               method="page")["messageId"]


# ---------------------------------------------------------------- sending once


def test_one_send_carries_the_one_click_unsubscribe_headers_and_both_bodies() -> None:
    provider = RecordingSes()
    report = deliver(parse_campaign(BASE, "c.yaml"), person(first_name="Ada"), run_id="r1", now=NOW,
                     ledger=InMemoryEffectLedger(), setup=setup(provider))

    message = email.message_from_bytes(provider.raw[0], policy=email_policy.default)
    assert report.sent == [message_key("winback", "r1", "p1")]
    assert b"\r\nList-Unsubscribe: <https://api.shop.test/v1api/v1/unsubscribe?p=p1&c=winback" in provider.raw[0]
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    url = str(message["List-Unsubscribe"]).strip("<>")
    assert url.startswith("https://api.shop.test/v1api/v1/unsubscribe?")
    assert verify_link(dict(parse_qsl(urlparse(url).query)), "s3cret", now=NOW.timestamp()).profile_id == "p1"
    assert message["Subject"] == "We miss you, Ada"
    types = [part.get_content_type() for part in message.iter_parts()]
    assert types == ["text/plain", "text/html"]


def test_a_skipped_person_is_counted_by_reason_and_nothing_is_claimed() -> None:
    ledger, provider = InMemoryEffectLedger(), RecordingSes()
    report = deliver(parse_campaign(BASE, "c.yaml"), Recipient("p1", "a@shop.test", {"email": False}, {}),
                     run_id="r1", now=NOW, ledger=ledger, setup=setup(provider))
    assert report.skipped_by_reason() == {"no_consent": 1} and not ledger.items and not provider.raw


def test_a_dry_run_lists_who_gets_what_and_counts_skips_without_sending() -> None:
    result = dry_run(parse_campaign(BASE, "c.yaml"),
                     [person("p1", first_name="Ada"), Recipient("p2", None, {}, {}),
                      Recipient("p3", "c@shop.test", {"marketing": False}, {})], now=NOW)
    assert result.would_send == [("p1", "p1@shop.test", "We miss you, Ada")]
    assert dict(result.skipped) == {"no_email": 1, "no_consent": 1}


# The crash matrix of a campaign send (docs/architecture.md): each cell, then the retry.

def _send(provider: RecordingSes, ledger: InMemoryEffectLedger, run: str = "once"):  # type: ignore[no-untyped-def]
    return deliver(parse_campaign(BASE, "c.yaml"), person(), run_id=run, now=NOW, ledger=ledger,
                   setup=setup(provider))


class ClaimThenCrash(InMemoryEffectLedger):
    def claim(self, key: str):  # type: ignore[no-untyped-def]
        result = super().claim(key)
        if not getattr(self, "crashed", False):
            self.crashed = True
            raise Crash
        return result


def test_a_retried_adhoc_run_never_sends_twice() -> None:
    ledger, provider = InMemoryEffectLedger(), RecordingSes()
    _send(provider, ledger)
    report = _send(provider, ledger)
    assert len(provider.raw) == 1 and report.duplicates == [message_key("winback", "once", "p1")]


def test_a_redelivery_after_the_journal_recorded_the_send_is_a_duplicate_not_a_capped_skip() -> None:
    # Given the message sent and journalled (the cap, 1 a day, counts it)
    ledger, provider = InMemoryEffectLedger(), RecordingSes()
    _send(provider, ledger)
    key = message_key("winback", "once", "p1")
    journalled = [PastSend("winback", NOW, key=key)]
    # When the same message is delivered again (any kind of campaign: entry, tick, trigger)
    report = deliver(parse_campaign(BASE, "c.yaml"), person(), run_id="once", now=NOW, ledger=ledger,
                     setup=setup(provider), history=journalled)
    # Then the ledger reports it a duplicate; another message of the campaign is still capped
    assert report.duplicates == [key] and report.skipped == {} and len(provider.raw) == 1
    other = deliver(parse_campaign(BASE, "c.yaml"), person(), run_id="next", now=NOW, ledger=ledger,
                    setup=setup(provider), history=journalled)
    assert other.skipped == {message_key("winback", "next", "p1"): "frequency_cap"}


def test_a_new_run_of_the_same_campaign_is_a_new_message() -> None:
    ledger, provider = InMemoryEffectLedger(), RecordingSes()
    _send(provider, ledger, "r1")
    _send(provider, ledger, "r2")
    assert len(provider.raw) == 2


def test_crash_after_the_claim_then_retry_after_the_hold_sends_once() -> None:
    clock, provider = Clock(), RecordingSes()
    ledger = ClaimThenCrash(hold_s=300, max_attempts=2, clock=clock)
    with pytest.raises(Crash):
        _send(provider, ledger)
    with pytest.raises(EffectInFlight):
        _send(provider, ledger)
    clock.now += 300
    _send(provider, ledger)
    assert len(provider.raw) == 1


def test_a_refusal_during_the_send_releases_the_claim_and_the_retry_sends_once() -> None:
    ledger, provider = InMemoryEffectLedger(), RecordingSes(EmailNotSent("throttled", retryable=True, code="Throttling"))
    with pytest.raises(EmailNotSent):
        _send(provider, ledger)
    _send(provider, ledger)
    assert len(provider.raw) == 1


def test_an_unknown_outcome_waits_for_the_hold_and_sends_at_most_once_more() -> None:
    clock = Clock()
    ledger = InMemoryEffectLedger(hold_s=300, max_attempts=2, clock=clock)
    provider = RecordingSes(SendOutcomeUnknown("read timeout"), accepted_then=True)
    with pytest.raises(SendOutcomeUnknown):
        _send(provider, ledger)
    with pytest.raises(EffectInFlight):
        _send(provider, ledger)
    clock.now += 300
    _send(provider, ledger)
    clock.now += 300
    _send(provider, ledger)
    assert len(provider.raw) == 2  # the documented worst case: SES has no idempotency token


def test_crash_after_marking_sent_is_never_sent_again() -> None:
    clock, provider = Clock(), RecordingSes()
    ledger = SentThenCrash(hold_s=300, max_attempts=2, clock=clock)
    with pytest.raises(Crash):
        _send(provider, ledger)  # sent, then died before marking: the documented 2 at worst
    clock.now += 300
    _send(provider, ledger)
    clock.now += 300
    report = _send(provider, ledger)
    assert len(provider.raw) == 2 and report.duplicates


def test_a_permanent_refusal_is_reported_and_never_retried() -> None:
    ledger = InMemoryEffectLedger()
    provider = RecordingSes(EmailNotSent("bad", retryable=False, code="InvalidParameterValue"))
    first = _send(provider, ledger)
    second = _send(provider, ledger)
    assert first.failed and second.duplicates and not provider.raw
