"""``GET /v1/profiles/{identifier}``: an admin-only read of one unified profile."""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

from cdp.errors import CdpError, Forbidden, NotFound, Unauthorized
from cdp.operators import (
    BREAK_GLASS,
    ROUTE_SCOPES,
    Caller,
    OperatorDirectory,
    authorize,
    bearer_token,
    is_operator_id,
)

from .http import HttpResponse, error_response

_TYPE = re.compile(r"[a-z][a-z0-9_]{0,31}")


@dataclass(frozen=True, slots=True)
class AdminAccess:
    """How the admin routes check a bearer token: the operators' directory (their token hashes and
    scopes) and the break-glass token (a value, or a getter called only for a non-operator token)."""

    directory: OperatorDirectory | None
    break_glass: str | Callable[[], str]

    def caller(self, authorization: str | None, route: str) -> Caller:
        """The caller, if it holds ``route``'s scope: else :class:`Unauthorized` or :class:`Forbidden`."""
        return authorize(authorization, ROUTE_SCOPES[route], directory=self.directory, break_glass=self.break_glass)

    def vouch(self, operator_id: str, route: str) -> Caller:
        """The caller a signed link names, if it may still use ``route``: a link dies with its
        operator's revocation (or loss of the scope), within the directory's cache time."""
        scope = ROUTE_SCOPES[route]
        if operator_id == BREAK_GLASS:
            return Caller(BREAK_GLASS, scope)
        found = self.directory.get_operator(operator_id) if self.directory and is_operator_id(operator_id) else None
        if found is None or not found.active or scope not in found.scopes:
            raise Unauthorized("link_revoked")
        return Caller(operator_id, scope)


def require_bearer(authorization: str | None, admin_token: str | Callable[[], str]) -> None:
    """Raise :class:`Unauthorized` unless ``authorization`` is ``Bearer <admin_token>`` (the break-glass
    token alone: the local stack's own routes before operators, and tests of the comparison)."""
    token = bearer_token(authorization)
    expected = admin_token() if callable(admin_token) else admin_token
    if not expected or not hmac.compare_digest(token.encode("utf-8"), expected.encode("utf-8")):
        raise Unauthorized("admin_token_required")


def profile_response(
    identifier: str,
    *,
    authorization: str | None,
    access: AdminAccess,
    lookup: Callable[[str], Any],
    route: str = "profile",
) -> tuple[HttpResponse, Caller | None]:
    """200 with the profile, 401 without a valid token, 403 without ``profiles:read``, 404 when no
    profile has ``identifier``, 503 when the credentials cannot be read; and who asked (None if unknown)."""
    caller = None
    try:
        caller = access.caller(authorization, route)
        profile = lookup(unquote(identifier))
        if profile is None:
            raise NotFound("profile_not_found")
    except CdpError as exc:
        return error_response(exc), caller or refused_caller(exc)
    return HttpResponse(200, _as_json_object(profile)), caller


def refused_caller(exc: CdpError) -> Caller | None:
    # A 403 names the operator that lacked the scope: the audit line says who tried.
    if isinstance(exc, Forbidden):
        return Caller(str(exc.details.get("operator", "")), str(exc.details.get("scope", "")))
    return None


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


def audit_record(route: str, identifier: str, response: HttpResponse, *, caller: str | None,
                 operator: Caller | None = None) -> dict[str, Any]:
    """What an admin read is logged as: which operator asked (its id, never the token), with which
    scope, from which address, on which route, for which profile, with what outcome.

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
        "operator": operator.operator_id if operator else None,
        "scope": ROUTE_SCOPES.get(route),
        "caller": caller,
        "identifier_type": kind if sep and _TYPE.fullmatch(kind) else "unknown",
        "identifier_sha256": hashlib.sha256(text.encode("utf-8")).hexdigest(),
        "profile_id": profile_id if isinstance(profile_id, str) else None,
        "status": response.status,
    }
