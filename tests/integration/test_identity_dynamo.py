"""DynamoIdentityStore against the template's tables on moto."""

from __future__ import annotations

import pytest

from cdp.adapters.dynamo_profiles import DynamoIdentityStore
from cdp.errors import ConcurrentUpdate, IdentifierTaken
from cdp.identity import iter_identity_map, iter_profiles, lookup_profile, resolve_batch
from cdp.identity.profile import Profile
from cdp.settings import Settings
from tests.identity_support import CONFIG, NOW, ev


@pytest.fixture
def store(stack_settings: Settings) -> DynamoIdentityStore:
    return DynamoIdentityStore(stack_settings)


def test_resolved_profile_is_readable_by_any_of_its_identifiers(store: DynamoIdentityStore) -> None:
    resolve_batch(
        [ev("m1", type_="identify", userId="42", anonymousId="a", traits={"email": "A@x.io", "n": 1.5})],
        store,
        config=CONFIG,
        now=NOW,
    )
    by_email = lookup_profile("email:a@x.io", store)
    assert by_email == lookup_profile("anonymous_id:a", store)
    assert by_email["traits"] == {"email": "A@x.io", "n": 1.5}  # type: ignore[index]


def test_redelivered_batch_is_a_duplicate_in_dynamodb(store: DynamoIdentityStore) -> None:
    batch = [ev("m1", anonymousId="a"), ev("m2", 1, anonymousId="a")]
    resolve_batch(batch, store, config=CONFIG, now=NOW)
    outcome = resolve_batch(batch, store, config=CONFIG, now=NOW)
    assert sorted(outcome.duplicates) == ["m1", "m2"]
    assert lookup_profile("anonymous_id:a", store)["event_count"] == 2  # type: ignore[index]


def test_merge_is_written_as_tombstone_repointed_index_and_log(store: DynamoIdentityStore) -> None:
    resolve_batch([ev("m1", 1, anonymousId="a")], store, config=CONFIG, now=NOW)
    resolve_batch([ev("m2", 2, anonymousId="b")], store, config=CONFIG, now=NOW)
    absorbed = store.get_pointers(["anonymous_id:b"])["anonymous_id:b"]
    outcome = resolve_batch(
        [ev("m3", 3, anonymousId="a", userId="42"), ev("m4", 4, anonymousId="b", userId="42")],
        store,
        config=CONFIG,
        now=NOW,
    )
    survivor = outcome.profile_of["m3"]
    assert store.get_profiles([absorbed])[absorbed].merged_into == survivor
    assert set(store.get_pointers(["anonymous_id:a", "anonymous_id:b", "user_id:42"]).values()) == {survivor}
    assert [e.kind for e in store.read_merge_log(survivor)].count("merge") == 1


def test_profile_write_at_a_stale_version_is_refused(store: DynamoIdentityStore) -> None:
    resolve_batch([ev("m1", anonymousId="a")], store, config=CONFIG, now=NOW)
    profile_id = store.get_pointers(["anonymous_id:a"])["anonymous_id:a"]
    first = store.get_profiles([profile_id])[profile_id]
    second = store.get_profiles([profile_id])[profile_id]
    store.put_profile(first)
    with pytest.raises(ConcurrentUpdate):
        store.put_profile(second)


def test_new_profile_cannot_overwrite_an_existing_one(store: DynamoIdentityStore) -> None:
    store.put_profile(Profile("p-1"))
    with pytest.raises(ConcurrentUpdate):
        store.put_profile(Profile("p-1"))


@pytest.mark.parametrize("transaction_min", [1, 8], ids=["transaction", "single-puts"])
def test_claim_of_an_identifier_owned_by_another_profile_is_refused(
    stack_settings: Settings, transaction_min: int
) -> None:
    store = DynamoIdentityStore(stack_settings, claim_transaction_min=transaction_min)
    store.claim_identifiers({"email:e@x.io": "p-1", "anonymous_id:a": "p-1"})
    with pytest.raises(IdentifierTaken) as caught:
        store.claim_identifiers({"email:e@x.io": "p-2", "anonymous_id:z": "p-2"})
    assert caught.value.details["identifiers"] == ["email:e@x.io"]


@pytest.mark.parametrize("transaction_min", [1, 8], ids=["transaction", "single-puts"])
def test_repeated_claim_by_the_same_profile_succeeds(stack_settings: Settings, transaction_min: int) -> None:
    store = DynamoIdentityStore(stack_settings, claim_transaction_min=transaction_min)
    store.claim_identifiers({"email:e@x.io": "p-1", "anonymous_id:a": "p-1"})
    store.claim_identifiers({"email:e@x.io": "p-1", "anonymous_id:a": "p-1"})
    assert store.get_pointers(["email:e@x.io"]) == {"email:e@x.io": "p-1"}


