"""A secret of Secrets Manager, read through and kept for a while (the profile API's admin token).

The value is cached per warm Lambda for ``ttl_seconds`` so the admin routes cost one
GetSecretValue per container every few minutes, not one per request; a rotated token is
therefore accepted (and the old one refused) within that time.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from cdp.adapters.aws import aws_client
from cdp.adapters.errors import aws_errors
from cdp.errors import StoreError
from cdp.settings import Settings

DEFAULT_TTL_SECONDS = 300.0


class CachedSecret:
    """The string value of one secret (its ``AWSCURRENT`` version), read at most once per TTL."""

    def __init__(
        self,
        settings: Settings,
        secret_id: str,
        *,
        ttl_seconds: float = DEFAULT_TTL_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._settings = settings
        self._secret_id = secret_id
        self._ttl = ttl_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._value: str | None = None
        self._expires = 0.0

    def value(self) -> str:
        """The secret's value. Raises :class:`StoreError` when Secrets Manager cannot be read."""
        with self._lock:
            now = self._clock()
            if self._value is None or now >= self._expires:
                self._value = self._read()
                self._expires = now + self._ttl
            return self._value

    def _read(self) -> str:
        client = aws_client(self._settings, "secretsmanager")
        with aws_errors("secret_unavailable"):
            response = client.get_secret_value(SecretId=self._secret_id)
        value = response.get("SecretString")
        if not isinstance(value, str) or not value:
            raise StoreError("secret_empty", retryable=False)
        return value
