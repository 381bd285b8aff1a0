"""A ledger of effects already produced, in the idempotency table (conditional puts, TTL)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from cdp.adapters.aws import aws_client
from cdp.adapters.errors import aws_errors
from cdp.errors import ConcurrentUpdate
from cdp.settings import Settings


class DynamoEffectLedger:
    """``claim(key)`` is True once per key (until its TTL): the caller then produces the effect."""

    def __init__(
        self,
        settings: Settings,
        *,
        client: Any = None,
        ttl_days: int = 400,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.table = settings.idempotency_table
        self.settings = settings
        self.ttl_s = ttl_days * 86400
        self._client = client
        self._clock = clock

    @property
    def client(self) -> Any:
        if self._client is None:
            self._client = aws_client(self.settings, "dynamodb")
        return self._client

    def claim(self, key: str) -> bool:
        """True if this call claimed ``key``; False if it was claimed before. Raises StoreError."""
        try:
            with aws_errors("cannot claim effect", key=key):
                self.client.put_item(
                    TableName=self.table,
                    Item={"id": {"S": key}, "expires_at": {"N": str(int(self._clock()) + self.ttl_s)}},
                    ConditionExpression="attribute_not_exists(id)",
                )
        except ConcurrentUpdate:
            return False
        return True

    def release(self, key: str) -> None:
        """Forget ``key`` (its effect failed), so a retry may claim it again."""
        with aws_errors("cannot release effect", key=key):
            self.client.delete_item(TableName=self.table, Key={"id": {"S": key}})
