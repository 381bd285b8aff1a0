"""Google Customer Match through the Data Manager API (a small REST client; no SDK).

Contract (developers.google.com/data-manager/api/reference/rest/v1/audienceMembers):

* ``POST https://datamanager.googleapis.com/v1/audienceMembers:ingest`` and ``...:remove``;
* body ``destinations`` (``operatingAccount {accountType, accountId}``, ``productDestinationId`` = the
  user list), ``audienceMembers`` (at most 10000 per request: :data:`MAX_BATCH`), each with
  ``userData.userIdentifiers`` (``emailAddress`` | ``phoneNumber`` | ``address``) and, on ingest, a
  per-member ``consent {adUserData, adPersonalization}``; ``encoding: HEX`` for the hex SHA-256
  hashes; on ingest ``termsOfService.customerMatchTermsOfServiceStatus: ACCEPTED``;
* OAuth 2 bearer token with the ``https://www.googleapis.com/auth/datamanager`` scope, stored as is or
  exchanged from a refresh token (:class:`GoogleOAuth`); a 401 ``UNAUTHENTICATED`` refreshes it once;
* the answer ``{"requestId": ...}``; errors are ``google.rpc.Status``:
  ``{"error": {"code", "message", "status"}}``. ``RESOURCE_EXHAUSTED`` (429) slows down;
  ``UNAVAILABLE``, ``INTERNAL``, ``DEADLINE_EXCEEDED``, ``ABORTED`` (5xx, 409) are retried; the rest
  (``INVALID_ARGUMENT``, ``UNAUTHENTICATED``, ``PERMISSION_DENIED``, ``NOT_FOUND``...) abort.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import urlencode

from cdp.activation.audiences import Transport, Upload
from cdp.activation.audiences.normalise import PersonKeys, google_user_identifiers
from cdp.errors import DestinationRefused

MAX_BATCH = 10_000
TOKEN_URL = "https://oauth2.googleapis.com/token"
RETRY_STATUSES = frozenset({"UNAVAILABLE", "INTERNAL", "DEADLINE_EXCEEDED", "ABORTED"})


def classify(status: int, error: dict[str, Any]) -> str:
    if status == 429 or error.get("status") == "RESOURCE_EXHAUSTED":
        return "slow_down"
    if status >= 500 or error.get("status") in RETRY_STATUSES:
        return "retry"
    return "abort"


class GoogleOAuth:
    """Access tokens from a refresh token (OAuth 2.0 for web server apps, "Refreshing an access token").

    ``POST https://oauth2.googleapis.com/token`` form-encoded with ``client_id``, ``client_secret``,
    ``refresh_token`` and ``grant_type=refresh_token``; the answer is ``{"access_token", "expires_in",
    "scope", "token_type": "Bearer"}``, an error ``{"error": "invalid_grant", "error_description"}``
    (RFC 6749 5.2). The token is kept until :data:`EARLY_S` before it expires (one exchange per warm
    Lambda and hour), and dropped by :meth:`invalidate` when the API answers 401. Tokens never go
    into an exception, a log line or a repr.
    """

    EARLY_S = 300

    def __init__(self, client_id: str, client_secret: str, refresh_token: str, transport: Transport, *,
                 token_url: str = TOKEN_URL, clock: Callable[[], float] = time.monotonic) -> None:
        self._form = {"client_id": client_id, "client_secret": client_secret, "refresh_token": refresh_token,
                      "grant_type": "refresh_token"}
        self.transport = transport
        self.token_url = token_url
        self.clock = clock
        self._token: str | None = None
        self._expires = 0.0
        self.exchanges = 0

    def __repr__(self) -> str:
        return f"GoogleOAuth(token_url={self.token_url!r})"

    @property
    def refreshable(self) -> bool:
        return True

    def invalidate(self) -> None:
        self._token = None

    def token(self) -> str:
        if self._token is not None and self.clock() < self._expires - self.EARLY_S:
            return self._token
        response: Any = self.transport.request(
            "POST", self.token_url, headers={"Content-Type": "application/x-www-form-urlencoded"},
            body=urlencode(self._form).encode())
        self.exchanges += 1
        try:
            answer = json.loads(response.body or b"{}")
        except ValueError:
            answer = {}
        token = answer.get("access_token") if isinstance(answer, dict) else None
        if response.status >= 400 or not isinstance(token, str) or not token:
            error = str(answer.get("error", "")) if isinstance(answer, dict) else ""
            # invalid_grant (revoked or expired refresh token), invalid_client...: a person must fix the secret.
            action = "retry" if response.status >= 500 else "slow_down" if response.status == 429 else "abort"
            raise DestinationRefused("Google refused the token refresh", action=action, status=response.status,
                                     code=error or "no_access_token", platform="google")
        expires_in = answer.get("expires_in")
        self._token = token
        self._expires = self.clock() + (float(expires_in) if isinstance(expires_in, int | float) else 3600.0)
        return token


class StaticToken:
    """An access token stored as is in the secret (rotated by whoever stores it)."""

    refreshable = False

    def __init__(self, access_token: str) -> None:
        self._token = access_token

    def __repr__(self) -> str:
        return "StaticToken()"

    def token(self) -> str:
        return self._token

    def invalidate(self) -> None:
        pass


class GoogleAudience:
    """One Customer Match user list of one Google Ads account."""

    max_batch = MAX_BATCH

    def __init__(self, account_id: str, user_list_id: str, access_token: str | GoogleOAuth | StaticToken,
                 transport: Transport, *, account_type: str = "GOOGLE_ADS",
                 base_url: str = "https://datamanager.googleapis.com") -> None:
        self.destination = {"operatingAccount": {"accountType": account_type, "accountId": account_id},
                            "productDestinationId": user_list_id}
        self.tokens = StaticToken(access_token) if isinstance(access_token, str) else access_token
        self.transport = transport
        self.base_url = base_url.rstrip("/")

    def hashed(self, person: PersonKeys) -> list[dict[str, Any]] | None:
        return google_user_identifiers(person) or None

    def members(self, people: Sequence[PersonKeys], *, consent: bool) -> list[dict[str, Any]]:
        return self._members([i for p in people if (i := google_user_identifiers(p))], consent=consent)

    @staticmethod
    def _members(identifiers: Sequence[Any], *, consent: bool) -> list[dict[str, Any]]:
        granted = {"adUserData": "CONSENT_GRANTED", "adPersonalization": "CONSENT_GRANTED"}
        members = []
        for ids in identifiers:
            member: dict[str, Any] = {"userData": {"userIdentifiers": list(ids)}}
            if consent:
                # Only people who gave ``ads`` consent are ever ingested (sync.may_send_ads).
                member["consent"] = dict(granted)
            members.append(member)
        return members

    def add(self, people: Sequence[PersonKeys], *, session: int | None = None, batch_seq: int = 1,
            last: bool = True, estimated_total: int | None = None) -> Upload:
        return self.send("add", [i for p in people if (i := google_user_identifiers(p))])

    def remove(self, people: Sequence[PersonKeys], *, session: int | None = None, batch_seq: int = 1,
               last: bool = True, estimated_total: int | None = None) -> Upload:
        return self.send("remove", [i for p in people if (i := google_user_identifiers(p))])

    def send(self, op: str, members: Sequence[Any], *, session: int | None = None, batch_seq: int = 1,
             last: bool = True, estimated_total: int | None = None) -> Upload:
        """Ingest (add) or remove ``members``: each one's ``userIdentifiers`` (:meth:`hashed`)."""
        if len(members) > MAX_BATCH:
            raise ValueError(f"at most {MAX_BATCH} members per request, got {len(members)}")
        if not members:
            return Upload(request_id="", received=0)
        body: dict[str, Any] = {"destinations": [self.destination],
                                "audienceMembers": self._members(members, consent=op == "add"), "encoding": "HEX"}
        if op == "add":
            body["termsOfService"] = {"customerMatchTermsOfServiceStatus": "ACCEPTED"}
        method = "audienceMembers:ingest" if op == "add" else "audienceMembers:remove"
        data = json.dumps(body, separators=(",", ":")).encode()
        status, answer, response = self._post(method, data)
        if status == 401 and self.tokens.refreshable:
            # An access token revoked or expired early: exchange the refresh token again, once.
            self.tokens.invalidate()
            status, answer, response = self._post(method, data)
        if status >= 400:
            raw = answer.get("error")
            error: dict[str, Any] = raw if isinstance(raw, dict) else {}
            retry_after = (getattr(response, "headers", None) or {}).get("retry-after")
            raise DestinationRefused(
                "Google refused the audience update", action=classify(status, error),
                retry_after=float(retry_after) if retry_after and retry_after.isdigit() else None,
                status=status, code=error.get("status"), platform="google")
        return Upload(request_id=str(answer.get("requestId", "")), received=len(body["audienceMembers"]))

    def _post(self, method: str, data: bytes) -> tuple[int, dict[str, Any], Any]:
        response: Any = self.transport.request(
            "POST", f"{self.base_url}/v1/{method}",
            headers={"Content-Type": "application/json", "Authorization": f"Bearer {self.tokens.token()}"},
            body=data)
        try:
            answer = json.loads(response.body or b"{}")
        except ValueError:
            answer = {}
        return int(response.status), answer if isinstance(answer, dict) else {}, response
