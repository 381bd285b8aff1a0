"""``GET /v1/profiles/{identifier}``: an admin-only read of one unified profile."""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import json
import re
from collections.abc import Callable
from typing import Any
from urllib.parse import unquote

from cdp.errors import CdpError, NotFound, Unauthorized

from .http import HttpResponse, error_response

_TYPE = re.compile(r"[a-z][a-z0-9_]{0,31}")


def require_bearer(authorization: str | None, admin_token: str | Callable[[], str]) -> None:
    """Raise :class:`Unauthorized` unless ``authorization`` is ``Bearer <admin_token>``.

    ``admin_token`` may be a getter (a secret read through a cache): it is only called for a
    request that carries a bearer token at all. The comparison takes the same time wherever the
    tokens differ.
    """
    scheme, _, token = (authorization or "").strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("admin_token_required")
    expected = admin_token() if callable(admin_token) else admin_token
    if not expected or not hmac.compare_digest(token.strip().encode("utf-8"), expected.encode("utf-8")):
        raise Unauthorized("admin_token_required")


def profile_response(
    identifier: str,
    *,
    authorization: str | None,
    admin_token: str | Callable[[], str],
    lookup: Callable[[str], Any],
) -> HttpResponse:
    """200 with the profile, 401 without the admin token, 404 when no profile has ``identifier``,
    503 when the admin token cannot be read."""
    try:
        require_bearer(authorization, admin_token)
        profile = lookup(unquote(identifier))
        if profile is None:
            raise NotFound("profile_not_found")
    except CdpError as exc:
        return error_response(exc)
    return HttpResponse(200, _as_json_object(profile))


def _as_json_object(profile: Any) -> dict[str, Any]:
    if hasattr(profile, "to_dict"):
        profile = profile.to_dict()
    elif dataclasses.is_dataclass(profile) and not isinstance(profile, type):
        profile = dataclasses.asdict(profile)
    # Round-trip so sets, datetimes and Decimals become plain JSON values.
    value = json.loads(json.dumps(profile, default=_plain))
    return value if isinstance(value, dict) else {"profile": value}


def _plain(value: Any) -> Any:
    if isinstance(value, set | frozenset):
        return sorted(value, key=str)
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if type(value).__name__ == "Decimal":
        return int(value) if value == int(value) else float(value)
    return str(value)


def audit_record(route: str, identifier: str, response: HttpResponse, *, caller: str | None) -> dict[str, Any]:
    """What an admin read is logged as: who asked, on which route, for which profile, with what outcome.

    The identifier is PII (an email, a phone number), so only its type and a hash of the whole
    identifier are kept; the hash lets an auditor check whether a given identifier was looked up.
    """
    text = unquote(identifier).strip()
    kind, sep, _ = text.partition(":")
    kind = kind.strip().lower()
    body = response.body if isinstance(response.body, dict) else {}
    profile_id = body.get("profile_id") if response.status == 200 else None
    return {
        "audit": "profile_read",
        "route": route,
        "caller": caller,
        "identifier_type": kind if sep and _TYPE.fullmatch(kind) else "unknown",
        "identifier_sha256": hashlib.sha256(text.encode("utf-8")).hexdigest(),
        "profile_id": profile_id if isinstance(profile_id, str) else None,
        "status": response.status,
    }
