"""A ledger of effects, in the idempotency table: one item per effect, claimed with conditional writes.

Item: ``id`` (the effect key), ``state`` (``pending`` | ``sent`` | ``failed``), ``attempts`` (sends
that may have reached the provider), ``hold_until`` (epoch seconds: a pending claim is the holder's
until then), ``provider_id`` (sent), ``reason`` (failed), ``expires_at`` (the table's TTL).

``claim`` is one conditional UpdateItem that succeeds if the item is absent, or pending, expired and
not out of attempts (a takeover); ``release`` makes a pending claim expired at once and gives its
attempt back; ``confirm_sent`` (SES's Send event, in the feedback function) makes a pending claim
``sent`` and touches nothing else. The rules are those of :class:`cdp.activation.InMemoryEffectLedger`.

``hold_s`` (``Settings.effect_claim_hold_seconds``, 300 s) must exceed the longest an attempt can
live (the Timeout of the function that claims, 60 s: Lambda ends the attempt, send included, by
then) so a live holder is never taken over, and stay under the queue's VisibilityTimeout x
(maxReceiveCount - 1) so a redelivery takes a dead holder's claim over before the message reaches
the dead-letter queue (180 s x 4). ``tests/unit/test_template.py`` checks both against the template.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from cdp.activation import ClaimResult
from cdp.adapters.aws import AwsAdapter
from cdp.adapters.errors import aws_errors
from cdp.errors import ConcurrentUpdate, MalformedSetting
from cdp.settings import Settings


class DynamoEffectLedger(AwsAdapter):
    service = "dynamodb"

    def __init__(self, settings: Settings, *, client: Any = None, ttl_days: int = 400, hold_s: int | None = None,
                 max_attempts: int = 2, clock: Callable[[], float] = time.time) -> None:
        super().__init__(settings, client=client)
        self.table = settings.idempotency_table
        self.ttl_s = ttl_days * 86400
        self.hold_s = settings.effect_claim_hold_seconds if hold_s is None else hold_s
        if self.hold_s <= 0:
            raise MalformedSetting("a claim's hold must be positive", name="EFFECT_CLAIM_HOLD_SECONDS",
                                   expected="seconds > 0")
        self.max_attempts = max_attempts
        self.clock = clock

    def claim(self, key: str) -> ClaimResult:
        now = int(self.clock())
        try:
            with aws_errors("cannot claim effect", key=key):
                self.client.update_item(
                    TableName=self.table, Key=_key(key),
                    UpdateExpression="SET #st = :pending, hold_until = :until, expires_at = :ttl ADD attempts :one",
                    ConditionExpression=("attribute_not_exists(id) OR "
                                         "(#st = :pending AND hold_until <= :now AND attempts < :max)"),
                    ExpressionAttributeNames={"#st": "state"},
                    ExpressionAttributeValues={
                        ":pending": {"S": "pending"}, ":until": {"N": str(now + self.hold_s)},
                        ":ttl": {"N": str(now + self.ttl_s)}, ":one": {"N": "1"}, ":now": {"N": str(now)},
                        ":max": {"N": str(self.max_attempts)}})
        except ConcurrentUpdate:
            return self._held(key, now)
        return "acquired"

    def _held(self, key: str, now: int) -> ClaimResult:
        item = self.state(key)
        state = item.get("state", "pending")
        if state == "sent":
            return "sent"
        if state == "failed":
            return "failed"
        return "pending" if int(item.get("hold_until", now + 1)) > now else "exhausted"

    def state(self, key: str) -> dict[str, Any]:
        """The claim's attributes (``state``, ``attempts``, ``hold_until``, ...) as plain values."""
        with aws_errors("cannot read effect", key=key):
            item = self.client.get_item(TableName=self.table, Key=_key(key), ConsistentRead=True).get("Item")
        return {name: (int(value["N"]) if "N" in value else value.get("S")) for name, value in (item or {}).items()}

    def mark_sent(self, key: str, provider_id: str) -> None:
        with aws_errors("cannot mark effect sent", key=key):
            self.client.update_item(
                TableName=self.table, Key=_key(key), UpdateExpression="SET #st = :sent, provider_id = :pid",
                ExpressionAttributeNames={"#st": "state"},
                ExpressionAttributeValues={":sent": {"S": "sent"}, ":pid": {"S": provider_id}})

    def mark_failed(self, key: str, reason: str) -> None:
        self._if_pending(key, "SET #st = :failed, reason = :reason",
                         {":failed": {"S": "failed"}, ":reason": {"S": reason}}, "cannot mark effect failed")

    def release(self, key: str) -> None:
        self._if_pending(key, "SET hold_until = :zero ADD attempts :minus_one",
                         {":zero": {"N": "0"}, ":minus_one": {"N": "-1"}}, "cannot release effect")

    def confirm_sent(self, key: str, provider_id: str) -> bool:
        # ``#st = :pending`` is false for an absent item: a Send event never creates a claim.
        return self._if_pending(key, "SET #st = :sent, provider_id = :pid",
                                {":sent": {"S": "sent"}, ":pid": {"S": provider_id}}, "cannot confirm effect sent")

    def _if_pending(self, key: str, update: str, values: dict[str, Any], reason: str) -> bool:
        try:
            with aws_errors(reason, key=key):
                self.client.update_item(
                    TableName=self.table, Key=_key(key), UpdateExpression=update,
                    ConditionExpression="#st = :pending", ExpressionAttributeNames={"#st": "state"},
                    ExpressionAttributeValues={**values, ":pending": {"S": "pending"}})
        except ConcurrentUpdate:
            return False  # already sent or failed: a decided claim is never reopened
        return True


def _key(key: str) -> dict[str, Any]:
    return {"id": {"S": key}}
