"""One way to talk to AWS: every client is configured from :class:`Settings` and made once per process.

Every adapter gets its boto3 clients from :func:`aws_client` and its PynamoDB settings from
:func:`pynamodb_meta` / :func:`pynamodb_connection`, so region, endpoint (the local emulator),
timeouts and retry mode are decided in one place. Clients are created on first use, never at import,
so tests and the local runner can set the environment (or start moto) first.

boto3 clients are thread-safe once made, but making them from a shared session is not: creation
holds a lock, on a session of our own.
"""

from __future__ import annotations

import threading
from functools import lru_cache
from typing import Any, ClassVar

from cdp.settings import Settings


class AwsClients:
    """The boto3 clients of one :class:`Settings`, each made on first use."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._clients: dict[tuple[str, str | None], Any] = {}
        self._lock = threading.Lock()
        self._session: Any = None

    def client(self, service: str, signature_version: str | None = None) -> Any:
        key = (service, signature_version)
        found = self._clients.get(key)
        if found is not None:
            return found
        with self._lock:
            if key not in self._clients:
                self._clients[key] = self._make(service, signature_version)
            return self._clients[key]

    def _make(self, service: str, signature_version: str | None = None) -> Any:
        import boto3.session

        if self._session is None:
            self._session = boto3.session.Session()
        return self._session.client(
            service,
            region_name=self.settings.aws_region,
            endpoint_url=endpoint_url(self.settings, service),
            config=botocore_config(self.settings, signature_version=signature_version),
        )


class AwsAdapter:
    """Base of the boto3 adapters: their settings, and their service's client, made on first use.

    ``client`` may be given (tests inject fakes); otherwise it is the process's shared client for
    ``service`` under ``settings``.
    """

    service: ClassVar[str]

    def __init__(self, settings: Settings, *, client: Any = None) -> None:
        self.settings = settings
        self._client = client

    @property
    def client(self) -> Any:
        if self._client is None:
            self._client = aws_client(self.settings, self.service)
        return self._client


def endpoint_url(settings: Settings, service: str) -> str | None:
    """The emulator's endpoint for ``service``, None on AWS: DynamoDB's own where it is served apart."""
    if service == "dynamodb" and settings.aws_endpoint_url_dynamodb:
        return settings.aws_endpoint_url_dynamodb
    return settings.aws_endpoint_url or None


def botocore_config(settings: Settings, *, signature_version: str | None = None) -> Any:
    """Timeouts and retries of every client; ``signature_version`` only where a client needs one
    (S3 presigned URLs of KMS-encrypted objects must be signed with ``s3v4``)."""
    from botocore.config import Config

    extra = {"signature_version": signature_version} if signature_version else {}
    return Config(
        connect_timeout=settings.aws_connect_timeout,
        read_timeout=settings.aws_read_timeout,
        retries={"mode": "standard", "total_max_attempts": settings.aws_max_attempts},
        **extra,
    )


@lru_cache(maxsize=8)
def aws_clients(settings: Settings) -> AwsClients:
    return AwsClients(settings)


def aws_client(settings: Settings, service: str, *, signature_version: str | None = None) -> Any:
    """The process's boto3 client for ``service`` under ``settings`` (and ``signature_version``)."""
    return aws_clients(settings).client(service, signature_version)


def pynamodb_meta(settings: Settings, table_name: str) -> dict[str, Any]:
    """A PynamoDB model ``Meta`` for ``table_name``: same region, endpoint, timeouts and retries."""
    meta: dict[str, Any] = {
        "table_name": table_name,
        "region": settings.aws_region,
        "connect_timeout_seconds": settings.aws_connect_timeout,
        "read_timeout_seconds": settings.aws_read_timeout,
        "max_retry_attempts": pynamodb_retries(settings),
    }
    host = endpoint_url(settings, "dynamodb")
    if host:
        meta["host"] = host
    return meta


def pynamodb_connection(settings: Settings) -> Any:
    """A PynamoDB connection (for transactions) configured like :func:`pynamodb_meta`."""
    from pynamodb.connection import Connection

    return Connection(
        region=settings.aws_region,
        host=endpoint_url(settings, "dynamodb"),
        connect_timeout_seconds=settings.aws_connect_timeout,
        read_timeout_seconds=settings.aws_read_timeout,
        max_retry_attempts=pynamodb_retries(settings),
    )


def pynamodb_retries(settings: Settings) -> int:
    """PynamoDB counts retries after the first call (botocore's ``total_max_attempts`` is this + 1)."""
    return max(settings.aws_max_attempts - 1, 0)


def reset_clients() -> None:
    """Forget every client (tests that start and stop moto between cases)."""
    aws_clients.cache_clear()
