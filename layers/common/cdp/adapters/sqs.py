"""Hands membership changes to activation: the email queue, then the destinations queue.

Two queues, two consumers: a failing ad platform or webhook endpoint never holds up email and the
other way round (docs/architecture.md, "Destinations"). A change is sent to each queue in turn; if the
second send fails the publish fails and the outbox announces the change again, which the email
channel's effect ledger dedupes.
"""

from __future__ import annotations

import json

from cdp import concurrently
from cdp.adapters.aws import AwsAdapter
from cdp.adapters.errors import aws_errors
from cdp.errors import StoreError
from cdp.segments.membership import MembershipChange

#: SendMessageBatch takes at most 10 entries.
BATCH_SIZE = 10


def send_batches(client: object, queue: str, messages: list[tuple[object, int]], *, what: str) -> None:
    """SendMessageBatch, 10 at a time and the batches at once: each message a JSON body and its delay
    (0-900 s). Any entry SQS refuses fails the call (retryable) once every batch has been tried: the
    caller's record is retried and the consumer dedupes."""

    def send(chunk: list[tuple[object, int]]) -> None:
        with aws_errors(f"cannot send {what}"):
            out = client.send_message_batch(  # type: ignore[attr-defined]
                QueueUrl=queue, Entries=[{"Id": str(i), "MessageBody": json.dumps(body), "DelaySeconds": delay}
                                         for i, (body, delay) in enumerate(chunk)])
        if out.get("Failed"):
            raise StoreError(f"some {what} were not sent", failed=out["Failed"])

    concurrently.all_of(send, [messages[start:start + BATCH_SIZE] for start in range(0, len(messages), BATCH_SIZE)])


class SqsChangePublisher(AwsAdapter):
    service = "sqs"

    def __call__(self, changes: list[MembershipChange]) -> None:
        queues = [q for q in (self.settings.activation_queue_url, self.settings.destination_queue_url) if q]
        for queue in queues:
            send_batches(self.client, queue, [(c.to_dict(), 0) for c in changes], what="membership changes")


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
        send_batches(self.client, self.settings.activation_queue_url,
                     [(m.to_body(), delay) for m, delay in messages], what="campaign triggers")


class SqsConsentSignals(AwsAdapter):
    """Tells the destinations that these people's ad consent may have changed (one message each)."""

    service = "sqs"

    def __call__(self, profile_ids: list[str]) -> None:
        from cdp.activation.destinations import Reconcile

        if self.settings.destination_queue_url:
            send_batches(self.client, self.settings.destination_queue_url,
                         [(Reconcile(pid).to_dict(), 0) for pid in profile_ids], what="consent signals")


class SqsActivationMessages(AwsAdapter):
    """Puts messages on the activation queue, 10 a call (a scheduled campaign's fan-out)."""

    service = "sqs"

    def __call__(self, bodies: list[dict[str, str]]) -> None:
        send_batches(self.client, self.settings.activation_queue_url, [(b, 0) for b in bodies],
                     what="campaign messages")
