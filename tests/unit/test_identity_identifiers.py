"""Identifier normalisation, parsing and extraction from Segment-spec events."""

from __future__ import annotations

import pytest

from cdp.errors import InvalidConfig, InvalidIdentifier
from cdp.identity import IdentityConfig, extract, parse_identifier

CONFIG = IdentityConfig()


def test_email_is_trimmed_and_lowercased() -> None:
    assert parse_identifier("email:  Alice@Example.COM ", CONFIG) == "email:alice@example.com"


def test_phone_is_normalised_to_e164() -> None:
    assert parse_identifier("phone:+33 6 12 34 56 78", CONFIG) == "phone:+33612345678"


def test_national_phone_uses_the_configured_default_region() -> None:
    config = IdentityConfig(default_phone_region="FR")
    assert parse_identifier("phone:06 12 34 56 78", config) == "phone:+33612345678"


def test_national_phone_without_default_region_is_invalid() -> None:
    with pytest.raises(InvalidIdentifier):
        parse_identifier("phone:06 12 34 56 78", CONFIG)


def test_user_id_keeps_its_case_and_loses_surrounding_spaces() -> None:
    assert parse_identifier("user_id: Ab42 ", CONFIG) == "user_id:Ab42"


def test_value_may_contain_a_colon() -> None:
    assert parse_identifier("anonymous_id:a:b", CONFIG) == "anonymous_id:a:b"


@pytest.mark.parametrize("text", ["alice@example.com", "", "email:", "email:not-an-email", "shoe_size:42"])
def test_malformed_identifier_is_rejected_with_a_typed_error(text: str) -> None:
    with pytest.raises(InvalidIdentifier):
        parse_identifier(text, CONFIG)


def test_identify_event_yields_identifiers_in_priority_order() -> None:
    event = {
        "type": "identify",
        "userId": 42,
        "anonymousId": "anon-1",
        "traits": {"email": "Bob@Example.com", "phone": "+44 20 7946 0958"},
    }
    assert extract(event, CONFIG).identifiers == (
        "user_id:42",
        "email:bob@example.com",
        "phone:+442079460958",
        "anonymous_id:anon-1",
    )


def test_email_in_context_traits_is_an_identifier() -> None:
    event = {"type": "track", "anonymousId": "a", "context": {"traits": {"email": "c@d.io"}}}
    assert "email:c@d.io" in extract(event, CONFIG).identifiers


def test_group_traits_do_not_identify_the_person() -> None:
    event = {"type": "group", "userId": "7", "groupId": "g", "traits": {"email": "billing@acme.io"}}
    assert extract(event, CONFIG).identifiers == ("user_id:7",)


def test_null_anonymous_id_is_ignored() -> None:
    event = {"type": "track", "userId": "7", "anonymousId": None}
    assert extract(event, CONFIG).identifiers == ("user_id:7",)


def test_custom_identifier_type_is_read_from_its_path() -> None:
    config = IdentityConfig.from_dict({"identifiers": [{"type": "device_id", "path": "context.device.id"}]})
    event = {"type": "track", "anonymousId": "a", "context": {"device": {"id": "D-1"}}}
    assert "device_id:D-1" in extract(event, config).identifiers


def test_alias_event_exposes_its_previous_id() -> None:
    event = {"type": "alias", "userId": "new", "previousId": "old"}
    assert extract(event, CONFIG).alias_of == "old"


def test_unknown_configuration_key_is_rejected() -> None:
    with pytest.raises(InvalidConfig):
        IdentityConfig.from_dict({"identifers": []})
