"""``GET /v1/profiles/{identifier}``: an admin-only read of one unified profile."""

from __future__ import annotations

import dataclasses
import hmac
import json
from collections.abc import Callable
from typing import Any
from urllib.parse import unquote

from cdp.errors import CdpError, NotFound, Unauthorized

from .http import HttpResponse, error_response


def require_bearer(authorization: str | None, admin_token: str) -> None:
    """Raise :class:`Unauthorized` unless ``authorization`` is ``Bearer <admin_token>``."""
    scheme, _, token = (authorization or "").strip().partition(" ")
    if not admin_token or scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("admin_token_required")
    if not hmac.compare_digest(token.strip().encode("utf-8"), admin_token.encode("utf-8")):
        raise Unauthorized("admin_token_required")


def profile_response(
    identifier: str,
    *,
    authorization: str | None,
    admin_token: str,
    lookup: Callable[[str], Any],
) -> HttpResponse:
    """200 with the profile, 401 without the admin token, 404 when no profile has ``identifier``."""
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
