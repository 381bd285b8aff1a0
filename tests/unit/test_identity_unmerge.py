"""explain, detach and undo_merge on the in-memory store."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from cdp.errors import InvalidIdentifier, InvalidUnmerge, NotFound
from cdp.identity import (
    InMemoryIdentityStore,
    detach,
    explain,
    find_profile,
    lookup_profile,
    normalise_archived,
    resolve_batch,
    undo_merge,
)
from tests.identity_support import CONFIG, NOW, ev


def run(store: InMemoryIdentityStore, *batches: list[dict[str, Any]]) -> list[dict[str, Any]]:
    archive: list[dict[str, Any]] = []
    for batch in batches:
        resolve_batch(batch, store, config=CONFIG, now=NOW)
        archive.extend(batch)
    return archive


def merged_store() -> tuple[InMemoryIdentityStore, list[dict[str, Any]]]:
    """Two people (a: 2 events, plan free; b: 1 event, plan pro) wrongly merged by a shared email."""
    store = InMemoryIdentityStore()
    archive = run(
        store,
        [
            ev("a1", 1, type_="identify", anonymousId="a", traits={"plan": "free"}),
            ev("a2", 2, anonymousId="a"),
        ],
        [ev("b1", 3, type_="identify", anonymousId="b", traits={"plan": "pro"})],
        [
            ev("x1", 4, type_="identify", anonymousId="a", traits={"email": "shared@family.io"}),
            ev("x2", 5, type_="identify", anonymousId="b", traits={"email": "shared@family.io"}),
        ],
    )
    return store, archive


# ------------------------------------------------------------------ explain
def test_explain_names_the_event_that_linked_each_identifier() -> None:
    store = InMemoryIdentityStore()
    run(store, [ev("m1", anonymousId="a")], [ev("m2", 1, type_="identify", anonymousId="a", userId="42")])
    why = explain("user_id:42", store)["why"]
    assert [(e["message_id"], e["rule"]) for e in why["user_id:42"]] == [("m2", "same_event")]


def test_explain_shows_the_merge_and_the_absorbed_profiles_history() -> None:
    store, _ = merged_store()
    absorbed = next(p.profile_id for p in store.profiles.values() if p.merged_into)
    result = explain("anonymous_id:b", store)
    (merge,) = result["merges"]
    assert (merge["message_id"], merge["rule"]) == ("x2", "shared_identifier")
    assert "b1" in [e["message_id"] for e in result["log"]]  # the absorbed profile's own link
    assert result["absorbed_profiles"] == [absorbed]


def test_explain_lists_refusals() -> None:
    store = InMemoryIdentityStore()
    run(store, [ev("m1", userId="1", anonymousId="shared")], [ev("m2", 1, userId="1", anonymousId="null")])
    assert [r["rule"] for r in explain("user_id:1", store)["refusals"]] == ["blocked_value"]


def test_explain_of_an_unknown_identifier_is_not_found() -> None:
    with pytest.raises(NotFound):
        explain("user_id:nobody", InMemoryIdentityStore())


def test_explain_of_a_malformed_identifier_is_invalid() -> None:
    with pytest.raises(InvalidIdentifier):
        explain("nobody", InMemoryIdentityStore())


# ------------------------------------------------------------------ detach
def test_detached_identifier_gets_a_profile_of_its_own() -> None:
    store, archive = merged_store()
    detach("email:shared@family.io", store, events=archive, now=NOW)
    assert find_profile("email:shared@family.io", store).identifiers == ["email:shared@family.io"]  # type: ignore[union-attr]


def test_detach_rebuilds_counters_from_the_archive() -> None:
    store, archive = merged_store()
    detach("anonymous_id:b", store, events=archive, now=NOW)
    assert (
        lookup_profile("anonymous_id:a", store)["event_count"],  # type: ignore[index]
        lookup_profile("anonymous_id:b", store)["event_count"],
    ) == (4, 1)  # type: ignore[index]


def test_detach_rebuilds_traits_from_the_archive() -> None:
    store, archive = merged_store()
    detach("anonymous_id:b", store, events=archive, now=NOW)
    assert lookup_profile("anonymous_id:a", store)["traits"]["plan"] == "free"  # type: ignore[index]


def test_detached_identifier_is_not_linked_back_by_a_later_event() -> None:
    store, archive = merged_store()
    detach("anonymous_id:b", store, events=archive, now=NOW)
    outcome = resolve_batch(
        [ev("y1", 30, anonymousId="b", traits={"email": "shared@family.io"}, type_="identify")],
        store,
        config=CONFIG,
        now=NOW,
    )
    assert find_profile("anonymous_id:b", store).identifiers == ["anonymous_id:b"]  # type: ignore[union-attr]
    assert [r.rule for r in outcome.refusals] == ["unmerged"]


def test_detach_of_a_profiles_only_identifier_is_refused() -> None:
    store = InMemoryIdentityStore()
    archive = run(store, [ev("m1", anonymousId="a")])
    with pytest.raises(InvalidUnmerge):
        detach("anonymous_id:a", store, events=archive, now=NOW)


def test_detach_is_recorded_in_the_merge_log() -> None:
    store, archive = merged_store()
    detach("anonymous_id:b", store, events=archive, now=NOW, reason="ticket-12")
    assert [(u["kind"], u["rule"]) for u in explain("anonymous_id:b", store)["unmerges"]] == [
        ("detach", "ticket-12")
    ]


# ------------------------------------------------------------------ undo a merge
def test_undo_merge_restores_the_absorbed_profile_with_its_identifiers() -> None:
    store, archive = merged_store()
    absorbed = next(p for p in store.profiles.values() if p.merged_into)
    undo_merge(absorbed.profile_id, store, events=archive, now=NOW)
    restored = find_profile("anonymous_id:b", store)
    assert (restored.profile_id, restored.merged_into) == (absorbed.profile_id, None)  # type: ignore[union-attr]


def test_undo_merge_rebuilds_both_profiles_from_the_archive() -> None:
    store, archive = merged_store()
    absorbed = next(p for p in store.profiles.values() if p.merged_into)
    undo_merge(absorbed.profile_id, store, events=archive, now=NOW)
    a, b = lookup_profile("anonymous_id:a", store), lookup_profile("anonymous_id:b", store)
    assert (a["traits"]["plan"], b["traits"]["plan"]) == ("free", "pro")  # type: ignore[index]
    assert a["event_count"] + b["event_count"] == 5  # type: ignore[index]


def test_undo_merge_of_a_live_profile_is_refused() -> None:
    store, archive = merged_store()
    with pytest.raises(InvalidUnmerge):
        undo_merge(store.pointers["anonymous_id:a"], store, events=archive, now=NOW)


def test_undo_merge_of_an_unknown_profile_is_not_found() -> None:
    with pytest.raises(NotFound):
        undo_merge("p-nope", InMemoryIdentityStore(), events=[], now=NOW)


def test_replayed_events_count_as_applied_for_later_redelivery() -> None:
    store, archive = merged_store()
    detach("anonymous_id:b", store, events=archive, now=NOW)
    outcome = resolve_batch(
        [ev("b1", 3, type_="identify", anonymousId="b", traits={"plan": "pro"})],
        store,
        config=CONFIG,
        now=NOW,
    )
    assert outcome.duplicates == ["b1"]


def test_lake_rows_are_read_as_events() -> None:
    row = {
        "message_id": "m1",
        "type": "identify",
        "user_id": "42",
        "anonymous_id": None,
        "timestamp": datetime(2026, 11, 20, 10, tzinfo=UTC),
        "traits": '{"email": "a@b.io"}',
        "properties": None,
        "context": "{}",
    }
    event = normalise_archived(row)
    assert (event["messageId"], event["userId"], event["traits"], event["timestamp"]) == (
        "m1",
        "42",
        {"email": "a@b.io"},
        "2026-11-20T10:00:00.000Z",
    )
