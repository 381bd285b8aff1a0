"""Property tests: order, duplication and batching never change the outcome of resolution."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from cdp.identity import IdentityConfig, InMemoryIdentityStore, resolve_batch
from cdp.identity.lookup import live_profile

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
CONFIG = IdentityConfig()
TRAIT_KEYS = ("plan", "city")

# One person's identifiers: at most one user_id, so events of one person never break a limit.
PEOPLE = [
    {
        "userId": f"u{p}",
        "anonymousId": [f"anon-{p}-{k}" for k in range(3)],
        "email": [f"p{p}e{k}@mail.io" for k in range(2)],
    }
    for p in range(3)
]


@st.composite
def person_event(draw: st.DrawFn, index: int) -> dict[str, Any]:
    person = PEOPLE[draw(st.integers(0, len(PEOPLE) - 1))]
    event: dict[str, Any] = {
        "messageId": f"m{index}",
        "type": "identify",
        "timestamp": f"2026-11-20T10:{draw(st.integers(0, 5)):02d}:00.000Z",
        "traits": {draw(st.sampled_from(TRAIT_KEYS)): f"m{index}"},
    }
    # Mostly anonymous events, so separate profiles form first and later events merge them.
    if draw(st.integers(0, 9)) < 3:
        event["userId"] = person["userId"]
    if draw(st.booleans()) or "userId" not in event:
        event["anonymousId"] = draw(st.sampled_from(person["anonymousId"]))
    if draw(st.integers(0, 9)) < 3:
        event["traits"]["email"] = draw(st.sampled_from(person["email"]))
    return event


@st.composite
def histories(
    draw: st.DrawFn, event_strategy: Any
) -> tuple[list[dict[str, Any]], list[list[dict[str, Any]]]]:
    """Events, and the same events shuffled, partly duplicated and cut into batches."""
    count = draw(st.integers(1, 16))
    events = [draw(event_strategy(i)) for i in range(count)]
    delivered = draw(st.permutations(events)) + draw(st.lists(st.sampled_from(events), max_size=5))
    delivered = draw(st.permutations(delivered))
    cuts = sorted(draw(st.lists(st.integers(0, len(delivered)), max_size=8)))
    bounds = [0, *cuts, len(delivered)]
    return events, [delivered[a:b] for a, b in zip(bounds, bounds[1:], strict=False) if b > a]


def identifiers_of(event: dict[str, Any]) -> set[str]:
    found = set()
    if "userId" in event:
        found.add(f"user_id:{event['userId']}")
    if "anonymousId" in event:
        found.add(f"anonymous_id:{event['anonymousId']}")
    if "email" in event.get("traits", {}):
        found.add(f"email:{event['traits']['email']}")
    return found


def components(events: list[dict[str, Any]]) -> set[frozenset[str]]:
    groups: list[set[str]] = []
    for event in events:
        ids = identifiers_of(event)
        touching = [g for g in groups if g & ids]
        merged = ids.union(*touching)
        groups = [g for g in groups if not g & ids] + [merged]
    return {frozenset(g) for g in groups}


def expected_traits(events: list[dict[str, Any]], component: frozenset[str]) -> dict[str, Any]:
    mine = sorted(
        (e for e in events if identifiers_of(e) & component), key=lambda e: (e["timestamp"], e["messageId"])
    )
    traits: dict[str, Any] = {}
    for event in mine:
        traits.update(event["traits"])
    return traits


def run(batches: list[list[dict[str, Any]]]) -> InMemoryIdentityStore:
    store = InMemoryIdentityStore()
    for batch in batches:
        outcome = resolve_batch(batch, store, config=CONFIG, now=NOW)
        assert not outcome.failed
    return store


def live(store: InMemoryIdentityStore) -> list[Any]:
    return [p for p in store.profiles.values() if p.merged_into is None]


@settings(max_examples=60, deadline=None)
@given(histories(person_event))
def test_any_order_and_duplication_give_the_connected_components(history: Any) -> None:
    events, batches = history
    store = run(batches)
    assert {frozenset(p.identifiers) for p in live(store)} == components(events)


@settings(max_examples=60, deadline=None)
@given(histories(person_event))
def test_any_order_and_duplication_give_the_same_traits_and_counts(history: Any) -> None:
    events, batches = history
    store = run(batches)
    for profile in live(store):
        component = frozenset(profile.identifiers)
        expected = expected_traits(events, component)
        assert {k: v for k, v in profile.traits.items() if k != "email"} == {
            k: v for k, v in expected.items() if k != "email"
        }
        assert profile.event_count == sum(1 for e in events if identifiers_of(e) & component)


@settings(max_examples=40, deadline=None)
@given(histories(person_event))
def test_every_identifier_resolves_to_the_live_profile_that_lists_it(history: Any) -> None:
    _, batches = history
    store = run(batches)
    for profile in live(store):
        for identifier in profile.identifiers:
            assert live_profile(store.pointers[identifier], store).profile_id == profile.profile_id  # type: ignore[union-attr]


@st.composite
def conflicting_event(draw: st.DrawFn, index: int) -> dict[str, Any]:
    """Anything goes: shared devices, shared emails, several user_ids."""
    event: dict[str, Any] = {
        "messageId": f"m{index}",
        "type": "identify",
        "timestamp": f"2026-11-20T10:{draw(st.integers(0, 5)):02d}:00.000Z",
        "traits": {},
    }
    if draw(st.booleans()):
        event["userId"] = draw(st.sampled_from(["u0", "u1", "u2"]))
    if draw(st.booleans()) or "userId" not in event:
        event["anonymousId"] = draw(st.sampled_from(["a0", "a1", "a2", "a3"]))
    if draw(st.booleans()):
        event["traits"]["email"] = draw(st.sampled_from(["s0@mail.io", "s1@mail.io"]))
    return event


@settings(max_examples=60, deadline=None)
@given(histories(conflicting_event))
def test_with_conflicts_no_profile_ever_holds_two_user_ids(history: Any) -> None:
    _, batches = history
    store = run(batches)
    for profile in live(store):
        assert sum(1 for i in profile.identifiers if i.startswith("user_id:")) <= 1


@settings(max_examples=40, deadline=None)
@given(histories(conflicting_event))
def test_with_conflicts_every_event_counts_exactly_once(history: Any) -> None:
    events, batches = history
    store = run(batches)
    assert sum(p.event_count for p in live(store)) == len(events)
    identifiers = [i for p in live(store) for i in p.identifiers]
    assert len(identifiers) == len(set(identifiers))
