"""A ledger of effects already produced, in the idempotency table (conditional puts, TTL)."""

from __future__ import annotations

import time
from functools import cached_property
from typing import Any

import boto3
from botocore.exceptions import ClientError

from cdp.errors import StoreError
from cdp.settings import Settings


class DynamoEffectLedger:
    def __init__(self, settings: Settings, *, ttl_days: int = 400) -> None:
        self.table = settings.idempotency_table
        self.settings = settings
        self.ttl_s = ttl_days * 86400

    @cached_property
    def client(self) -> Any:
        return boto3.client("dynamodb", region_name=self.settings.aws_region)

    def claim(self, key: str) -> bool:
        try:
            self.client.put_item(
                TableName=self.table,
                Item={"id": {"S": key}, "expires_at": {"N": str(int(time.time()) + self.ttl_s)}},
                ConditionExpression="attribute_not_exists(id)")
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "ConditionalCheckFailedException":
                return False
            raise StoreError("cannot claim effect", key=key) from exc
        return True

    def release(self, key: str) -> None:
        try:
            self.client.delete_item(TableName=self.table, Key={"id": {"S": key}})
        except ClientError as exc:
            raise StoreError("cannot release effect", key=key) from exc
