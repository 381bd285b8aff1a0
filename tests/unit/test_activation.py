"""Activation sends one email per segment entry, and only to reachable, consenting contacts."""

from __future__ import annotations

from collections.abc import Mapping

import pytest

from cdp.activation import (
    ActivationReport,
    Contact,
    EmailTemplate,
    activate_change,
    contact_from_profile,
    effect_key,
)
from cdp.segments.membership import MembershipChange


class Ledger:
    def __init__(self) -> None:
        self.keys: set[str] = set()

    def claim(self, key: str) -> bool:
        if key in self.keys:
            return False
        self.keys.add(key)
        return True

    def release(self, key: str) -> None:
        self.keys.discard(key)


class Sender:
    def __init__(self, fail: bool = False) -> None:
        self.sent: list[str] = []
        self.fail = fail

    def send(self, *, to: str, subject: str, text: str, html_body: str, tags: Mapping[str, str]) -> str:
        if self.fail:
            raise RuntimeError("SES down")
        self.sent.append(to)
        return "id"


class Directory:
    def __init__(self, *contacts: Contact) -> None:
        self.by_id = {c.profile_id: c for c in contacts}

    def contacts(self, profile_ids: list[str]) -> dict[str, Contact]:
        return {p: self.by_id[p] for p in profile_ids if p in self.by_id}


TEMPLATES = {"vip": EmailTemplate(subject="Hi {name}", text="Welcome, {name}.")}


def entered(pid: str = "p1", run: str = "r1") -> MembershipChange:
    return MembershipChange(segment="vip", profile_id=pid, change="entered", run_id=run, at="2026-11-20T00:00:00Z")


def test_an_entry_sends_one_email_to_the_profiles_address() -> None:
    sender = Sender()
    report = activate_change(entered(), contacts=Directory(Contact("p1", "a@x.io")), ledger=Ledger(),
                             sender=sender, templates=TEMPLATES)
    assert sender.sent == ["a@x.io"] and report.sent == [effect_key(entered())]


def test_the_same_entry_delivered_twice_sends_once() -> None:
    sender, ledger, directory = Sender(), Ledger(), Directory(Contact("p1", "a@x.io"))
    for _ in range(2):
        report = activate_change(entered(), contacts=directory, ledger=ledger, sender=sender, templates=TEMPLATES)
    assert sender.sent == ["a@x.io"] and report.duplicates == [effect_key(entered())]


def test_a_new_entry_after_an_exit_sends_again() -> None:
    sender, ledger, directory = Sender(), Ledger(), Directory(Contact("p1", "a@x.io"))
    activate_change(entered(run="r1"), contacts=directory, ledger=ledger, sender=sender, templates=TEMPLATES)
    activate_change(entered(run="r9"), contacts=directory, ledger=ledger, sender=sender, templates=TEMPLATES)
    assert sender.sent == ["a@x.io", "a@x.io"]


def test_a_contact_without_consent_gets_nothing_and_the_reason_is_reported() -> None:
    sender = Sender()
    report = activate_change(entered(), contacts=Directory(Contact("p1", "a@x.io", email_consent=False)),
                             ledger=Ledger(), sender=sender, templates=TEMPLATES)
    assert sender.sent == [] and report.skipped == {effect_key(entered()): "no_consent"}


def test_a_profile_without_email_is_skipped_with_a_reason() -> None:
    report = activate_change(entered(), contacts=Directory(), ledger=Ledger(), sender=Sender(), templates=TEMPLATES)
    assert report.skipped == {effect_key(entered()): "no_email"}


def test_an_exit_sends_nothing() -> None:
    exited = MembershipChange(segment="vip", profile_id="p1", change="exited", run_id="r2", at="x")
    sender = Sender()
    activate_change(exited, contacts=Directory(Contact("p1", "a@x.io")), ledger=Ledger(), sender=sender,
                    templates=TEMPLATES, report=ActivationReport())
    assert sender.sent == []


def test_a_failed_send_releases_the_claim_so_the_retry_sends() -> None:
    ledger, directory = Ledger(), Directory(Contact("p1", "a@x.io"))
    with pytest.raises(RuntimeError):
        activate_change(entered(), contacts=directory, ledger=ledger, sender=Sender(fail=True), templates=TEMPLATES)
    sender = Sender()
    activate_change(entered(), contacts=directory, ledger=ledger, sender=sender, templates=TEMPLATES)
    assert sender.sent == ["a@x.io"]


def test_contact_from_profile_reads_email_identifier_and_unsubscribe_trait() -> None:
    contact = contact_from_profile({"profile_id": "p", "identifiers": {"email": ["email:z@x.io"]},
                                    "traits": {"unsubscribed": True, "first_name": "Zoe"}})
    assert contact == Contact("p", "z@x.io", email_consent=False, name="Zoe")


def test_contact_from_profile_honours_a_denied_email_consent() -> None:
    contact = contact_from_profile({"profile_id": "p", "traits": {"email": "a@x.io"},
                                    "consent": {"email": False}})
    assert contact.email_consent is False


def test_a_segment_without_a_channel_sends_nothing_and_says_why() -> None:
    sender = Sender()
    report = activate_change(entered(), contacts=Directory(Contact("p1", "a@x.io")), ledger=Ledger(),
                             sender=sender, templates={})
    assert sender.sent == [] and report.skipped == {effect_key(entered()): "no_channel"}


def test_the_shipped_activation_config_has_a_template_per_listed_segment() -> None:
    from pathlib import Path

    from cdp.activation import load_email_templates

    templates = load_email_templates(Path(__file__).resolve().parents[2] / "config" / "activation.yaml")
    assert "repeat-buyers" in templates
    assert templates["repeat-buyers"].render(Contact("p", "a@x.io", name="Ada"))[0].endswith("Ada")


def test_an_activation_config_entry_without_a_subject_is_a_clear_error(tmp_path) -> None:
    from cdp.activation import load_email_templates
    from cdp.errors import InvalidConfig

    bad = tmp_path / "activation.yaml"
    bad.write_text("email:\n  vip: {text: hello}\n")
    with pytest.raises(InvalidConfig, match="subject"):
        load_email_templates(bad)
