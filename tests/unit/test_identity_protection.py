"""Merge protection: blocked values, limits per identifier type, priority; refusals are logged."""

from __future__ import annotations

import pytest

from cdp.identity import IdentityConfig, InMemoryIdentityStore, extract, find_profile, resolve_batch
from tests.identity_support import CONFIG, NOW, ev


@pytest.mark.parametrize(
    "value",
    [
        "",
        "  ",
        "null",
        "NULL",
        "nil",
        "none",
        "undefined",
        "NaN",
        "anonymous",
        "unknown",
        "n/a",
        "NA",
        "guest",
        "test",
        "0",
        "000",
        "-1",
        "[object Object]",
    ],
)
def test_generic_junk_value_is_blocked(value: str) -> None:
    blocked = extract({"type": "track", "anonymousId": value, "userId": "42"}, CONFIG).blocked
    assert blocked and blocked[0][1] == "blocked_value"


@pytest.mark.parametrize(
    "email",
    [
        "test@gmail.com",
        "noreply@shop.io",
        "no-reply@shop.io",
        "donotreply@shop.io",
        "email@domain.io",
        "user@domain.io",
        "example@domain.io",
        "bob@test.com",
        "bob@mailinator.com",
        "a@localhost.localdomain",
    ],
)
def test_well_known_test_email_is_blocked(email: str) -> None:
    extracted = extract({"type": "identify", "userId": "42", "traits": {"email": email}}, CONFIG)
    assert extracted.identifiers == ("user_id:42",)


def test_ordinary_email_is_not_blocked() -> None:
    extracted = extract({"type": "identify", "userId": "42", "traits": {"email": "ada@lovelace.org"}}, CONFIG)
    assert extracted.blocked == ()


@pytest.mark.parametrize("phone", ["+33 1 11 11 11 11", "+1 234 567 8901"])
def test_placeholder_phone_is_blocked(phone: str) -> None:
    extracted = extract({"type": "identify", "userId": "42", "traits": {"phone": phone}}, CONFIG)
    assert extracted.blocked[0][1] == "blocked_phone"


def test_custom_blocked_pattern_applies_to_its_type() -> None:
    config = IdentityConfig(blocked_by_type={"user_id": (r"demo-.*",)})
    extracted = extract({"type": "track", "userId": "demo-7", "anonymousId": "a"}, config)
    assert extracted.blocked == (("user_id:demo-7", "blocked_user_id"),)


def test_blocked_value_never_links_two_people() -> None:
    store = InMemoryIdentityStore()
    resolve_batch(
        [ev("m1", userId="1", anonymousId="undefined"), ev("m2", userId="2", anonymousId="undefined")],
        store,
        config=CONFIG,
        now=NOW,
    )
    assert find_profile("user_id:1", store).identifiers == ["user_id:1"]  # type: ignore[union-attr]


def test_user_id_limit_refuses_a_second_user_id_in_one_event() -> None:
    store = InMemoryIdentityStore()
    outcome = resolve_batch(
        [
            ev("m1", type_="identify", userId="1", traits={"email": "x@y.io"}),
            ev("m2", 1, type_="identify", userId="2", traits={"email": "x@y.io"}),
        ],
        store,
        config=CONFIG,
        now=NOW,
    )
    assert [r.rule for r in outcome.refusals] == ["limit_user_id"]
    assert find_profile("user_id:2", store).identifiers == ["user_id:2"]  # type: ignore[union-attr]


def test_email_limit_of_five_refuses_the_sixth_email() -> None:
    store = InMemoryIdentityStore()
    events = [ev(f"m{i}", i, type_="identify", userId="1", traits={"email": f"e{i}@y.io"}) for i in range(6)]
    outcome = resolve_batch(events, store, config=CONFIG, now=NOW)
    assert len(find_profile("user_id:1", store).identifiers) == 6  # type: ignore[union-attr]
    assert [(r.rule, r.identifiers) for r in outcome.refusals] == [("limit_email", ("email:e5@y.io",))]


def test_configured_limit_replaces_the_default() -> None:
    store = InMemoryIdentityStore()
    config = IdentityConfig(limits={"user_id": 1, "anonymous_id": 1})
    resolve_batch(
        [ev("m1", userId="1", anonymousId="a"), ev("m2", 1, userId="1", anonymousId="b")],
        store,
        config=config,
        now=NOW,
    )
    assert find_profile("user_id:1", store).identifiers == ["anonymous_id:a", "user_id:1"]  # type: ignore[union-attr]


def test_merge_of_two_profiles_that_would_hold_two_user_ids_is_refused_and_logged() -> None:
    store = InMemoryIdentityStore()
    resolve_batch(
        [ev("m1", userId="1", anonymousId="a"), ev("m2", userId="2", anonymousId="b")],
        store,
        config=CONFIG,
        now=NOW,
    )
    outcome = resolve_batch(
        [
            ev("m3", 5, type_="identify", anonymousId="a", traits={"email": "s@y.io"}),
            ev("m4", 6, type_="identify", anonymousId="b", traits={"email": "s@y.io"}),
        ],
        store,
        config=CONFIG,
        now=NOW,
    )
    (refusal,) = outcome.refusals
    assert refusal.rule == "limit_user_id"
    assert refusal in store.read_merge_log(refusal.profile_id)
    assert outcome.merges == []


def test_highest_priority_identifier_decides_the_profile_of_a_conflicting_event() -> None:
    store = InMemoryIdentityStore()
    resolve_batch([ev("m1", userId="1", anonymousId="shared")], store, config=CONFIG, now=NOW)
    outcome = resolve_batch([ev("m2", 1, userId="2", anonymousId="shared")], store, config=CONFIG, now=NOW)
    assert outcome.profile_of["m2"] == find_profile("user_id:2", store).profile_id  # type: ignore[union-attr]
