"""Operators: who may call the admin routes, with which scopes, and how a bearer token is checked.

Each operator has a token of their own, ``cdp_op_<12 hex>_<43 url-safe chars>``: the first part is
the operator id (the store's key, so a request costs one lookup, and what the audit line names);
the rest is 256 random bits. Only the SHA-256 of the whole token is stored. A slow hash (bcrypt,
scrypt, Argon2) makes guessing a *low-entropy* password from its hash costly; a 256-bit random
value cannot be guessed from its SHA-256 at any hash speed, so a slow hash would only add CPU to
every admin request. A leaked store therefore gives no usable token.

The stack's generated admin secret stays as the *break-glass* credential: every scope, named
``break-glass`` in the audit, readable only by those with ``secretsmanager:GetSecretValue`` on it.
Day-to-day reads use operator tokens (docs/operations.md).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Protocol

from cdp.errors import Forbidden, InvalidOperator, Unauthorized

#: Every scope, and what it opens. An operator holds any subset.
SCOPES: Mapping[str, str] = {
    "profiles:read": "GET /v1/profiles/{id}, /explain, /timeline, /view; POST /view-link (PII)",
    "privacy:write": "POST /v1/privacy/requests (erase, export, suppress)",
    "privacy:read": "GET /v1/privacy/requests/{id}",
    "metrics:read": "GET /v1/metrics (local stack only)",
    "reports:read": "GET /v1/reports/latest (local stack only)",
}

#: The scope each admin route checks (the audit line's ``route``).
ROUTE_SCOPES: Mapping[str, str] = {
    "profile": "profiles:read",
    "explain": "profiles:read",
    "timeline": "profiles:read",
    "view": "profiles:read",
    "view_link": "profiles:read",
    "privacy_request": "privacy:write",
    "privacy_status": "privacy:read",
    "metrics": "metrics:read",
    "report": "reports:read",
}

#: The audit name of the stack's generated admin secret.
BREAK_GLASS = "break-glass"

_TOKEN = re.compile(r"cdp_(op_[0-9a-f]{12})_([A-Za-z0-9_-]{43})")
_ID = re.compile(r"op_[0-9a-f]{12}")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@+-]{0,63}")

DEFAULT_CACHE_SECONDS = 60.0


@dataclass(frozen=True, slots=True)
class Operator:
    operator_id: str
    name: str
    scopes: frozenset[str]
    token_sha256: str
    created_at: str
    revoked_at: str | None = None

    @property
    def active(self) -> bool:
        return self.revoked_at is None


@dataclass(frozen=True, slots=True)
class Caller:
    """Who made an admin request (an operator id, or :data:`BREAK_GLASS`) and the scope it used."""

    operator_id: str
    scope: str


class OperatorDirectory(Protocol):
    def get_operator(self, operator_id: str) -> Operator | None: ...


def token_sha256(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def is_operator_id(value: str) -> bool:
    return bool(_ID.fullmatch(value))


def operator_id_of(token: str) -> str | None:
    """The operator id a token names, or None when it is not an operator token."""
    match = _TOKEN.fullmatch(token)
    return match.group(1) if match else None


def check_scopes(scopes: Iterable[str]) -> frozenset[str]:
    """The scopes as a set; :class:`InvalidOperator` names the first unknown one (or none at all)."""
    wanted = frozenset(s.strip() for s in scopes if s.strip())
    unknown = sorted(wanted - set(SCOPES))
    if unknown:
        raise InvalidOperator("unknown_scope", scope=unknown[0], known=sorted(SCOPES))
    if not wanted:
        raise InvalidOperator("no_scope", known=sorted(SCOPES))
    return wanted


def new_operator(name: str, scopes: Iterable[str], *, created_at: str,
                 token_bytes: Callable[[int], str] = secrets.token_urlsafe,
                 id_hex: Callable[[int], str] = secrets.token_hex) -> tuple[Operator, str]:
    """A new operator and its token (shown once: only its hash is in the record)."""
    if not _NAME.fullmatch(name):
        raise InvalidOperator("invalid_name")
    operator_id = f"op_{id_hex(6)}"
    token = f"cdp_{operator_id}_{token_bytes(32)}"
    if operator_id_of(token) != operator_id:  # the generators gave something of another shape
        raise InvalidOperator("token_shape")
    return Operator(operator_id, name, check_scopes(scopes), token_sha256(token), created_at), token


def bearer_token(authorization: str | None) -> str:
    """The token of ``Bearer <token>``; :class:`Unauthorized` when there is none."""
    scheme, _, token = (authorization or "").strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("admin_token_required")
    return token.strip()


def authorize(authorization: str | None, scope: str, *, directory: OperatorDirectory | None,
              break_glass: str | Callable[[], str]) -> Caller:
    """The caller of a request that needs ``scope``.

    :class:`Unauthorized` (401) for no token, an unknown, revoked or altered token;
    :class:`Forbidden` (403) for a known operator without ``scope``. An operator token costs one
    directory lookup (by the id it carries) and never reads the break-glass secret; any other token
    is compared with the break-glass secret (a getter is called only then). Both comparisons take
    the same time wherever the values differ.
    """
    if scope not in SCOPES:
        raise ValueError(f"unknown scope {scope!r}")
    token = bearer_token(authorization)
    operator_id = operator_id_of(token)
    if operator_id is not None:
        operator = directory.get_operator(operator_id) if directory is not None else None
        digest = token_sha256(token)
        if operator is None or not hmac.compare_digest(digest, operator.token_sha256) or not operator.active:
            raise Unauthorized("admin_token_required")
        if scope not in operator.scopes:
            raise Forbidden("scope_required", scope=scope, operator=operator.operator_id)
        return Caller(operator.operator_id, scope)
    expected = break_glass() if callable(break_glass) else break_glass
    if not expected or not hmac.compare_digest(token.encode("utf-8"), expected.encode("utf-8")):
        raise Unauthorized("admin_token_required")
    return Caller(BREAK_GLASS, scope)


class CachedDirectory:
    """An :class:`OperatorDirectory` read through and kept ``ttl_seconds`` per warm container.

    Unknown ids are kept too (so guessed ids cost one read each per TTL, not one per request); at
    most ``max_entries`` are held. A revoked or re-scoped operator is therefore seen within the TTL.
    """

    def __init__(self, directory: OperatorDirectory, *, ttl_seconds: float = DEFAULT_CACHE_SECONDS,
                 clock: Callable[[], float] = time.monotonic, max_entries: int = 1024) -> None:
        self._directory = directory
        self._ttl = ttl_seconds
        self._clock = clock
        self._max = max_entries
        self._lock = threading.Lock()
        self._entries: dict[str, tuple[float, Operator | None]] = {}

    def get_operator(self, operator_id: str) -> Operator | None:
        now = self._clock()
        with self._lock:
            cached = self._entries.get(operator_id)
        if cached is not None and cached[0] > now:
            return cached[1]
        operator = self._directory.get_operator(operator_id)
        with self._lock:
            if len(self._entries) >= self._max:
                self._entries.clear()
            self._entries[operator_id] = (now + self._ttl, operator)
        return operator
