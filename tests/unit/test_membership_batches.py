"""The membership store's batch writes with a fake client: what DynamoDB leaves unprocessed is resent."""

from __future__ import annotations

from typing import Any

import pytest

from cdp.adapters.membership import DynamoMembershipStore
from cdp.errors import ServiceThrottled
from cdp.segments.membership import Member
from cdp.settings import Settings

SETTINGS = Settings(membership_table="membership")


class UnprocessedFirst:
    """Leaves the last request of each call unprocessed, ``rounds`` times."""

    def __init__(self, rounds: int) -> None:
        self.rounds = rounds
        self.calls: list[int] = []
        self.written: list[str] = []

    def batch_write_item(self, RequestItems: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:  # noqa: N803
        requests = RequestItems["membership"]
        self.calls.append(len(requests))
        if self.rounds:
            self.rounds -= 1
            requests, left = requests[:-1], requests[-1:]
        else:
            left = []
        self.written += [r["PutRequest"]["Item"]["profile_id"]["S"] for r in requests]
        return {"UnprocessedItems": {"membership": left} if left else {}}


def store(client: UnprocessedFirst) -> DynamoMembershipStore:
    return DynamoMembershipStore(SETTINGS, client=client, sleep=lambda _: None)


def test_writes_go_in_batches_of_25_and_unprocessed_requests_are_resent() -> None:
    client = UnprocessedFirst(rounds=1)

    store(client).apply("vip", [Member(f"p{i}", "r1", "t") for i in range(30)], [])

    assert client.calls == [25, 1, 5]
    assert sorted(client.written) == sorted(f"p{i}" for i in range(30))


def test_requests_left_unprocessed_round_after_round_raise_service_throttled() -> None:
    with pytest.raises(ServiceThrottled):
        store(UnprocessedFirst(rounds=1000)).apply("vip", [Member("p1", "r1", "t")], [])
