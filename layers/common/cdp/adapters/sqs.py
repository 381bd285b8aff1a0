"""Hands membership changes to activation through the activation queue."""

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
        for start in range(0, len(changes), BATCH_SIZE):
            chunk = changes[start:start + BATCH_SIZE]
            with aws_errors("cannot publish membership changes"):
                out = self.client.send_message_batch(
                    QueueUrl=self.settings.activation_queue_url,
                    Entries=[{"Id": str(i), "MessageBody": json.dumps(c.to_dict())} for i, c in enumerate(chunk)])
            if out.get("Failed"):
                raise StoreError("some membership changes were not published", failed=out["Failed"])