def test_refused_claim_transaction_writes_none_of_its_claims(stack_settings: Settings) -> None:
    store = DynamoIdentityStore(stack_settings, claim_transaction_min=1)
    store.claim_identifiers({"email:e@x.io": "p-1"})
    with pytest.raises(IdentifierTaken):
        store.claim_identifiers({"email:e@x.io": "p-2", "anonymous_id:z": "p-2"})
    assert store.get_pointers(["anonymous_id:z"]) == {}


def test_merge_transaction_fails_whole_when_a_tombstone_changed(store: DynamoIdentityStore) -> None:
    store.put_profile(Profile("p-old", first_seen="2026-01-01T00:00:00.000Z"))
    store.put_profile(Profile("p-new"))
    survivor = store.get_profiles(["p-old"])["p-old"]
    stale = store.get_profiles(["p-new"])["p-new"]
    store.put_profile(store.get_profiles(["p-new"])["p-new"])
    stale.merged_into = "p-old"
    with pytest.raises(ConcurrentUpdate):
        store.put_merge(survivor, [stale])
    assert store.get_profiles(["p-old"])["p-old"].version == 1


def test_snapshot_generators_read_the_tables(store: DynamoIdentityStore) -> None:
    resolve_batch(
        [ev("m1", userId="42", anonymousId="a"), ev("m2", anonymousId="b")], store, config=CONFIG, now=NOW
    )
    assert len(list(iter_profiles(store))) == 2
    assert {i for i, _ in iter_identity_map(store)} == {"user_id:42", "anonymous_id:a", "anonymous_id:b"}


def test_batch_of_hundred_events_from_thirty_people_stays_under_the_request_budget(
    store: DynamoIdentityStore,
) -> None:
    seed = [ev(f"s{i}", type_="identify", userId=f"u{i}", anonymousId=f"a{i}") for i in range(30)]
    resolve_batch(seed, store, config=CONFIG, now=NOW)
    store.requests.clear()
    outcome = resolve_batch(
        [ev(f"b{n}", n % 60, anonymousId=f"a{n % 30}") for n in range(100)], store, config=CONFIG, now=NOW
    )
    assert len(outcome.applied) == 100
    assert store.request_count / 100 <= 0.6


def test_an_item_stored_before_sub_states_were_typed_reads_and_writes_back_unchanged(
    store: DynamoIdentityStore, stack_settings: Settings
) -> None:
    import json

    import boto3

    # Given a profile item as the previous code wrote it (JSON attributes are strings)
    client = boto3.client("dynamodb", region_name=stack_settings.aws_region)
    lifecycle = {"orders": 1, "last_order_at": "2024-01-02T00:00:00.000Z", "stage": "new_customer",
                 "history": [{"stage": "new_customer", "at": "2024-01-02T00:00:00.000Z"}]}
    consent = {"email": {"granted": False, "stamp": "2024-01-02T00:00:00.000Z|m1"}}
    computed = {"values": {"orders": 1}, "stamps": {}}
    client.put_item(TableName=stack_settings.profiles_table, Item={
        "profile_id": {"S": "p-old"}, "identifiers": {"L": [{"S": "user_id:7"}]}, "event_count": {"N": "1"},
        "traits": {"S": "{}"}, "trait_stamps": {"S": "{}"}, "computed": {"S": json.dumps(computed)},
        "lifecycle": {"S": json.dumps(lifecycle)}, "consent": {"S": json.dumps(consent)}, "version": {"N": "1"},
    })

    # When the store reads it and writes it back
    profile = store.get_profiles(["p-old"])["p-old"]
    store.put_profile(profile)

    # Then the typed states hold its values and the stored JSON is the same
    assert profile.lifecycle.stage == "new_customer" and profile.consent.granted("email") is False
    item = client.get_item(TableName=stack_settings.profiles_table, Key={"profile_id": {"S": "p-old"}})["Item"]
    assert json.loads(item["lifecycle"]["S"]) == lifecycle
    assert json.loads(item["consent"]["S"]) == consent
    assert json.loads(item["computed"]["S"]) == computed


