"""Hands membership changes to activation through the activation queue."""

from __future__ import annotations

import json
from functools import cached_property
from typing import Any

import boto3
from botocore.exceptions import ClientError

from cdp.errors import StoreError
from cdp.segments.membership import MembershipChange
from cdp.settings import Settings


class SqsChangePublisher:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    @cached_property
    def client(self) -> Any:
        return boto3.client("sqs", region_name=self.settings.aws_region)

    def __call__(self, changes: list[MembershipChange]) -> None:
        for start in range(0, len(changes), 10):  # SendMessageBatch takes 10 entries
            chunk = changes[start:start + 10]
            try:
                out = self.client.send_message_batch(
                    QueueUrl=self.settings.activation_queue_url,
                    Entries=[{"Id": str(i), "MessageBody": json.dumps(c.to_dict())} for i, c in enumerate(chunk)])
            except ClientError as exc:
                raise StoreError("cannot publish membership changes") from exc
            if out.get("Failed"):
                raise StoreError("some membership changes were not published", failed=out["Failed"])
