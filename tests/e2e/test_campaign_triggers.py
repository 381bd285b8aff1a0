"""A triggered campaign on the local stack, over HTTP: a checkout whose wait is over gets one reminder,
one followed by an order (in the same batch, or later but before the wait ends) gets none, one whose
wait has an hour to go is a one-time schedule in the stack's group."""

from __future__ import annotations

import email
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email import policy
from zoneinfo import ZoneInfo

import pytest

from cdp_infra.client import TrackingClient
from cdp_infra.local import LocalConfig, LocalPipeline

pytestmark = pytest.mark.e2e
WRITE_KEY = "e2e-trigger-key"


@pytest.fixture(scope="module")
def pipeline() -> Iterator[LocalPipeline]:
    with LocalPipeline(LocalConfig(write_key=WRITE_KEY, run_schedules=False)) as p:
        yield p


def _awake_zone(now: datetime) -> str:
    """A time zone where ``now`` is outside checkout-reminder's quiet hours (22:00-07:00), so the test
    does not depend on when it runs (the zones are 8 to 9 hours apart: one is always awake)."""
    for zone in ("UTC", "Asia/Tokyo", "America/Los_Angeles"):
        if 8 <= now.astimezone(ZoneInfo(zone)).hour < 21:
            return zone
    raise AssertionError("no zone awake")


def _send(pipeline: LocalPipeline, events: list[dict]) -> None:
    client = TrackingClient(pipeline.url, WRITE_KEY)
    try:
        assert client.batch(events).accepted == len(events)
    finally:
        client.close()
    pipeline.wait_drained(timeout_s=180)


def _reminders(pipeline: LocalPipeline, address: str) -> list[object]:
    found = []
    for message in pipeline.raw_emails():
        parsed = email.message_from_string(message["raw_data"], policy=policy.default)
        if address in message["destinations"] and parsed["X-CDP-Campaign"] == "checkout-reminder":
            found.append(parsed)
    return found


def _checkout(user: str, at: datetime, n: int) -> dict:
    return {"type": "track", "userId": user, "event": "Checkout Started", "messageId": f"e2e-co-{user}-{n}",
            "timestamp": at.strftime("%Y-%m-%dT%H:%M:%S.000Z"), "properties": {"value": 10}}


def test_a_checkout_reminder_is_sent_once_cancelled_by_an_order_or_scheduled(pipeline: LocalPipeline) -> None:
    now = datetime.now(UTC)
    zone = _awake_zone(now)
    people = {"u-ada": "ada.trigger@shopper.io", "u-bob": "bob.trigger@shopper.io", "u-cy": "cy.trigger@shopper.io"}
    _send(pipeline, [{"type": "identify", "userId": user, "traits": {"email": address, "first_name": user[2:],
                                                                    "timezone": zone}}
                     for user, address in people.items()])
    three_hours_ago = now - timedelta(hours=3)

    # When Ada and Bob started a checkout three hours ago (the hour's wait is over), Bob ordering after,
    # and Cy ten minutes ago (fifty minutes to go)
    _send(pipeline, [_checkout("u-ada", three_hours_ago, 1), _checkout("u-bob", three_hours_ago, 1),
                     {"type": "track", "userId": "u-bob", "event": "Order Completed", "messageId": "e2e-order-bob",
                      "timestamp": (three_hours_ago + timedelta(minutes=20)).strftime("%Y-%m-%dT%H:%M:%S.000Z"),
                      "properties": {"order_id": "o-1", "revenue": 10}},
                     _checkout("u-cy", now - timedelta(minutes=10), 1)])
    # and the stream delivers Ada's checkout again (a redelivered batch publishes its trigger again)
    _send(pipeline, [_checkout("u-ada", three_hours_ago, 1)])

    # Then Ada has exactly one reminder, Bob none, and Cy's wait is one schedule in the stack's group
    [reminder] = _reminders(pipeline, people["u-ada"])
    assert "your basket is waiting" in str(reminder["Subject"])
    assert _reminders(pipeline, people["u-bob"]) == [] and _reminders(pipeline, people["u-cy"]) == []
    assert pipeline.one_time is not None
    [waiting] = pipeline.one_time.pending()
    body = json.loads(waiting["Target"]["Input"])["trigger"]
    assert body["message_id"] == "e2e-co-u-cy-1" and waiting["ActionAfterCompletion"] == "DELETE"
    activate = pipeline.metrics.snapshot().get("ActivateFunction", {})
    assert activate.get("TriggeredSkipped{reason=cancelled_unless}") == 1
