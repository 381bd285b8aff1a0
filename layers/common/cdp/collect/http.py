"""The collector's edge: one table from typed errors to HTTP responses (no framework here)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from cdp.errors import (
    CdpError,
    EventsRejected,
    Forbidden,
    InvalidEvent,
    MalformedRequest,
    NotFound,
    PayloadTooLarge,
    StoreError,
    StreamUnavailable,
    Throttled,
    Unauthorized,
    WriteKeyRejected,
)

from .ingest import IngestResult

#: Seconds a sender should wait before retrying a 429 or 503.
RETRY_AFTER_SECONDS = 2

#: First match wins, so subclasses come before their bases.
ERROR_STATUS: tuple[tuple[type[CdpError], int], ...] = (
    (WriteKeyRejected, 401),
    (Unauthorized, 401),
    (Forbidden, 403),
    (NotFound, 404),
    (PayloadTooLarge, 400),
    (EventsRejected, 400),
    (MalformedRequest, 400),
    (InvalidEvent, 400),
    (Throttled, 429),
    (StreamUnavailable, 503),
    (StoreError, 503),
)


#: Browsers may call the tracking routes from any site. No cookies are read, so ``*`` is safe;
#: Authorization must be listed by name (a wildcard does not cover it).
CORS_HEADERS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Expose-Headers": "Retry-After",
}
PREFLIGHT_HEADERS = {
    **CORS_HEADERS,
    "Access-Control-Allow-Methods": "POST, OPTIONS",
    "Access-Control-Allow-Headers": "Authorization, Content-Type, Content-Encoding",
    "Access-Control-Max-Age": "86400",
}


@dataclass(frozen=True, slots=True)
class HttpResponse:
    status: int
    body: Any  # a JSON object, or str/bytes for non-JSON responses
    headers: dict[str, str] = field(default_factory=dict)


def status_for(exc: CdpError) -> int:
    for kind, status in ERROR_STATUS:
        if isinstance(exc, kind):
            return status
    return 500


def public_code(exc: CdpError) -> str:
    """The ``error`` a client sees. Every store failure but the stream's is ``store_error``: how a
    store failed (throttled, a lost race) is ours to know; the client only needs 503 and when to retry."""
    if isinstance(exc, StoreError) and not isinstance(exc, StreamUnavailable):
        return StoreError.code
    return exc.code


def error_response(exc: CdpError) -> HttpResponse:
    """``{"success": false, "error": code, "reason": reason, ...details}`` with the mapped status.

    ``code`` and ``message`` repeat the reason in the shape Segment's SDKs log for a refusal.
    """
    status = status_for(exc)
    code = public_code(exc)
    body: dict[str, Any] = {
        "success": False,
        "error": code,
        "reason": exc.reason,
        "code": exc.reason,
        "message": f"{code}: {exc.reason}",
    }
    for key in ("rejected", "limit", "limit_bytes", "scope"):
        if key in exc.details:
            body[key] = exc.details[key]
    headers = {"Retry-After": str(RETRY_AFTER_SECONDS)} if status in (429, 503) else {}
    if status == 401 and isinstance(exc, WriteKeyRejected):
        headers["WWW-Authenticate"] = 'Basic realm="cdp"'
    return HttpResponse(status, body, headers)


def success_response(result: IngestResult) -> HttpResponse:
    """Segment SDKs look for 200 and ``success``; the rejected events are named by index."""
    return HttpResponse(
        200,
        {
            "success": True,
            "accepted": result.accepted,
            "rejected": [r.to_dict() for r in result.rejected],
        },
    )


def preflight_response() -> HttpResponse:
    """The answer to a CORS preflight (``OPTIONS``) of a tracking route."""
    return HttpResponse(204, "", dict(PREFLIGHT_HEADERS))
