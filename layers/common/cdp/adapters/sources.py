"""Sources and their write keys in the SourcesTable. Keys are stored as SHA-256 hashes only."""

from __future__ import annotations

import hashlib
import secrets
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from cdp.adapters.aws import AwsAdapter
from cdp.adapters.errors import aws_errors
from cdp.collect.ingest import Source
from cdp.errors import ConcurrentUpdate, NotFound, StoreError
from cdp.settings import Settings
from cdp.times import format_time

#: The reason every failure of the sources table gives (the collector's documented reason code).
_UNAVAILABLE = "sources_unavailable"


def hash_write_key(write_key: str) -> str:
    """Write keys are random and long, so an unsalted SHA-256 is enough to keep them unreadable."""
    return hashlib.sha256(write_key.encode("utf-8")).hexdigest()


def new_write_key() -> str:
    return secrets.token_urlsafe(24)


class DynamoSourceStore(AwsAdapter):
    """Create, register, authenticate, list and disable sources.

    Successful authentications are cached for ``cache_seconds`` per warm Lambda, so a key
    disabled in the table stops working within that time (unknown keys are never cached).
    """

    service = "dynamodb"

    def __init__(
        self,
        settings: Settings,
        *,
        client: Any = None,
        cache_seconds: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(settings, client=client)
        self._cache_seconds = cache_seconds
        self._clock = clock
        self._cache: dict[str, tuple[float, Source]] = {}


    @property
    def _table(self) -> str:
        return self.settings.sources_table

    def create_source(self, name: str) -> tuple[str, str]:
        """A new source with a fresh write key: ``(source_id, write_key)``. The key is shown once."""
        write_key = new_write_key()
        source = self._put(name, write_key, source_id=_new_source_id())
        if source is None:  # a 192-bit collision: not in this universe
            raise StoreError("write_key_collision")
        return source.source_id, write_key

    def register_write_key(self, name: str, write_key: str) -> Source:
        """Make ``write_key`` valid for a source called ``name``; idempotent (returns the existing one)."""
        if not write_key:
            raise ValueError("write_key must not be empty")
        source = self._put(name, write_key, source_id=_new_source_id())
        if source is not None:
            return source
        existing = self._get(hash_write_key(write_key))
        if existing is None:
            raise StoreError("write_key_vanished")
        return existing

    def authenticate(self, write_key: str) -> Source | None:
        """The enabled source owning ``write_key``, or None."""
        key_hash = hash_write_key(write_key)
        cached = self._cache.get(key_hash)
        now = self._clock()
        if cached is not None and cached[0] > now:
            return cached[1]
        source = self._get(key_hash)
        if source is None or not source.enabled:
            self._cache.pop(key_hash, None)
            return None
        self._cache[key_hash] = (now + self._cache_seconds, source)
        return source

    def list_sources(self) -> list[Source]:
        return sorted((s for _, s in self._scan()), key=lambda s: (s.created_at, s.source_id))

    def disable(self, source_id: str) -> Source:
        """Disable every write key of ``source_id``. Raises :class:`NotFound`."""
        matches = [(key_hash, s) for key_hash, s in self._scan() if s.source_id == source_id]
        if not matches:
            raise NotFound("unknown_source", source_id=source_id)
        for key_hash, _ in matches:
            with aws_errors(_UNAVAILABLE):
                self.client.update_item(
                    TableName=self._table,
                    Key={"key_hash": {"S": key_hash}},
                    UpdateExpression="SET enabled = :false",
                    ExpressionAttributeValues={":false": {"BOOL": False}},
                )
            self._cache.pop(key_hash, None)
        _, source = matches[0]
        return Source(source.source_id, source.name, False, source.created_at)

    def _put(self, name: str, write_key: str, *, source_id: str) -> Source | None:
        source = Source(source_id, name, True, format_time(datetime.now(UTC)))
        try:
            with aws_errors(_UNAVAILABLE):
                self.client.put_item(
                    TableName=self._table,
                    Item={
                        "key_hash": {"S": hash_write_key(write_key)},
                        "source_id": {"S": source.source_id},
                        "name": {"S": source.name},
                        "enabled": {"BOOL": True},
                        "created_at": {"S": source.created_at},
                    },
                    ConditionExpression="attribute_not_exists(key_hash)",
                )
        except ConcurrentUpdate:  # the key is already registered
            return None
        return source

    def _get(self, key_hash: str) -> Source | None:
        with aws_errors(_UNAVAILABLE):
            item = self.client.get_item(TableName=self._table, Key={"key_hash": {"S": key_hash}}).get("Item")
        return _source(item) if item else None

    def _scan(self) -> list[tuple[str, Source]]:
        found: list[tuple[str, Source]] = []
        with aws_errors(_UNAVAILABLE):
            for page in self.client.get_paginator("scan").paginate(TableName=self._table):
                found.extend((item["key_hash"]["S"], _source(item)) for item in page.get("Items", []))
        return found


def _new_source_id() -> str:
    return f"src_{secrets.token_hex(8)}"


def _source(item: dict[str, Any]) -> Source:
    return Source(
        source_id=item["source_id"]["S"],
        name=item.get("name", {}).get("S", ""),
        enabled=item.get("enabled", {}).get("BOOL", True),
        created_at=item.get("created_at", {}).get("S", ""),
    )
