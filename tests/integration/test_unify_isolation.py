"""One record the store cannot take never fails the other records of its batch (unify on moto)."""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest

from cdp.adapters.dynamo_profiles import DynamoIdentityStore
from cdp.adapters.failures import S3FailureStore
from cdp.failures import MAPPING_DELIVERIES
from cdp.identity import lookup_profile
from cdp.jobs.unify_job import unify_records
from cdp.settings import Settings
from cdp.streams import DeliveredRecord
from tests.identity_support import CONFIG, NOW

LONG = "x" * 3000  # over DynamoDB's 2048-byte partition key
SHARD = "shardId-000000000000"
ARRIVED = NOW.timestamp() - 60


def _records(*events: dict[str, Any]) -> list[DeliveredRecord]:
    return [DeliveredRecord(SHARD, str(100 + i), json.dumps({"timestamp": "2026-11-20T10:00:00.000Z", **e}).encode(),
                            f"pk-{i}", ARRIVED)
            for i, e in enumerate(events)]


BATCH = (
    {"messageId": "good-1", "type": "identify", "userId": "u1", "traits": {"plan": "pro"}},
    {"messageId": "bad", "type": "identify", "userId": LONG},
    {"messageId": "good-2", "type": "track", "anonymousId": "a2", "event": "Viewed"},
)


@pytest.fixture
def store(stack_settings: Settings) -> DynamoIdentityStore:
    return DynamoIdentityStore(stack_settings)


@pytest.fixture
def failures(stack_settings: Settings) -> S3FailureStore:
    return S3FailureStore(stack_settings)


def _lake_keys(settings: Settings, prefix: str = "failures/") -> list[str]:
    listed = boto3.client("s3").list_objects_v2(Bucket=settings.lake_bucket, Prefix=prefix)
    return [o["Key"] for o in listed.get("Contents", [])]


def _queue_bodies(settings: Settings) -> list[dict[str, Any]]:
    got = boto3.client("sqs").receive_message(QueueUrl=settings.failure_queue_url, MaxNumberOfMessages=10)
    return [json.loads(m["Body"]) for m in got.get("Messages", [])]


def test_an_over_long_identifier_does_not_fail_the_good_events_of_its_batch(
    store: DynamoIdentityStore, failures: S3FailureStore, stack_settings: Settings
) -> None:
    # Given a batch where one event carries an identifier longer than the index's key limit
    # When unify runs it
    result = unify_records(_records(*BATCH), store, config=CONFIG, now=NOW, failures=failures)
    # Then the good events are applied, nothing is sent back for retry, the bad one is kept whole
    assert sorted(result.outcome.applied) == ["good-1", "good-2"]
    assert result.retry == []
    assert lookup_profile("user_id:u1", store)["traits"] == {"plan": "pro"}  # type: ignore[index]
    [key] = _lake_keys(stack_settings)
    kept = failures.read(key)
    assert (kept.reason, kept.message_id, kept.partition_key, kept.final) == ("identifier_too_long", "bad", "pk-1", True)
    assert json.loads(kept.data)["userId"] == LONG


def test_a_kept_record_is_announced_on_the_failure_queue_so_its_alarm_fires(
    store: DynamoIdentityStore, failures: S3FailureStore, stack_settings: Settings
) -> None:
    unify_records(_records(*BATCH), store, config=CONFIG, now=NOW, failures=failures)
    assert _queue_bodies(stack_settings) == [{"failureRecords": _lake_keys(stack_settings)}]


def test_without_a_failure_store_the_bad_record_goes_back_to_the_mapping_not_lost(store: DynamoIdentityStore) -> None:
    result = unify_records(_records(*BATCH), store, config=CONFIG, now=NOW)
    assert result.retry == ["101"] and sorted(result.outcome.applied) == ["good-1", "good-2"]


def test_a_record_the_store_itself_refuses_is_isolated_and_the_others_applied(
    store: DynamoIdentityStore, failures: S3FailureStore, stack_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a limit the checks do not know (the item is refused by DynamoDB itself, on moto)
    monkeypatch.setattr("cdp.identity.limits.IDENTIFIER_MAX_BYTES", 10**6)
    # When the batch is unified
    result = unify_records(_records(*BATCH), store, config=CONFIG, now=NOW, failures=failures)
    # Then the refused record alone is kept, with the store's reason
    assert sorted(result.outcome.applied) == ["good-1", "good-2"] and result.retry == []
    assert [failures.read(k).reason for k in _lake_keys(stack_settings)] == ["ValidationException"]


def test_a_retried_record_is_kept_with_its_count_of_failed_deliveries(
    store: DynamoIdentityStore, failures: S3FailureStore, stack_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    from cdp.errors import ServiceThrottled

    def throttled(*_: object, **__: object) -> None:
        raise ServiceThrottled("throttled")

    monkeypatch.setattr(store, "claim_identifiers", throttled)
    batch = _records(BATCH[0])
    for _ in range(MAPPING_DELIVERIES):
        result = unify_records(batch, store, config=CONFIG, now=NOW, failures=failures)
        assert result.retry == ["100"]  # still reported: the mapping retries, then sends its pointer
    [key] = _lake_keys(stack_settings)
    kept = failures.read(key)
    assert (kept.attempt, kept.final, kept.retryable) == (MAPPING_DELIVERIES, True, True)
    assert len(_queue_bodies(stack_settings)) == 1  # announced once, at the last delivery


# ------------------------------------------------------------------ the crash matrix
class Crash(Exception):
    """The function dies (timeout, out of memory): the mapping redelivers the whole batch."""


class CrashingFailures:
    """The real failure store, dying or failing at one point of keeping the records."""

    def __init__(self, real: S3FailureStore, point: str) -> None:
        self.real, self.point = real, point

    def attempts(self, keys: Any) -> dict[str, int]:
        return self.real.attempts(keys)

    def put(self, records: Any) -> None:
        from cdp.errors import StoreError

        if self.point == "crash before writing":
            raise Crash
        if self.point == "store fails before writing":
            raise StoreError("failure_store_unavailable")
        self.real.put(records)
        if self.point == "crash after writing, before reporting":
            raise Crash


@pytest.mark.parametrize("point", ["crash before writing", "store fails before writing",
                                   "crash after writing, before reporting", "no crash"])
def test_a_redelivery_after_any_crash_keeps_the_bad_record_once_and_applies_the_good_events_once(
    store: DynamoIdentityStore, failures: S3FailureStore, stack_settings: Settings, point: str
) -> None:
    # Given a first delivery that dies or fails at ``point``
    batch = _records(*BATCH)
    try:
        first = unify_records(batch, store, config=CONFIG, now=NOW, failures=CrashingFailures(failures, point))
    except Crash:
        first = None
    if point == "store fails before writing":
        assert first is not None and first.retry == ["101"]  # not kept, so not dropped: retried
    # When the mapping redelivers the batch
    second = unify_records(batch, store, config=CONFIG, now=NOW, failures=failures)
    # Then the good events were applied once, and the bad record is kept once
    assert sorted(second.outcome.duplicates) == ["good-1", "good-2"] and second.retry == []
    assert lookup_profile("user_id:u1", store)["event_count"] == 1  # type: ignore[index]
    assert lookup_profile("anonymous_id:a2", store)["event_count"] == 1  # type: ignore[index]
    keys = _lake_keys(stack_settings)
    assert keys == [f"failures/unify/dt=2026-11-20/{SHARD}-101.jsonl"]
    assert failures.read(keys[0]).message_id == "bad"
