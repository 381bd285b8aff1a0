"""Short-lived signed links to the customer view page.

A browser cannot send the admin token as a header, and the token must never sit in a URL (browser
history, proxies' logs). A link signs ``(identifier, expiry, operator)`` with a key derived from the
stack's break-glass token instead: the customer view signs it for an operator holding
``profiles:read`` (``POST /v1/profiles/{id}/view-link``, what ``cdp profile view`` calls), or the CLI
signs it itself with the break-glass token. The link opens one person's page until it expires, is
audited under the operator that asked for it, dies with that operator's revocation, and rotating
the break-glass token revokes every link.
"""

from __future__ import annotations

import hashlib
import hmac

from cdp.errors import MalformedRequest, Unauthorized
from cdp.operators import BREAK_GLASS

DEFAULT_MINUTES = 15
#: Longest life a link may be signed for: a day, so a leaked link does not outlive a shift.
MAX_MINUTES = 24 * 60
_PURPOSE = b"cdp profile view link v1"


def _key(admin_token: str, purpose: bytes = _PURPOSE) -> bytes:
    # A key of its own per purpose, so a signature can never be replayed as the token, the token's
    # hash, or a link of another purpose (an unsubscribe link never opens a customer view).
    return hmac.new(admin_token.encode("utf-8"), purpose, hashlib.sha256).digest()


def _signature(identifier: str, expires: int, admin_token: str, purpose: bytes = _PURPOSE) -> str:
    message = f"{identifier}\n{expires}".encode()
    return hmac.new(_key(admin_token, purpose), message, hashlib.sha256).hexdigest()


def sign(identifier: str, expires: int, admin_token: str, *, purpose: bytes) -> str:
    """The signature of ``(identifier, expires)`` under a key of ``purpose`` (other signed links)."""
    if not admin_token:
        raise Unauthorized("admin_token_required")
    return _signature(identifier, expires, admin_token, purpose)


def verify(identifier: str, expires: str | None, signature: str | None, admin_token: str, *, now: float,
           purpose: bytes, max_seconds: int) -> None:
    """Raise :class:`Unauthorized` unless ``signature`` signs ``identifier`` for ``purpose``, unexpired."""
    if not expires or not signature:
        raise Unauthorized("link_invalid")
    try:
        expiry = int(expires)
    except ValueError:
        raise Unauthorized("link_invalid") from None
    if not admin_token:
        raise Unauthorized("admin_token_required")
    expected = _signature(identifier, expiry, admin_token, purpose)
    if not hmac.compare_digest(expected.encode(), signature.encode("utf-8", "replace")):
        raise Unauthorized("link_invalid")
    if expiry <= now:
        raise Unauthorized("link_expired")
    if expiry > now + max_seconds:
        raise Unauthorized("link_invalid")


def parse_minutes(value: str | None) -> int:
    """A link's life in minutes from the request (default 15); :class:`MalformedRequest` outside 1 to a day."""
    if value is None or value == "":
        return DEFAULT_MINUTES
    if not value.isdigit() or not 1 <= int(value) <= MAX_MINUTES:
        raise MalformedRequest("invalid_minutes", limit=MAX_MINUTES)
    return int(value)


def sign_view_link(identifier: str, admin_token: str, *, now: float, minutes: int = DEFAULT_MINUTES,
                   operator: str = BREAK_GLASS) -> dict[str, str]:
    """The query parameters (``expires``, ``operator``, ``signature``) of a link to ``identifier``'s
    page, asked for by ``operator``."""
    if not admin_token:
        raise Unauthorized("admin_token_required")
    if not 1 <= minutes <= MAX_MINUTES:
        raise ValueError(f"a link lives 1 to {MAX_MINUTES} minutes")
    expires = int(now) + minutes * 60
    # The operator is part of what is signed (a newline cannot occur in it): nobody can pass a link
    # off as another operator's.
    return {"expires": str(expires), "operator": operator,
            "signature": _signature(f"{identifier}\n{operator}", expires, admin_token)}


def verify_view_link(identifier: str, expires: str | None, signature: str | None, admin_token: str, *,
                     now: float, operator: str | None = None) -> str:
    """The operator that asked for the link to ``identifier``; :class:`Unauthorized` unless it is
    signed and not expired. A link without ``operator`` is the break-glass token's."""
    if not expires or not signature:
        # No link parameters at all: the page asks for the admin credential, as the JSON routes do.
        raise Unauthorized("admin_token_required")
    operator = operator or BREAK_GLASS
    if "\n" in operator:
        raise Unauthorized("link_invalid")
    verify(f"{identifier}\n{operator}", expires, signature, admin_token, now=now, purpose=_PURPOSE,
           max_seconds=MAX_MINUTES * 60)
    return operator
