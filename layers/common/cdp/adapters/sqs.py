"""Hands membership changes to activation: the email queue, then the destinations queue.

Two queues, two consumers: a failing ad platform or webhook endpoint never holds up email and the
other way round (docs/architecture.md, "Destinations"). A change is sent to each queue in turn; if the
second send fails the publish fails and the outbox announces the change again, which the email
channel's effect ledger dedupes.
"""

from __future__ import annotations

import json

from cdp.adapters.aws import AwsAdapter
from cdp.adapters.errors import aws_errors
from cdp.errors import StoreError
from cdp.segments.membership import MembershipChange

#: SendMessageBatch takes at most 10 entries.
BATCH_SIZE = 10


class SqsChangePublisher(AwsAdapter):
    service = "sqs"

    def __call__(self, changes: list[MembershipChange]) -> None:
        queues = [q for q in (self.settings.activation_queue_url, self.settings.destination_queue_url) if q]
        for queue in queues:
            self._send(queue, changes)

    def _send(self, queue: str, changes: list[MembershipChange]) -> None:
        for start in range(0, len(changes), BATCH_SIZE):
            chunk = changes[start:start + BATCH_SIZE]
            with aws_errors("cannot publish membership changes"):
                out = self.client.send_message_batch(
                    QueueUrl=queue,
                    Entries=[{"Id": str(i), "MessageBody": json.dumps(c.to_dict())} for i, c in enumerate(chunk)])
            if out.get("Failed"):
                raise StoreError("some membership changes were not published", failed=out["Failed"])


class SqsDeferrals(AwsAdapter):
    """Puts deferred campaign messages back on the activation queue with their delay (<= 900 s)."""

    service = "sqs"

    def defer(self, deferred: list) -> None:  # list[cdp.campaigns.entries.Deferred]
        for item in deferred:
            with aws_errors("cannot defer a campaign message"):
                self.client.send_message(QueueUrl=self.settings.activation_queue_url,
                                         MessageBody=json.dumps(item.body), DelaySeconds=item.delay_seconds)


class SqsTriggerPublisher(AwsAdapter):
    """Unify's trigger feed: trigger messages onto the activation queue, each with its own delay (<= 900 s)."""

    service = "sqs"

    def __call__(self, messages: list) -> None:  # list[tuple[cdp.campaigns.triggers.TriggerMessage, int]]
        for start in range(0, len(messages), BATCH_SIZE):
            chunk = messages[start:start + BATCH_SIZE]
            with aws_errors("cannot publish campaign triggers"):
                out = self.client.send_message_batch(
                    QueueUrl=self.settings.activation_queue_url,
                    Entries=[{"Id": str(i), "MessageBody": json.dumps(m.to_body()), "DelaySeconds": delay}
                             for i, (m, delay) in enumerate(chunk)])
            if out.get("Failed"):
                raise StoreError("some campaign triggers were not published", failed=out["Failed"])


class SqsConsentSignals(AwsAdapter):
    """Tells the destinations that these people's ad consent may have changed (one message each)."""

    service = "sqs"

    def __call__(self, profile_ids: list[str]) -> None:
        from cdp.activation.destinations import Reconcile

        if not self.settings.destination_queue_url:
            return
        for start in range(0, len(profile_ids), BATCH_SIZE):
            chunk = profile_ids[start:start + BATCH_SIZE]
            with aws_errors("cannot signal consent changes"):
                out = self.client.send_message_batch(
                    QueueUrl=self.settings.destination_queue_url,
                    Entries=[{"Id": str(i), "MessageBody": json.dumps(Reconcile(pid).to_dict())}
                             for i, pid in enumerate(chunk)])
            if out.get("Failed"):
                raise StoreError("some consent signals were not sent", failed=out["Failed"])


class SqsActivationMessages(AwsAdapter):
    """Puts messages on the activation queue, 10 a call (a scheduled campaign's fan-out)."""

    service = "sqs"

    def __call__(self, bodies: list[dict[str, str]]) -> None:
        for start in range(0, len(bodies), BATCH_SIZE):
            chunk = bodies[start:start + BATCH_SIZE]
            with aws_errors("cannot queue campaign messages"):
                out = self.client.send_message_batch(
                    QueueUrl=self.settings.activation_queue_url,
                    Entries=[{"Id": str(i), "MessageBody": json.dumps(b)} for i, b in enumerate(chunk)])
            if out.get("Failed"):
                raise StoreError("some campaign messages were not queued", retryable=True, failed=out["Failed"])
