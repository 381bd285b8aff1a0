"""One translator from AWS SDK errors (botocore, PynamoDB, pyarrow's S3) to the domain's typed errors.

Adapters wrap every call in :func:`aws_errors`; the domain and the edges only ever see
:class:`cdp.errors.StoreError` and its subclasses, each with a ``retryable`` flag:

| SDK error | domain error | retryable |
| --- | --- | --- |
| condition failed, transaction cancelled | ``ConcurrentUpdate`` | yes (re-read first) |
| throttling (any service's code) | ``ServiceThrottled`` | yes, after a pause |
| connection refused or closed, timeouts, 5xx, internal errors | ``StoreError`` | yes |
| anything else the service refused (validation, not found, access denied) | ``StoreError`` | no |

Adapters that give a condition failure a meaning of their own (an identifier already claimed, an
effect already produced) catch ``ConcurrentUpdate`` from this context and raise their own error.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from cdp.errors import ConcurrentUpdate, QueryFailed, ServiceThrottled, StoreError

CONDITION_CODES = frozenset({"ConditionalCheckFailedException", "TransactionCanceledException"})
THROTTLING_CODES = frozenset({
    "Throttling", "ThrottlingException", "ThrottledException", "RequestThrottled",
    "RequestThrottledException", "ProvisionedThroughputExceededException", "RequestLimitExceeded",
    "TooManyRequestsException", "SlowDown", "LimitExceededException", "TransactionInProgressException",
    "KMSThrottlingException", "BandwidthLimitExceeded", "EC2ThrottledException",
})
RETRYABLE_CODES = frozenset({
    "InternalServerError", "InternalServerErrorException", "InternalFailure", "InternalError",
    "ServiceUnavailable", "ServiceUnavailableException", "TransactionConflictException",
    "RequestTimeout", "RequestTimeoutException", "PriorRequestNotComplete",
})


def error_code(exc: BaseException) -> str | None:
    """The service's error code of a botocore or PynamoDB error (None for a transport error)."""
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        code = response.get("Error", {}).get("Code")
        return str(code) if code else None
    cause = getattr(exc, "cause", None)
    if cause is not None and cause is not exc:
        return error_code(cause)
    return None


def _status(exc: BaseException) -> int:
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        return int(response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
    cause = getattr(exc, "cause", None)
    return _status(cause) if cause is not None and cause is not exc else 0


def is_sdk_error(exc: BaseException) -> bool:
    """True for the errors this module translates: botocore's, PynamoDB's and pyarrow's I/O errors."""
    from botocore.exceptions import BotoCoreError, ClientError

    if isinstance(exc, BotoCoreError | ClientError):
        return True
    pynamodb = sys.modules.get("pynamodb.exceptions")  # only loaded if an adapter uses PynamoDB
    if pynamodb is not None and isinstance(exc, pynamodb.PynamoDBException):
        return True
    # pyarrow's S3 filesystem raises OSError (its ArrowIOError) for every transport or service error.
    return isinstance(exc, OSError)


def translate(exc: BaseException, reason: str, **details: Any) -> StoreError:
    """The domain error for ``exc`` (an SDK error), with ``reason`` and ``details`` attached."""
    code = error_code(exc)
    if code is not None:
        details.setdefault("code", code)
    if code in CONDITION_CODES:
        return ConcurrentUpdate(reason, **details)
    if code in THROTTLING_CODES:
        return ServiceThrottled(reason, **details)
    if code is None and isinstance(exc, FileNotFoundError):
        return StoreError(reason, retryable=False, code="NotFound", **details)
    if code is None:
        # No answer from the service: connection refused or reset, a timeout, a broken transfer.
        return StoreError(reason, retryable=True, **details)
    return StoreError(reason, retryable=code in RETRYABLE_CODES or _status(exc) >= 500, **details)


@contextmanager
def aws_errors(reason: str, **details: Any) -> Iterator[None]:
    """Run an SDK call; any SDK error leaves as :func:`translate`'s domain error (``from`` the original)."""
    try:
        yield
    except StoreError:
        raise
    except Exception as exc:
        if not is_sdk_error(exc):
            raise
        raise translate(exc, reason, **details) from exc


@contextmanager
def query_errors(reason: str, *, engine: str, **details: Any) -> Iterator[None]:
    """:func:`aws_errors` for a query engine: SDK errors leave as ``QueryFailed`` (same ``retryable``),
    the one error a segment run expects from its engine."""
    try:
        with aws_errors(reason, engine=engine, **details):
            yield
    except QueryFailed:
        raise
    except StoreError as exc:
        raise QueryFailed(f"{reason}: {exc.__cause__}", retryable=exc.retryable, **exc.details) from exc.__cause__
