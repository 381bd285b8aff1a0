"""One record the store cannot take never fails the other records of its batch (unify on moto)."""

from __future__ import annotations

import json

from cdp.adapters.dynamo_profiles import DynamoIdentityStore
from cdp.identity import lookup_profile
from cdp.jobs.unify_job import unify_records
from cdp.settings import Settings
from cdp.streams import DeliveredRecord
from tests.identity_support import CONFIG, NOW

LONG = "x" * 3000  # over DynamoDB's 2048-byte partition key


def _records(*events: dict) -> list[DeliveredRecord]:
    return [DeliveredRecord("shardId-000000000000", str(100 + i),
                            json.dumps({"timestamp": "2026-11-20T10:00:00.000Z", **e}).encode())
            for i, e in enumerate(events)]


def test_an_over_long_identifier_does_not_fail_the_good_events_of_its_batch(stack_settings: Settings) -> None:
    # Given a batch where one event carries an identifier longer than the index's key limit
    store = DynamoIdentityStore(stack_settings)
    batch = _records({"messageId": "good-1", "type": "identify", "userId": "u1", "traits": {"plan": "pro"}},
                     {"messageId": "bad", "type": "identify", "userId": LONG},
                     {"messageId": "good-2", "type": "track", "anonymousId": "a2", "event": "Viewed"})
    # When unify runs it
    result = unify_records(batch, store, config=CONFIG, now=NOW)
    # Then the good events are applied and nothing is sent back for retry
    assert sorted(result.outcome.applied) == ["good-1", "good-2"]
    assert result.retry == []
    assert lookup_profile("user_id:u1", store)["traits"] == {"plan": "pro"}  # type: ignore[index]
