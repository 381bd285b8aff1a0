"""Consent as data: statements on events, the standing consent, and the one check channels make."""

from __future__ import annotations

from cdp.activation import contact_from_profile
from cdp.identity.computed import Consent, ConsentStatement, apply_consent, event_consent
from cdp.privacy.consent import decisions, may_contact


def test_a_consent_updated_track_event_states_consent_in_its_properties() -> None:
    event = {"type": "track", "event": "Consent Updated",
             "properties": {"categoryPreferences": {"Email": True, "ads": False}}}
    assert event_consent(event) == {"email": True, "ads": False}


def test_segments_consent_preference_event_and_rudderstack_ids_are_read_alike() -> None:
    segment = {"type": "track", "event": "Segment Consent Preference Updated",
               "context": {"consent": {"categoryPreferences": {"Advertising": True}}}}
    rudder = {"type": "track", "event": "Consent Updated",
              "properties": {"allowedConsentIds": ["analytics"], "deniedConsentIds": ["email"]}}
    assert event_consent(segment) == {"advertising": True}
    assert event_consent(rudder) == {"analytics": True, "email": False}


def test_properties_of_an_ordinary_track_event_state_no_consent() -> None:
    event = {"type": "track", "event": "Order Completed", "properties": {"categoryPreferences": {"email": False}}}
    assert event_consent(event) == {}


def test_consent_ids_that_are_not_names_are_ignored() -> None:
    event = {"context": {"consentManagement": {"allowedConsentIds": ["email", {"x": 1}, True, None]}}}
    assert event_consent(event) == {"email": True}


def test_the_statement_received_last_stands_and_keeps_its_receive_time() -> None:
    grant = {"context": {"consent": {"categoryPreferences": {"email": True}}}}
    deny = {"type": "track", "event": "Consent Updated", "properties": {"categoryPreferences": {"email": False}}}
    consent = apply_consent(Consent(), deny, "2024-01-02T00:00:00.000Z|m2")
    consent = apply_consent(consent, grant, "2024-01-01T00:00:00.000Z|m1")  # older, arrives late
    assert consent.purposes["email"] == ConsentStatement(False, "2024-01-02T00:00:00.000Z|m2")


def test_a_granted_purpose_is_allowed_and_a_denied_one_is_not() -> None:
    consent = Consent({"email": ConsentStatement(True, "t|1"), "ads": ConsentStatement(False, "t|2")})
    assert may_contact(consent, "email").reason == "granted" and may_contact(consent, "email")
    assert not may_contact(consent, "ads") and may_contact(consent, "ads").reason == "denied"


def test_ads_need_an_explicit_grant() -> None:
    assert may_contact({}, "ads").reason == "opt_in_required"
    assert may_contact({"advertising": True}, "ads").allowed  # Segment's category name


def test_analytics_only_consent_keeps_a_person_out_of_activation() -> None:
    profile = {"profile_id": "p", "consent": {"analytics": True}, "traits": {}}
    assert may_contact(profile, "email").reason == "analytics_only"
    assert not may_contact(profile, "ads")


def test_a_statement_about_ads_only_leaves_email_to_the_default() -> None:
    assert may_contact({"profile_id": "p", "consent": {"ads": False}}, "email").reason == "not_stated"


def test_a_person_who_never_stated_consent_may_get_email_but_not_ads() -> None:
    profile = {"profile_id": "p", "consent": {}, "traits": {}}
    assert may_contact(profile, "email").reason == "not_stated" and may_contact(profile, "email")
    assert not may_contact(profile, "ads")


def test_a_purpose_not_stated_on_its_own_follows_the_marketing_answer() -> None:
    assert may_contact({"marketing": False, "email": True}, "newsletter").reason == "denied"
    assert may_contact({"marketing": True}, "newsletter").reason == "granted"
    assert not may_contact({"marketing": True}, "ads")  # an opt-in purpose needs its own grant


def test_an_unsubscribe_trait_wins_over_a_grant() -> None:
    profile = {"profile_id": "p", "consent": {"email": True}, "traits": {"email_opt_out": "true"}}
    assert may_contact(profile, "email").reason == "unsubscribed"


def test_the_customer_views_consent_shape_is_understood() -> None:
    assert not may_contact({"email": {"granted": False, "at": "t"}}, "email")


def test_decisions_name_each_channel() -> None:
    assert decisions({"profile_id": "p", "consent": {"email": True}}) == {
        "ads": {"allowed": False, "reason": "opt_in_required"}, "email": {"allowed": True, "reason": "granted"}}


def test_the_email_channel_asks_the_same_check() -> None:
    profile = {"profile_id": "p", "identifiers": {"email": ["email:a@x.io"]}, "consent": {"analytics": True}}
    assert contact_from_profile(profile).email_consent is False


def test_purpose_names_that_are_no_names_are_ignored() -> None:
    event = {"context": {"consent": {"categoryPreferences": {"C0001": True, "x" * 65: True, " ": False,
                                                             "a b": True, "<script>": True}}}}
    assert event_consent(event) == {"c0001": True}


def test_a_profile_keeps_a_bounded_number_of_purposes() -> None:
    from cdp.identity.computed import MAX_PURPOSES

    consent = Consent()
    for n in range(MAX_PURPOSES + 10):
        consent = apply_consent(consent, {"context": {"consent": {"categoryPreferences": {f"p{n}": True}}}},
                                f"2024-01-01T00:00:00.000Z|m{n:03d}")
    assert len(consent.purposes) == MAX_PURPOSES
    later = apply_consent(consent, {"context": {"consent": {"categoryPreferences": {"p0": False}}}}, "2024-02-01|x")
    assert later.granted("p0") is False  # a purpose already held still changes
