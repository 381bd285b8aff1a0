"""Isolation of the events the identity store refuses, on the in-memory store."""

from __future__ import annotations

from cdp.errors import ServiceThrottled, StoreError
from cdp.identity import lookup_profile
from cdp.identity.isolate import resolve_isolating
from cdp.identity.limits import EVENT_TRAITS_MAX_BYTES, IDENTIFIER_MAX_BYTES, MESSAGE_ID_MAX_BYTES
from cdp.identity.profile import Profile
from cdp.identity.store import InMemoryIdentityStore
from tests.identity_support import CONFIG, NOW, ev


class RefusingStore(InMemoryIdentityStore):
    """Refuses (for good, or for now) any profile carrying the trait ``poison``."""

    def __init__(self, error: StoreError) -> None:
        super().__init__()
        self.error = error

    def put_profile(self, profile: Profile) -> None:
        if "poison" in profile.traits:
            raise self.error
        super().put_profile(profile)


def test_events_over_a_store_limit_are_isolated_before_any_write() -> None:
    store = InMemoryIdentityStore()
    events = [ev("ok", userId="u1"),
              ev("long-id", userId="x" * (IDENTIFIER_MAX_BYTES + 1)),
              ev("long-alias", type_="alias", userId="u2", previousId="y" * IDENTIFIER_MAX_BYTES),
              ev("m" * (MESSAGE_ID_MAX_BYTES + 1), userId="u3"),
              ev("big", type_="identify", userId="u4", traits={"blob": "z" * EVENT_TRAITS_MAX_BYTES})]
    outcome = resolve_isolating(events, store, config=CONFIG, now=NOW)
    assert outcome.applied == ["ok"]
    assert sorted(outcome.isolated.values()) == ["identifier_too_long", "identifier_too_long",
                                                 "message_id_too_long", "traits_too_large"]
    assert lookup_profile("user_id:u4", store) is None


def test_a_refused_write_isolates_only_the_event_that_causes_it_among_its_profiles_events() -> None:
    # Given two events of the same person in one write, one of which the store refuses
    store = RefusingStore(StoreError("validation", retryable=False, code="ValidationException"))
    events = [ev("good", 1, type_="identify", userId="u1", traits={"plan": "pro"}),
              ev("poison", 2, type_="identify", userId="u1", traits={"poison": True}),
              ev("other", 3, anonymousId="a9")]
    # When the batch is resolved
    outcome = resolve_isolating(events, store, config=CONFIG, now=NOW)
    # Then the innocent event of the same profile is applied, the poison alone is isolated
    assert sorted(outcome.applied) == ["good", "other"]
    assert outcome.isolated == {"poison": "ValidationException"} and outcome.failed == {}
    assert lookup_profile("user_id:u1", store)["traits"] == {"plan": "pro"}  # type: ignore[index]


def test_a_retryable_error_is_left_for_redelivery_not_isolated() -> None:
    store = RefusingStore(ServiceThrottled("throttled"))
    outcome = resolve_isolating([ev("good", userId="u1"), ev("poison", 1, type_="identify", userId="u2",
                                                                  traits={"poison": True})],
                                store, config=CONFIG, now=NOW)
    assert outcome.applied == ["good"] and outcome.isolated == {}
    assert outcome.failed == {"poison": "service_throttled"}
