"""Activation sends one email per segment entry, and only to reachable, consenting contacts."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime

import pytest

from cdp.activation import (
    ActivationReport,
    Contact,
    InMemoryEffectLedger,
    activate_change,
    contact_from_profile,
    effect_key,
)
from cdp.campaigns.definition import Template
from cdp.campaigns.send import EmailSetup
from cdp.errors import EffectInFlight, EmailNotSent, SendOutcomeUnknown, StoreError
from cdp.segments.membership import MembershipChange
from tests.unit.email_fakes import Clock, Crash, SentThenCrash


def Ledger(clock: Clock | None = None) -> InMemoryEffectLedger:  # noqa: N802 - reads as the fake it is
    return InMemoryEffectLedger(hold_s=300, max_attempts=2, clock=clock or Clock())


class Sender:
    """Records what reached the provider; ``errors`` are raised by the next calls, in order.

    An error raised *after* the provider accepted (``accepted_then``) still counts as reaching it.
    """

    def __init__(self, *errors: BaseException, accepted_then: bool = False) -> None:
        self.sent: list[str] = []
        self.raw: list[bytes] = []
        self.errors = list(errors)
        self.accepted_then = accepted_then

    def send_raw(self, *, to: str, raw: bytes, tags: Mapping[str, str]) -> str:
        self.raw.append(raw)
        if self.errors:
            error = self.errors.pop(0)
            if self.accepted_then:
                self.sent.append(to)
            raise error
        self.sent.append(to)
        return f"ses-{len(self.sent)}"


class Directory:
    def __init__(self, *contacts: Contact) -> None:
        self.by_id = {c.profile_id: c for c in contacts}

    def contacts(self, profile_ids: list[str]) -> dict[str, Contact]:
        return {p: self.by_id[p] for p in profile_ids if p in self.by_id}


TEMPLATES = {"vip": Template(subject="Hi {{ first_name }}", text="Welcome, {{ first_name }}. {{ unsubscribe_url }}")}


def mail(sender: Sender) -> EmailSetup:
    return EmailSetup("news@shop.test", sender, "https://api.shop.test/v1api", lambda: "s3cret")


def entered(pid: str = "p1", run: str = "r1") -> MembershipChange:
    return MembershipChange(segment="vip", profile_id=pid, change="entered", run_id=run, at="2026-11-20T00:00:00Z")


def test_an_entry_sends_one_email_to_the_profiles_address() -> None:
    sender = Sender()
    report = activate_change(entered(), contacts=Directory(Contact("p1", "a@x.io")), ledger=Ledger(),
                             setup=mail(sender), templates=TEMPLATES)
    assert sender.sent == ["a@x.io"] and report.sent == [effect_key(entered())]


def test_the_same_entry_delivered_twice_sends_once() -> None:
    sender, ledger, directory = Sender(), Ledger(), Directory(Contact("p1", "a@x.io"))
    for _ in range(2):
        report = activate_change(entered(), contacts=directory, ledger=ledger, setup=mail(sender), templates=TEMPLATES)
    assert sender.sent == ["a@x.io"] and report.duplicates == [effect_key(entered())]


def test_a_new_entry_after_an_exit_sends_again() -> None:
    sender, ledger, directory = Sender(), Ledger(), Directory(Contact("p1", "a@x.io"))
    activate_change(entered(run="r1"), contacts=directory, ledger=ledger, setup=mail(sender), templates=TEMPLATES)
    activate_change(entered(run="r9"), contacts=directory, ledger=ledger, setup=mail(sender), templates=TEMPLATES)
    assert sender.sent == ["a@x.io", "a@x.io"]


def test_a_contact_without_consent_gets_nothing_and_the_reason_is_reported() -> None:
    sender = Sender()
    report = activate_change(entered(), contacts=Directory(Contact("p1", "a@x.io", email_consent=False)),
                             ledger=Ledger(), setup=mail(sender), templates=TEMPLATES)
    assert sender.sent == [] and report.skipped == {effect_key(entered()): "no_consent"}


def test_a_profile_without_email_is_skipped_with_a_reason() -> None:
    report = activate_change(entered(), contacts=Directory(), ledger=Ledger(), setup=mail(Sender()), templates=TEMPLATES)
    assert report.skipped == {effect_key(entered()): "no_email"}


def test_an_exit_sends_nothing() -> None:
    exited = MembershipChange(segment="vip", profile_id="p1", change="exited", run_id="r2", at="x")
    sender = Sender()
    activate_change(exited, contacts=Directory(Contact("p1", "a@x.io")), ledger=Ledger(), setup=mail(sender),
                    templates=TEMPLATES, report=ActivationReport())
    assert sender.sent == []


def test_contact_from_profile_reads_email_identifier_and_unsubscribe_trait() -> None:
    contact = contact_from_profile({"profile_id": "p", "identifiers": {"email": ["email:z@x.io"]},
                                    "traits": {"unsubscribed": True, "first_name": "Zoe"}})
    assert contact == Contact("p", "z@x.io", email_consent=False, name="Zoe",
                              traits={"unsubscribed": True, "first_name": "Zoe"})


def test_contact_from_profile_honours_a_denied_email_consent() -> None:
    contact = contact_from_profile({"profile_id": "p", "identifiers": {"email": ["a@x.io"]},
                                    "consent": {"email": False}})
    assert contact.email_consent is False


def test_a_segment_without_a_channel_sends_nothing_and_says_why() -> None:
    sender = Sender()
    report = activate_change(entered(), contacts=Directory(Contact("p1", "a@x.io")), ledger=Ledger(),
                             setup=mail(sender), templates={})
    assert sender.sent == [] and report.skipped == {effect_key(entered()): "no_channel"}


def test_the_shipped_activation_config_has_a_template_per_listed_segment() -> None:
    from pathlib import Path

    from cdp.activation import load_email_templates

    templates = load_email_templates(Path(__file__).resolve().parents[2] / "config" / "activation.yaml")
    assert set(templates) == {"repeat-buyers", "pro-plan-engaged", "lapsed-buyers"}
    assert all("{{ unsubscribe_url }}" in t.text for t in templates.values())


def test_an_activation_config_entry_without_a_subject_is_a_clear_error(tmp_path) -> None:
    from cdp.activation import load_email_templates
    from cdp.errors import InvalidConfig

    bad = tmp_path / "activation.yaml"
    bad.write_text("email:\n  vip: {text: hello}\n")
    with pytest.raises(InvalidConfig, match=r"activation.yaml:2: email.vip: subject: is required"):
        load_email_templates(bad)


# ---------------------------------------------------------------- validated addresses only


def test_the_address_is_the_profiles_email_identifier_never_the_raw_trait() -> None:
    contact = contact_from_profile({"profile_id": "p", "identifiers": {"email": ["ada@x.io"]},
                                    "traits": {"email": "Someone.Else@Other.io"}})
    assert contact.email == "ada@x.io"


def test_a_profile_with_only_an_invalid_trait_email_is_skipped_as_no_valid_email() -> None:
    contact = contact_from_profile({"profile_id": "p1", "identifiers": {}, "traits": {"email": "not-an-address"}})
    sender = Sender()

    report = activate_change(entered(), contacts=Directory(contact), ledger=Ledger(), setup=mail(sender),
                             templates=TEMPLATES)

    assert sender.sent == [] and report.skipped == {effect_key(entered()): "no_valid_email"}


def test_an_identifier_that_does_not_normalise_as_an_email_is_not_used() -> None:
    contact = contact_from_profile({"profile_id": "p", "identifiers": {"email": ["email:broken", "ok@x.io"]}})
    assert contact.email == "ok@x.io"


# ---------------------------------------------------------------- the crash matrix
# Each cell: what happened to the first delivery, then what its redelivery (SQS retries the
# message) does before and after the claim's hold (300 s) expires.

def _activate(sender: Sender, ledger: InMemoryEffectLedger, contacts: object = None) -> ActivationReport:
    return activate_change(entered(), contacts=contacts or Directory(Contact("p1", "a@x.io")), ledger=ledger,
                           setup=mail(sender), templates=TEMPLATES)


class ClaimThenCrash(InMemoryEffectLedger):
    def claim(self, key: str):  # type: ignore[no-untyped-def]
        result = super().claim(key)
        if not getattr(self, "crashed", False):
            self.crashed = True
            raise Crash
        return result


class DirectoryThenCrash(Directory):
    calls = 0

    def contacts(self, profile_ids: list[str]) -> dict[str, Contact]:
        self.calls += 1
        if self.calls == 1:
            raise Crash
        return super().contacts(profile_ids)


def test_crash_before_the_claim_then_redelivery_sends_once() -> None:
    sender, ledger, directory = Sender(), Ledger(), DirectoryThenCrash(Contact("p1", "a@x.io"))
    with pytest.raises(Crash):
        _activate(sender, ledger, directory)

    _activate(sender, ledger, directory)

    assert sender.sent == ["a@x.io"]


def test_crash_after_the_claim_before_sending_waits_for_the_hold_then_sends_once() -> None:
    clock, sender = Clock(), Sender()
    ledger = ClaimThenCrash(hold_s=300, max_attempts=2, clock=clock)
    with pytest.raises(Crash):
        _activate(sender, ledger)

    with pytest.raises(EffectInFlight):
        _activate(sender, ledger)  # redelivered within the hold: the holder might still be sending
    clock.now += 300
    report = _activate(sender, ledger)

    assert sender.sent == ["a@x.io"] and report.sent == [effect_key(entered())]


def test_an_unknown_outcome_keeps_the_claim_pending_and_sends_at_most_once_more_after_the_hold() -> None:
    clock = Clock()
    ledger, sender = Ledger(clock), Sender(SendOutcomeUnknown("read timeout"), accepted_then=True)
    with pytest.raises(SendOutcomeUnknown):
        _activate(sender, ledger)

    with pytest.raises(EffectInFlight):
        _activate(sender, ledger)
    clock.now += 300
    _activate(sender, ledger)
    clock.now += 300
    last = _activate(sender, ledger)

    assert sender.sent == ["a@x.io", "a@x.io"]  # SES has no idempotency token: the honest bound is two
    assert last.duplicates == [effect_key(entered())]


def test_two_unknown_outcomes_exhaust_the_claim_and_a_third_send_never_happens() -> None:
    clock = Clock()
    unknown = SendOutcomeUnknown("connection reset")
    ledger, sender = Ledger(clock), Sender(unknown, unknown, accepted_then=True)
    for _ in range(2):
        with pytest.raises(SendOutcomeUnknown):
            _activate(sender, ledger)
        clock.now += 300

    report = _activate(sender, ledger)

    assert len(sender.sent) == 2 and report.skipped == {effect_key(entered()): "outcome_unknown"}


def test_an_unexpected_error_from_the_sender_is_treated_as_an_unknown_outcome() -> None:
    ledger, sender = Ledger(), Sender(RuntimeError("bug after the request went out"))
    with pytest.raises(RuntimeError):
        _activate(sender, ledger)

    with pytest.raises(EffectInFlight):
        _activate(sender, ledger)


def test_a_refusal_before_accepting_releases_the_claim_and_the_redelivery_sends_at_once() -> None:
    ledger, sender = Ledger(), Sender(EmailNotSent("throttled", retryable=True, code="Throttling"))
    with pytest.raises(EmailNotSent):
        _activate(sender, ledger)

    report = _activate(sender, ledger)

    assert sender.sent == ["a@x.io"] and report.sent == [effect_key(entered())]


def test_a_released_attempt_does_not_count_against_the_takeover_after_an_unknown_outcome() -> None:
    clock = Clock()
    refused = EmailNotSent("paused", retryable=True, code="AccountSendingPausedException")
    ledger = Ledger(clock)
    with pytest.raises(EmailNotSent):
        _activate(Sender(refused), ledger)
    with pytest.raises(SendOutcomeUnknown):
        _activate(Sender(SendOutcomeUnknown("timeout")), ledger)
    clock.now += 300
    sender = Sender()

    _activate(sender, ledger)

    assert sender.sent == ["a@x.io"]


def test_a_permanent_refusal_marks_the_claim_failed_and_is_never_retried() -> None:
    ledger = Ledger()
    first = _activate(Sender(EmailNotSent("bad address", retryable=False, code="InvalidParameterValue")), ledger)
    sender = Sender()

    again = _activate(sender, ledger)

    assert first.failed == {effect_key(entered()): "InvalidParameterValue"}
    assert sender.sent == [] and again.duplicates == [effect_key(entered())]
    assert ledger.items[effect_key(entered())]["state"] == "failed"


def test_crash_after_sending_before_marking_sent_sends_at_most_once_more_after_the_hold() -> None:
    clock, sender = Clock(), Sender()
    ledger = SentThenCrash(hold_s=300, max_attempts=2, clock=clock)
    with pytest.raises(Crash):
        _activate(sender, ledger)

    with pytest.raises(EffectInFlight):
        _activate(sender, ledger)
    clock.now += 300
    _activate(sender, ledger)
    clock.now += 300
    _activate(sender, ledger)

    assert sender.sent == ["a@x.io", "a@x.io"]


def test_a_ledger_that_cannot_record_the_send_reports_it_sent_and_does_not_ask_for_a_retry() -> None:
    class Unrecordable(InMemoryEffectLedger):
        def mark_sent(self, key: str, provider_id: str) -> None:
            raise StoreError("table unavailable")

    sender = Sender()
    report = _activate(sender, Unrecordable())

    assert sender.sent == ["a@x.io"]
    assert report.sent == report.unrecorded == [effect_key(entered())]


def test_after_marking_sent_every_redelivery_is_a_duplicate_whenever_it_comes() -> None:
    clock, sender = Clock(), Sender()
    ledger = Ledger(clock)
    _activate(sender, ledger)

    for _ in range(3):
        clock.now += 10_000
        assert _activate(sender, ledger).duplicates == [effect_key(entered())]

    assert sender.sent == ["a@x.io"]
    assert ledger.items[effect_key(entered())] | {"hold_until": 0} == {
        "state": "sent", "provider_id": "ses-1", "attempts": 1, "hold_until": 0}


# ---------------------------------------------------------------- what an SES error means


def _client_error(code: str, status: int) -> Exception:
    from botocore.exceptions import ClientError

    return ClientError({"Error": {"Code": code, "Message": "m"}, "ResponseMetadata": {"HTTPStatusCode": status}},
                       "SendEmail")


@pytest.mark.parametrize(("code", "status"), [("MessageRejected", 400), ("MailFromDomainNotVerifiedException", 400),
                                              ("ConfigurationSetDoesNotExist", 400), ("Throttling", 400)])
def test_an_ses_refusal_means_not_sent_and_retryable(code: str, status: int) -> None:
    from cdp.adapters.ses import send_error

    error = send_error(_client_error(code, status))
    assert isinstance(error, EmailNotSent) and error.retryable


def test_an_invalid_message_is_a_permanent_refusal() -> None:
    from cdp.adapters.ses import send_error

    error = send_error(_client_error("InvalidParameterValue", 400))
    assert isinstance(error, EmailNotSent) and not error.retryable


def test_a_5xx_a_read_timeout_or_a_reset_connection_is_an_unknown_outcome() -> None:
    from botocore.exceptions import ConnectionClosedError, ReadTimeoutError

    from cdp.adapters.ses import send_error

    for exc in (_client_error("InternalFailure", 500), ReadTimeoutError(endpoint_url="https://ses"),
                ConnectionClosedError(endpoint_url="https://ses")):
        assert isinstance(send_error(exc), SendOutcomeUnknown)


def test_a_connection_never_made_means_not_sent() -> None:
    from botocore.exceptions import ConnectTimeoutError, EndpointConnectionError

    from cdp.adapters.ses import send_error

    for exc in (ConnectTimeoutError(endpoint_url="https://ses"), EndpointConnectionError(endpoint_url="https://ses")):
        error = send_error(exc)
        assert isinstance(error, EmailNotSent) and error.retryable


# ---------------------------------------------------------------- the one email path


def test_a_segment_email_is_raw_mime_with_the_one_click_headers_escaped_html_and_fallbacks() -> None:
    import email
    import time
    from email import policy
    from urllib.parse import parse_qsl, urlparse

    from cdp.campaigns.unsubscribe import verify_link

    sender = Sender()
    ada = Contact("p1", "a@x.io", traits={"first_name": "<b>Ada</b>"})
    nameless = Contact("p2", "b@x.io")
    directory = Directory(ada, nameless)
    for pid in ("p1", "p2"):
        activate_change(entered(pid), contacts=directory, ledger=Ledger(), setup=mail(sender), templates=TEMPLATES)

    first, second = (email.message_from_bytes(raw, policy=policy.default) for raw in sender.raw)
    assert first["Subject"] == "Hi <b>Ada</b>" and second["Subject"] == "Hi there"
    assert first["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert first["X-CDP-Segment"] == "vip" and first["X-CDP-Campaign"] is None
    html_part = first.get_body(("html",))
    assert html_part is not None and "&lt;b&gt;Ada&lt;/b&gt;" in html_part.get_content()

    url = str(first["List-Unsubscribe"]).strip("<>")
    link = verify_link(dict(parse_qsl(urlparse(url).query)), "s3cret", now=time.time())
    assert (link.profile_id, link.campaign, link.purpose) == ("p1", "segment-vip", "email")


# ---------------------------------------------------------------- one eligibility check for every email path


def test_a_suppressed_address_gets_no_per_segment_email() -> None:
    """The feedback function set ``email_suppressed`` (a hard bounce or a complaint)."""
    contact = contact_from_profile({"profile_id": "p1", "identifiers": {"email": ["email:ada@x.io"]},
                                    "traits": {"email_suppressed": "bounced"}})
    sender, ledger = Sender(), Ledger()

    report = activate_change(entered(), contacts=Directory(contact), ledger=ledger, setup=mail(sender),
                             templates=TEMPLATES)

    assert sender.sent == [] and report.skipped == {effect_key(entered()): "suppressed"}
    assert ledger.items == {}  # nothing claimed: a later unsuppression (a new entry) is not blocked


@pytest.mark.parametrize(("profile", "reason"), [
    ({"identifiers": {}}, "no_email"),
    ({"identifiers": {}, "traits": {"email": "not-an-address"}}, "no_valid_email"),
    ({"identifiers": {"email": ["ada@x.io"]}, "consent": {"email": False}}, "no_consent"),
    ({"identifiers": {"email": ["ada@x.io"]}, "traits": {"unsubscribed": True}}, "no_consent"),
    ({"identifiers": {"email": ["ada@x.io"]}, "traits": {"email_suppressed": "complained"}}, "suppressed"),
    ({"identifiers": {"email": ["ada@x.io"]}, "consent": {"email": False},
      "traits": {"email_suppressed": "bounced"}}, "no_consent"),
    ({"identifiers": {"email": ["ada@x.io"]}}, None),
])
def test_per_segment_emails_and_campaigns_skip_the_same_people_for_the_same_reason(
        profile: dict, reason: str | None) -> None:
    from cdp.campaigns.definition import parse_campaign
    from cdp.campaigns.eligibility import Policy, Recipient, skip_reason

    view = {"profile_id": "p1", **profile}
    campaign = parse_campaign("name: c\nkind: adhoc\nchannel: email\nconsent: email\naudience: {segment: vip}\n"
                              "template: {subject: s, text: t}\n", "c.yaml")
    report = activate_change(entered(), contacts=Directory(contact_from_profile(view)), ledger=Ledger(),
                             setup=mail(Sender()), templates=TEMPLATES)

    assert report.skipped.get(effect_key(entered())) == reason
    assert skip_reason(campaign, Recipient.from_profile(view), now=datetime(2026, 11, 30, 12, tzinfo=UTC),
                       history=[], suppressed=(), policy=Policy()) == reason