@pytest.fixture
def throttled_scan(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The second Scan call answers ProvisionedThroughputExceededException, as once the SDK's retries are spent."""
    from botocore.client import BaseClient
    from botocore.exceptions import ClientError

    original = BaseClient._make_api_call
    calls: list[int] = []

    def make_api_call(client: BaseClient, operation: str, params: dict) -> object:
        if operation == "Scan":
            calls.append(len(calls))
            if len(calls) == 2:
                raise ClientError({"Error": {"Code": "ProvisionedThroughputExceededException", "Message": "slow down"},
                                   "ResponseMetadata": {"HTTPStatusCode": 400}}, operation)
        return original(client, operation, params)

    monkeypatch.setattr(BaseClient, "_make_api_call", make_api_call)
    return calls


def test_a_scan_throttled_midway_resumes_where_it_stopped(stack_settings: Settings, throttled_scan: list[int]) -> None:
    # Given five profiles read two per Scan call
    store = DynamoIdentityStore(stack_settings, scan_page_size=2, sleep=lambda _s: None)
    resolve_batch([ev(f"m{i}", i, anonymousId=f"a{i}") for i in range(5)], store, config=CONFIG, now=NOW)
    # When the second Scan call is throttled
    profiles = [p.profile_id for p in store.scan_profiles()]
    # Then every profile is read once, the scan going on from the last profile it had read
    assert len(profiles) == len(set(profiles)) == 5
    assert len(throttled_scan) == 4  # pages 1, 2 (throttled), 2 again, 3


def test_an_identity_map_scan_throttled_midway_resumes_too(stack_settings: Settings,
                                                           throttled_scan: list[int]) -> None:
    store = DynamoIdentityStore(stack_settings, scan_page_size=2, sleep=lambda _s: None)
    resolve_batch([ev(f"m{i}", i, anonymousId=f"a{i}") for i in range(5)], store, config=CONFIG, now=NOW)
    pointers = list(store.scan_pointers())
    assert sorted(i for i, _ in pointers) == [f"anonymous_id:a{i}" for i in range(5)]


def test_a_scan_that_stays_throttled_fails_after_its_retries(stack_settings: Settings,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    from botocore.client import BaseClient
    from botocore.exceptions import ClientError

    from cdp.errors import ServiceThrottled

    calls: list[str] = []

    def make_api_call(client: BaseClient, operation: str, params: dict) -> object:
        calls.append(operation)
        raise ClientError({"Error": {"Code": "ProvisionedThroughputExceededException", "Message": "slow down"},
                           "ResponseMetadata": {"HTTPStatusCode": 400}}, operation)

    pauses: list[float] = []
    store = DynamoIdentityStore(stack_settings, sleep=pauses.append)
    monkeypatch.setattr(BaseClient, "_make_api_call", make_api_call)
    with pytest.raises(ServiceThrottled):
        list(store.scan_profiles())
    assert calls == ["Scan"] * (DynamoIdentityStore.SCAN_RETRIES + 1)
    assert pauses == sorted(pauses) and len(pauses) == DynamoIdentityStore.SCAN_RETRIES


def test_the_window_is_one_binary_value_and_a_profile_written_with_the_list_still_dedupes(
        store: DynamoIdentityStore, stack_settings: Settings) -> None:
    import boto3

    from cdp.adapters.aws import endpoint_url
    from cdp.identity.profile import message_key

    client = boto3.client("dynamodb", region_name=stack_settings.aws_region,
                          endpoint_url=endpoint_url(stack_settings, "dynamodb"))
    resolve_batch([ev("m1", anonymousId="a"), ev("m2", 1, anonymousId="a")], store, config=CONFIG, now=NOW)
    profile_id = lookup_profile("anonymous_id:a", store)["profile_id"]  # type: ignore[index]
    key = {"profile_id": {"S": profile_id}}
    stored = client.get_item(TableName=stack_settings.profiles_table, Key=key, ConsistentRead=True)["Item"]
    assert "recent" not in stored and len(stored["window"]["B"]) == 2 * 9
    assert store.get_profiles([profile_id])[profile_id].recent == [message_key("m1"), message_key("m2")]

    # An item written before the window was packed: the list form, no binary value.
    legacy = {k: v for k, v in stored.items() if k != "window"}
    legacy["recent"] = {"L": [{"S": message_key("m1")}, {"S": message_key("m2")}]}
    client.put_item(TableName=stack_settings.profiles_table, Item=legacy)
    outcome = resolve_batch([ev("m2", 1, anonymousId="a"), ev("m3", 2, anonymousId="a")], store, config=CONFIG,
                            now=NOW)

    assert outcome.duplicates == ["m2"] and outcome.applied == ["m3"]
    rewritten = client.get_item(TableName=stack_settings.profiles_table, Key=key, ConsistentRead=True)["Item"]
    assert "recent" not in rewritten and len(rewritten["window"]["B"]) == 3 * 9


def test_a_window_key_that_is_not_a_digest_is_kept_in_the_list_form() -> None:
    from cdp.adapters.dynamo_profiles import pack_window, unpack_window
    from cdp.identity.profile import message_key

    keys = [message_key("m1"), message_key("m2")]
    packed, listed = pack_window(keys)
    assert listed is None and packed is not None and unpack_window(packed) == keys
    assert pack_window([]) == (None, None)
    assert pack_window([*keys, "legacy-key"]) == (None, [*keys, "legacy-key"])  # not 12 base64url characters
    assert pack_window([*keys, "A" * 16]) == (None, [*keys, "A" * 16])  # 12 bytes, not 9
