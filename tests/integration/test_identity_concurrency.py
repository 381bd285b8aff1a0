"""Two unify workers (different shards) racing on overlapping identities, against moto."""

from __future__ import annotations

import threading
from collections.abc import Collection, Iterator
from typing import Any

import botocore.client
import pytest

from cdp.adapters.dynamo_profiles import DynamoIdentityStore
from cdp.identity import BatchOutcome, iter_profiles, lookup_profile, resolve_batch
from cdp.identity.profile import Profile
from cdp.settings import Settings
from tests.identity_support import CONFIG, NOW, ev


@pytest.fixture(autouse=True)
def atomic_requests() -> Iterator[None]:
    """One DynamoDB request at a time, as a real table isolates them.

    In-process moto rolls a failed transaction back by restoring a copy of the whole table taken
    when the transaction began, which would also erase another thread's write made meanwhile.
    Serialising requests keeps that artefact out while the workers still interleave between
    requests, which is where the races under test happen."""
    lock = threading.Lock()
    original = botocore.client.BaseClient._make_api_call

    def atomic(client: Any, operation: str, params: Any) -> Any:
        if client.meta.service_model.service_name != "dynamodb":
            return original(client, operation, params)
        with lock:
            return original(client, operation, params)

    botocore.client.BaseClient._make_api_call = atomic  # type: ignore[method-assign]
    try:
        yield
    finally:
        botocore.client.BaseClient._make_api_call = original  # type: ignore[method-assign]


class LockstepStore(DynamoIdentityStore):
    """Waits after its first profile read until the other worker has read too: both then write
    from the same stale view, which is the race conditional writes must settle."""

    def __init__(self, settings: Settings, barrier: threading.Barrier) -> None:
        super().__init__(settings)
        self.barrier = barrier
        self.waited = False

    def get_profiles(self, profile_ids: Collection[str]) -> dict[str, Profile]:
        found = super().get_profiles(profile_ids)
        if not self.waited:
            self.waited = True
            self.barrier.wait(timeout=30)
        return found


def race(settings: Settings, *batches: list[dict[str, Any]]) -> list[BatchOutcome]:
    barrier = threading.Barrier(len(batches))
    outcomes: list[BatchOutcome | None] = [None] * len(batches)

    def work(index: int) -> None:
        store = LockstepStore(settings, barrier)
        outcomes[index] = resolve_batch(batches[index], store, config=CONFIG, now=NOW)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(batches))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert all(o is not None for o in outcomes)
    return outcomes  # type: ignore[return-value]


def test_two_workers_introducing_the_same_new_email_end_in_one_profile(stack_settings: Settings) -> None:
    outcomes = race(
        stack_settings,
        [ev("w1", 1, type_="identify", anonymousId="a", traits={"email": "x@y.io"})],
        [ev("w2", 2, type_="identify", anonymousId="b", traits={"email": "x@y.io"})],
    )
    store = DynamoIdentityStore(stack_settings)
    assert [o.failed for o in outcomes] == [{}, {}]
    assert sorted(o.attempts for o in outcomes) == [1, 2]  # one lost the race and retried
    (profile,) = iter_profiles(store)
    assert (profile["identifiers"], profile["event_count"]) == (
        {"anonymous_id": ["a", "b"], "email": ["x@y.io"]},
        2,
    )


def test_two_workers_merging_overlapping_profiles_lose_no_update(stack_settings: Settings) -> None:
    store = DynamoIdentityStore(stack_settings)
    for message_id, minute, anonymous_id in (("s1", 1, "a"), ("s2", 2, "b"), ("s3", 3, "c")):
        resolve_batch([ev(message_id, minute, anonymousId=anonymous_id)], store, config=CONFIG, now=NOW)
    outcomes = race(
        stack_settings,
        [
            ev("w1", 10, type_="identify", anonymousId="a", traits={"email": "ab@y.io"}),
            ev("w2", 11, type_="identify", anonymousId="b", traits={"email": "ab@y.io"}),
        ],
        [
            ev("w3", 12, type_="identify", anonymousId="b", traits={"email": "bc@y.io"}),
            ev("w4", 13, type_="identify", anonymousId="c", traits={"email": "bc@y.io"}),
        ],
    )
    assert [o.failed for o in outcomes] == [{}, {}]
    assert sorted(o.attempts for o in outcomes) == [1, 2]
    (profile,) = iter_profiles(store)
    assert profile["event_count"] == 7
    assert profile["identifiers"]["anonymous_id"] == ["a", "b", "c"]


def test_after_a_race_every_identifier_resolves_to_the_profile_listing_it(stack_settings: Settings) -> None:
    race(
        stack_settings,
        [
            ev("w1", 1, anonymousId="a", userId="1"),
            ev("w2", 2, type_="identify", anonymousId="a", traits={"email": "x@y.io"}),
        ],
        [
            ev("w3", 3, type_="identify", anonymousId="b", traits={"email": "x@y.io"}),
            ev("w4", 4, anonymousId="c"),
        ],
    )
    store = DynamoIdentityStore(stack_settings)
    for profile in iter_profiles(store):
        for identifier_type, values in profile["identifiers"].items():
            for value in values:
                assert (
                    lookup_profile(f"{identifier_type}:{value}", store)["profile_id"] == profile["profile_id"]
                )  # type: ignore[index]
