"""resolve_batch on the in-memory store: linking, merging, exactly-once effects, failures."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

import pytest

from cdp.errors import StoreError
from cdp.identity import (
    IdentityConfig,
    InMemoryIdentityStore,
    find_profile,
    iter_identity_map,
    iter_profiles,
    lookup_profile,
    resolve_batch,
)
from cdp.identity.profile import Profile
from tests.identity_support import CONFIG, NOW, ev


def resolve(events: list[dict[str, Any]], store: InMemoryIdentityStore, config: IdentityConfig = CONFIG):
    return resolve_batch(events, store, config=config, now=NOW)


def live_profiles(store: InMemoryIdentityStore) -> list[Profile]:
    return [p for p in store.profiles.values() if p.merged_into is None]


# ------------------------------------------------------------------ linking
def test_identifiers_of_one_event_end_in_one_profile() -> None:
    store = InMemoryIdentityStore()
    resolve([ev("m1", type_="identify", userId="42", anonymousId="a1", traits={"email": "A@x.io"})], store)
    profile = find_profile("email:a@x.io", store)
    assert profile is not None
    assert profile.identifiers == ["anonymous_id:a1", "email:a@x.io", "user_id:42"]


def test_events_sharing_an_identifier_across_batches_join_one_profile() -> None:
    store = InMemoryIdentityStore()
    resolve([ev("m1", anonymousId="a1")], store)
    resolve([ev("m2", 1, type_="identify", anonymousId="a1", userId="42")], store)
    assert len(live_profiles(store)) == 1
    assert find_profile("user_id:42", store).event_count == 2  # type: ignore[union-attr]


def test_alias_links_the_previous_anonymous_id() -> None:
    store = InMemoryIdentityStore()
    resolve([ev("m1", anonymousId="old-anon")], store)
    resolve([ev("m2", 1, type_="alias", userId="42", previousId="old-anon")], store)
    assert (
        find_profile("user_id:42", store).profile_id
        == find_profile("anonymous_id:old-anon", store).profile_id
    )  # type: ignore[union-attr]


def test_new_profile_id_is_deterministic_for_the_same_identifiers() -> None:
    first, second = InMemoryIdentityStore(), InMemoryIdentityStore()
    resolve([ev("m1", userId="42", anonymousId="a")], first)
    resolve([ev("m9", userId="42", anonymousId="a")], second)
    assert list(first.profiles) == list(second.profiles)


def test_every_new_link_is_recorded_with_its_message_id() -> None:
    store = InMemoryIdentityStore()
    outcome = resolve([ev("m1", userId="42", anonymousId="a")], store)
    (entry,) = outcome.log
    assert (entry.kind, entry.message_id, entry.identifiers) == (
        "link",
        "m1",
        ("user_id:42", "anonymous_id:a"),
    )
    assert store.read_merge_log(entry.profile_id) == [entry]


# ------------------------------------------------------------------ merging
def test_batch_connecting_two_profiles_merges_them_into_the_oldest() -> None:
    store = InMemoryIdentityStore()
    resolve([ev("m1", 5, anonymousId="late")], store)
    resolve([ev("m2", 1, anonymousId="early")], store)
    old = find_profile("anonymous_id:early", store)
    outcome = resolve(
        [
            ev("m3", 9, type_="identify", anonymousId="late", traits={"email": "e@x.io"}),
            ev("m4", 9, type_="identify", anonymousId="early", traits={"email": "e@x.io"}),
        ],
        store,
    )
    (merge,) = outcome.merges
    assert merge.profile_id == old.profile_id  # type: ignore[union-attr]
    assert [p.profile_id for p in live_profiles(store)] == [old.profile_id]  # type: ignore[union-attr]


def test_the_outcome_names_only_the_profiles_the_batch_created() -> None:
    store = InMemoryIdentityStore()
    first = resolve([ev("m1", anonymousId="a1"), ev("m2", anonymousId="b1")], store)
    again = resolve([ev("m3", 1, anonymousId="a1"), ev("m4", 1, anonymousId="c1")], store)
    assert sorted(first.created) == sorted(find_profile(i, store).profile_id  # type: ignore[union-attr]
                                           for i in ("anonymous_id:a1", "anonymous_id:b1"))
    assert again.created == [find_profile("anonymous_id:c1", store).profile_id]  # type: ignore[union-attr]


def test_absorbed_profile_becomes_a_tombstone_pointing_to_the_survivor() -> None:
    store = InMemoryIdentityStore()
    resolve([ev("m1", 1, anonymousId="a")], store)
    resolve([ev("m2", 2, anonymousId="b")], store)
    absorbed_id = store.pointers["anonymous_id:b"]
    resolve([ev("m3", 3, anonymousId="a", userId="42"), ev("m4", 4, anonymousId="b", userId="42")], store)
    assert store.profiles[absorbed_id].merged_into == store.pointers["anonymous_id:a"]


def test_identifiers_of_the_absorbed_profile_are_repointed() -> None:
    store = InMemoryIdentityStore()
    resolve([ev("m1", 1, anonymousId="a")], store)
    resolve([ev("m2", 2, anonymousId="b")], store)
    resolve([ev("m3", 3, anonymousId="a", userId="42"), ev("m4", 4, anonymousId="b", userId="42")], store)
    assert store.pointers["anonymous_id:b"] == store.pointers["anonymous_id:a"]


def test_lookup_follows_a_tombstone_whose_index_entry_was_not_yet_repointed() -> None:
    store = InMemoryIdentityStore()
    resolve([ev("m1", 1, anonymousId="a")], store)
    resolve([ev("m2", 2, anonymousId="b")], store)
    stale = dict(store.pointers)
    resolve([ev("m3", 3, anonymousId="a", userId="42"), ev("m4", 4, anonymousId="b", userId="42")], store)
    store.pointers.update(stale)  # as if the repoint write was lost
    assert lookup_profile("anonymous_id:b", store)["identifiers"]["user_id"] == ["42"]  # type: ignore[index]


def test_merged_profile_adds_counters_and_keeps_the_widest_time_span() -> None:
    store = InMemoryIdentityStore()
    resolve([ev("m1", 1, anonymousId="a"), ev("m2", 2, anonymousId="a")], store)
    resolve([ev("m3", 7, anonymousId="b")], store)
    resolve([ev("m4", 8, anonymousId="b", userId="42"), ev("m5", 9, anonymousId="a", userId="42")], store)
    view = lookup_profile("user_id:42", store)
    assert (view["event_count"], view["first_seen"], view["last_seen"]) == (  # type: ignore[index]
        5,
        "2026-11-20T10:01:00.000Z",
        "2026-11-20T10:09:00.000Z",
    )


def test_latest_trait_wins_by_event_time_not_arrival_order() -> None:
    store = InMemoryIdentityStore()
    resolve([ev("new", 9, type_="identify", userId="42", traits={"plan": "pro"})], store)
    resolve([ev("old", 1, type_="identify", userId="42", traits={"plan": "free"})], store)
    assert lookup_profile("user_id:42", store)["traits"]["plan"] == "pro"  # type: ignore[index]


def test_trait_policy_first_keeps_the_earliest_value() -> None:
    store = InMemoryIdentityStore()
    config = IdentityConfig(trait_policies={"signup_source": "first"})
    resolve([ev("b", 9, type_="identify", userId="42", traits={"signup_source": "ads"})], store, config)
    resolve([ev("a", 1, type_="identify", userId="42", traits={"signup_source": "seo"})], store, config)
    assert lookup_profile("user_id:42", store)["traits"]["signup_source"] == "seo"  # type: ignore[index]


def test_traits_merge_per_trait_by_event_time() -> None:
    store = InMemoryIdentityStore()
    resolve([ev("m1", 1, type_="identify", anonymousId="a", traits={"plan": "free", "city": "Lyon"})], store)
    resolve([ev("m2", 5, type_="identify", anonymousId="b", traits={"plan": "pro"})], store)
    resolve([ev("m3", 9, anonymousId="a", userId="42"), ev("m4", 9, anonymousId="b", userId="42")], store)
    assert lookup_profile("user_id:42", store)["traits"] == {"plan": "pro", "city": "Lyon"}  # type: ignore[index]


# ------------------------------------------------------------------ exactly once
def test_redelivered_batch_has_no_second_effect() -> None:
    store = InMemoryIdentityStore()
    batch = [ev("m1", anonymousId="a"), ev("m2", 1, anonymousId="a")]
    resolve(batch, store)
    outcome = resolve(batch, store)
    assert (outcome.applied, sorted(outcome.duplicates)) == ([], ["m1", "m2"])
    assert find_profile("anonymous_id:a", store).event_count == 2  # type: ignore[union-attr]


def test_duplicate_message_in_one_batch_counts_once() -> None:
    store = InMemoryIdentityStore()
    outcome = resolve([ev("m1", anonymousId="a"), ev("m1", anonymousId="a")], store)
    assert (outcome.applied, outcome.duplicates) == (["m1"], ["m1"])
    assert find_profile("anonymous_id:a", store).event_count == 1  # type: ignore[union-attr]


def test_redelivery_after_a_merge_is_still_a_duplicate() -> None:
    store = InMemoryIdentityStore()
    resolve([ev("m1", 1, anonymousId="a")], store)
    resolve([ev("m2", 2, anonymousId="b")], store)
    resolve([ev("m3", 3, anonymousId="a", userId="42"), ev("m4", 4, anonymousId="b", userId="42")], store)
    outcome = resolve([ev("m2", 2, anonymousId="b")], store)
    assert outcome.duplicates == ["m2"]


class CrashingStore(InMemoryIdentityStore):
    """Fails the next profile writes, like a Lambda dying between two writes."""

    def __init__(self, failures: int) -> None:
        super().__init__()
        self.failures = failures

    def put_profile(self, profile: Profile) -> None:
        if self.failures:
            self.failures -= 1
            raise StoreError("simulated crash")
        super().put_profile(profile)


def test_failed_profile_write_reports_the_events_as_failed() -> None:
    store = CrashingStore(failures=1)
    outcome = resolve([ev("m1", anonymousId="a")], store)
    assert outcome.failed == {"m1": "store_error"}


def test_an_event_whose_second_copy_is_in_the_same_batch_is_still_failed_for_redelivery() -> None:
    # Given a batch holding one event twice (a client's retry of a request whose first PutRecords
    # succeeded puts its events on the stream again, next to the first copies)
    store = CrashingStore(failures=1)
    batch = [ev("m1", anonymousId="a"), ev("m2", 1, anonymousId="a"), ev("m1", anonymousId="a")]

    # When the profile write fails
    outcome = resolve(batch, store)

    # Then both events go back for redelivery, and the copy is not counted as done
    assert outcome.failed == {"m1": "store_error", "m2": "store_error"}
    assert outcome.duplicates == outcome.applied == []
    resolve(batch, store)  # the redelivery applies each once
    assert find_profile("anonymous_id:a", store).event_count == 2  # type: ignore[union-attr]


def test_retry_after_a_crash_between_claim_and_profile_write_creates_one_profile() -> None:
    store = CrashingStore(failures=1)
    resolve([ev("m1", anonymousId="a", userId="42")], store)
    outcome = resolve([ev("m1", anonymousId="a", userId="42")], store)
    assert outcome.applied == ["m1"]
    assert len(store.profiles) == 1
    assert set(store.pointers.values()) == set(store.profiles)


def test_retry_of_a_later_part_of_the_batch_after_a_crash_finds_the_claimed_profile() -> None:
    store = CrashingStore(failures=1)
    resolve([ev("m1", anonymousId="a", userId="42"), ev("m2", 1, anonymousId="a")], store)
    resolve([ev("m2", 1, anonymousId="a")], store)
    assert len(store.profiles) == 1


class RacingStore(InMemoryIdentityStore):
    """Another worker bumps a profile between our read and our write, ``races`` times."""

    def __init__(self, races: int) -> None:
        super().__init__()
        self.races = races

    def put_profile(self, profile: Profile) -> None:
        if self.races and profile.profile_id in self.profiles:
            self.races -= 1
            other = self.profiles[profile.profile_id]
            other.event_count += 100
            other.version = (other.version or 0) + 1
        super().put_profile(profile)


def test_version_conflict_rereads_and_keeps_the_other_workers_update() -> None:
    store = RacingStore(races=0)
    resolve([ev("m1", anonymousId="a")], store)
    store.races = 1
    outcome = resolve([ev("m2", 1, anonymousId="a")], store)
    assert (outcome.applied, outcome.attempts) == (["m2"], 2)
    assert find_profile("anonymous_id:a", store).event_count == 102  # type: ignore[union-attr]


def test_endless_conflicts_fail_the_events_after_bounded_attempts() -> None:
    store = RacingStore(races=0)
    resolve([ev("m1", anonymousId="a")], store)
    store.races = 99
    outcome = resolve([ev("m2", 1, anonymousId="a")], store, IdentityConfig(max_attempts=3))
    assert (outcome.failed, outcome.attempts) == ({"m2": "concurrent_update"}, 3)


class TakenStore(InMemoryIdentityStore):
    """Another worker claims the identifier between our read and our claim."""

    def claim_identifiers(self, claims) -> None:  # type: ignore[no-untyped-def]
        if "email:e@x.io" in claims and "email:e@x.io" not in self.pointers:
            self.pointers["email:e@x.io"] = "p-other"
            self.profiles["p-other"] = Profile(
                "p-other", ["email:e@x.io"], first_seen="2026-01-01T00:00:00.000Z", event_count=1, version=1
            )
        super().claim_identifiers(claims)


def test_identifier_claimed_concurrently_joins_the_other_workers_profile() -> None:
    store = TakenStore()
    outcome = resolve([ev("m1", type_="identify", anonymousId="a", traits={"email": "e@x.io"})], store)
    assert outcome.profile_of == {"m1": "p-other"}
    assert find_profile("anonymous_id:a", store).event_count == 2  # type: ignore[union-attr]


class BrokenStore(InMemoryIdentityStore):
    def get_pointers(self, identifiers: Collection[str]) -> dict[str, str]:
        raise StoreError("throttled")


def test_read_failure_fails_every_event_for_redelivery() -> None:
    outcome = resolve([ev("m1", anonymousId="a"), ev("m2", anonymousId="b")], BrokenStore())
    assert outcome.failed == {"m1": "store_error", "m2": "store_error"}


# ------------------------------------------------------------------ rejections
def test_event_without_message_id_is_rejected_by_position() -> None:
    outcome = resolve([{"type": "track", "anonymousId": "a"}], InMemoryIdentityStore())
    assert outcome.rejected == {"#0": "missing_message_id"}


def test_event_without_a_usable_identifier_is_rejected() -> None:
    outcome = resolve([ev("m1", anonymousId="undefined")], InMemoryIdentityStore())
    assert outcome.rejected == {"m1": "no_usable_identifier"}


def test_blocked_value_is_recorded_in_the_merge_log_not_dropped_silently() -> None:
    store = InMemoryIdentityStore()
    outcome = resolve([ev("m1", userId="42", anonymousId="null")], store)
    (refusal,) = outcome.refusals
    assert (refusal.rule, refusal.identifiers) == ("blocked_value", ("anonymous_id:null",))


def test_second_user_id_is_never_linked_into_a_profile() -> None:
    store = InMemoryIdentityStore()
    resolve([ev("m1", 1, userId="1", anonymousId="shared")], store)
    outcome = resolve([ev("m2", 2, userId="2", anonymousId="shared")], store)
    assert find_profile("user_id:2", store).identifiers == ["user_id:2"]  # type: ignore[union-attr]
    assert outcome.refusals[0].rule == "limit_user_id"


# ------------------------------------------------------------------ reading
def test_lookup_of_an_unknown_identifier_returns_none() -> None:
    assert lookup_profile("email:nobody@x.io", InMemoryIdentityStore()) is None


def test_lookup_view_has_every_documented_field() -> None:
    store = InMemoryIdentityStore()
    resolve([ev("m1", type_="identify", userId="42", traits={"name": "Ada"})], store)
    assert set(lookup_profile("user_id:42", store)) >= {  # type: ignore[arg-type]
        "profile_id",
        "identifiers",
        "traits",
        "computed_traits",
        "lifecycle_stage",
        "first_seen",
        "last_seen",
        "event_count",
    }


def test_snapshots_list_only_live_profiles_and_their_identifiers() -> None:
    store = InMemoryIdentityStore()
    resolve([ev("m1", 1, anonymousId="a")], store)
    resolve([ev("m2", 2, anonymousId="b")], store)
    resolve([ev("m3", 3, anonymousId="a", userId="42"), ev("m4", 4, anonymousId="b", userId="42")], store)
    (survivor,) = iter_profiles(store)
    assert sorted(iter_identity_map(store)) == [
        ("anonymous_id:a", survivor["profile_id"]),
        ("anonymous_id:b", survivor["profile_id"]),
        ("user_id:42", survivor["profile_id"]),
    ]


@pytest.mark.parametrize("batches", [1, 3])
def test_batch_of_known_people_costs_few_requests_per_event(batches: int) -> None:
    store = InMemoryIdentityStore()
    people = [ev(f"seed{i}", type_="identify", userId=f"u{i}", anonymousId=f"a{i}") for i in range(30)]
    resolve(people, store)
    store.requests.clear()
    for b in range(batches):
        resolve([ev(f"b{b}-{n}", n % 60, anonymousId=f"a{n % 30}") for n in range(100)], store)
    assert store.request_count / (100 * batches) <= 0.35
