"""Webhooks: segment changes POSTed as JSON to an HTTPS endpoint, signed per Standard Webhooks.

Signing (github.com/standard-webhooks/standard-webhooks, spec/standard-webhooks.md): headers
``webhook-id`` (stable per message: the receiver dedupes on it), ``webhook-timestamp`` (integer Unix
seconds) and ``webhook-signature`` = ``v1,`` + base64(HMAC-SHA256(key, f"{id}.{timestamp}.{body}")),
where the key is the base64-decoded part of a ``whsec_<base64>`` secret. The payload follows the
spec's recommended shape: ``{"type", "timestamp", "data"}``.

Delivery: at least once, with a stable ``webhook-id``, so a receiver that dedupes sees each change
once. A 2xx is delivered; 429 and 5xx (and connection failures) are retried on the schedule below,
never sooner than ``Retry-After``; 410 Gone disables the destination (its messages are dead-lettered
until it is enabled again); any other answer is a permanent refusal (dead-lettered at once).

Endpoints: only ``https`` URLs whose host resolves to public addresses (no private, loopback or
link-local targets: SSRF); ``http://127.0.0.1`` only when running locally (``allow_local``).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from cdp.errors import DestinationRefused, InvalidConfig
from cdp.segments.membership import MembershipChange

SECRET_PREFIX = "whsec_"
#: Seconds before attempt n+1 (after the first failure, ...): the schedule Standard Webhooks' reference
#: implementation (Svix) documents (5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h: about 28 hours in all);
#: then the message is dead-lettered.
WEBHOOK_SCHEDULE: tuple[int, ...] = (5, 300, 1800, 7200, 18000, 36000, 36000)
MAX_RETRY_AFTER_S = 12 * 3600


def secret_key(secret: str) -> bytes:
    if not secret.startswith(SECRET_PREFIX):
        raise InvalidConfig("a webhook secret must look like whsec_<base64>")
    try:
        key = base64.b64decode(secret[len(SECRET_PREFIX):], validate=True)
    except ValueError as exc:
        raise InvalidConfig("a webhook secret must look like whsec_<base64>") from exc
    if len(key) < 24:
        raise InvalidConfig("a webhook secret must hold at least 24 random bytes")
    return key


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` header value (one ``v1`` signature)."""
    signed = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(secret_key(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def message_id(destination: str, change: MembershipChange) -> str:
    """Stable across retries and redeliveries of one change to one destination."""
    return "msg_" + hashlib.sha256(f"{destination}|{change.dedupe_key}".encode()).hexdigest()[:32]


def payload(change: MembershipChange) -> bytes:
    body = {"type": f"segment.{change.change.value}", "timestamp": change.at,
            "data": {"segment": change.segment, "profile_id": change.profile_id, "run_id": change.run_id,
                     "change": change.change.value, "at": change.at}}
    return json.dumps(body, separators=(",", ":"), sort_keys=True).encode()


def backoff(attempt: int, schedule: tuple[int, ...], *, retry_after: float | None = None,
            rand: Callable[[], float] = random.random, max_step: float | None = None) -> float | None:
    """Seconds to wait before attempt ``attempt + 1`` (``attempt`` failures so far), or None: give up.

    Each step is first cut to ``max_step`` (when given; the number of attempts stays the
    schedule's), then jittered by +/-20% so a recovering endpoint is not hit by every message at
    once; a ``Retry-After`` longer than the step wins (capped at 12 hours).
    """
    if attempt < 1 or attempt > len(schedule):
        return None
    step = schedule[attempt - 1] if max_step is None else min(schedule[attempt - 1], max_step)
    delay = step * (0.8 + 0.4 * rand())
    if retry_after is not None:
        delay = max(delay, min(float(retry_after), MAX_RETRY_AFTER_S))
    return round(delay, 1)


class HttpPoster(Protocol):
    def request(self, method: str, url: str, *, headers: dict[str, str], body: bytes) -> Any: ...


@dataclass(frozen=True, slots=True)
class Webhook:
    name: str
    url: str
    secret: str

    def post(self, change: Any, transport: HttpPoster, *, now: int) -> str:
        """POST one change (or a trigger post: :class:`cdp.activation.trigger_posts.TriggerPost`); the
        message id on 2xx, else :class:`DestinationRefused` with its action."""
        if isinstance(change, MembershipChange):
            msg_id, body = message_id(self.name, change), payload(change)
        else:
            msg_id, body = change.webhook_id(), change.payload()
        headers = {"Content-Type": "application/json", "webhook-id": msg_id, "webhook-timestamp": str(now),
                   "webhook-signature": sign(self.secret, msg_id, now, body), "User-Agent": "serverless-cdp"}
        response = transport.request("POST", self.url, headers=headers, body=body)
        status = int(response.status)
        if 200 <= status < 300:
            return msg_id
        raise DestinationRefused("the webhook endpoint refused the message", action=classify(status),
                                 retry_after=retry_after(getattr(response, "headers", None) or {}),
                                 status=status, destination=self.name)


def classify(status: int) -> str:
    if status == 410:
        return "disable"
    if status == 429:
        return "slow_down"
    if status >= 500 or status == 408:
        return "retry"
    return "abort"


def retry_after(headers: Mapping[str, str]) -> float | None:
    value = headers.get("retry-after") or headers.get("Retry-After")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        from datetime import UTC, datetime
        from email.utils import parsedate_to_datetime

        try:
            return max(0.0, (parsedate_to_datetime(value) - datetime.now(UTC)).total_seconds())
        except (TypeError, ValueError):
            return None


def new_secret(rand_bytes: Callable[[int], bytes] | None = None) -> str:
    """A fresh ``whsec_`` secret (32 random bytes) for ``cdp webhooks secret``."""
    import os

    return SECRET_PREFIX + base64.b64encode((rand_bytes or os.urandom)(32)).decode()
