"""Google Customer Match through the Data Manager API (a small REST client; no SDK).

Contract (developers.google.com/data-manager/api/reference/rest/v1/audienceMembers):

* ``POST https://datamanager.googleapis.com/v1/audienceMembers:ingest`` and ``...:remove``;
* body ``destinations`` (``operatingAccount {accountType, accountId}``, ``productDestinationId`` = the
  user list), ``audienceMembers`` (at most 10000 per request: :data:`MAX_BATCH`), each with
  ``userData.userIdentifiers`` (``emailAddress`` | ``phoneNumber`` | ``address``) and, on ingest, a
  per-member ``consent {adUserData, adPersonalization}``; ``encoding: HEX`` for the hex SHA-256
  hashes; on ingest ``termsOfService.customerMatchTermsOfServiceStatus: ACCEPTED``;
* OAuth 2 bearer token with the ``https://www.googleapis.com/auth/datamanager`` scope;
* the answer ``{"requestId": ...}``; errors are ``google.rpc.Status``:
  ``{"error": {"code", "message", "status"}}``. ``RESOURCE_EXHAUSTED`` (429) slows down;
  ``UNAVAILABLE``, ``INTERNAL``, ``DEADLINE_EXCEEDED``, ``ABORTED`` (5xx, 409) are retried; the rest
  (``INVALID_ARGUMENT``, ``UNAUTHENTICATED``, ``PERMISSION_DENIED``, ``NOT_FOUND``...) abort.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from cdp.activation.audiences import Transport, Upload
from cdp.activation.audiences.normalise import PersonKeys, google_user_identifiers
from cdp.errors import DestinationRefused

MAX_BATCH = 10_000
RETRY_STATUSES = frozenset({"UNAVAILABLE", "INTERNAL", "DEADLINE_EXCEEDED", "ABORTED"})


def classify(status: int, error: dict[str, Any]) -> str:
    if status == 429 or error.get("status") == "RESOURCE_EXHAUSTED":
        return "slow_down"
    if status >= 500 or error.get("status") in RETRY_STATUSES:
        return "retry"
    return "abort"


class GoogleAudience:
    """One Customer Match user list of one Google Ads account."""

    max_batch = MAX_BATCH

    def __init__(self, account_id: str, user_list_id: str, access_token: str, transport: Transport, *,
                 account_type: str = "GOOGLE_ADS", base_url: str = "https://datamanager.googleapis.com") -> None:
        self.destination = {"operatingAccount": {"accountType": account_type, "accountId": account_id},
                            "productDestinationId": user_list_id}
        self.access_token = access_token
        self.transport = transport
        self.base_url = base_url.rstrip("/")

    def members(self, people: Sequence[PersonKeys], *, consent: bool) -> list[dict[str, Any]]:
        granted = {"adUserData": "CONSENT_GRANTED", "adPersonalization": "CONSENT_GRANTED"}
        members = []
        for person in people:
            identifiers = google_user_identifiers(person)
            if identifiers:
                member: dict[str, Any] = {"userData": {"userIdentifiers": identifiers}}
                if consent:
                    # Only people who gave ``ads`` consent are ever ingested (sync.may_send_ads).
                    member["consent"] = dict(granted)
                members.append(member)
        return members

    def add(self, people: Sequence[PersonKeys], *, session: int | None = None, batch_seq: int = 1,
            last: bool = True, estimated_total: int | None = None) -> Upload:
        body = {"destinations": [self.destination], "audienceMembers": self.members(people, consent=True),
                "encoding": "HEX", "termsOfService": {"customerMatchTermsOfServiceStatus": "ACCEPTED"}}
        return self._send("audienceMembers:ingest", body, len(people))

    def remove(self, people: Sequence[PersonKeys], *, session: int | None = None, batch_seq: int = 1,
               last: bool = True, estimated_total: int | None = None) -> Upload:
        body = {"destinations": [self.destination], "audienceMembers": self.members(people, consent=False),
                "encoding": "HEX"}
        return self._send("audienceMembers:remove", body, len(people))

    def _send(self, method: str, body: dict[str, Any], count: int) -> Upload:
        if count > MAX_BATCH:
            raise ValueError(f"at most {MAX_BATCH} members per request, got {count}")
        if not body["audienceMembers"]:
            return Upload(request_id="", received=0)
        response: Any = self.transport.request(
            "POST", f"{self.base_url}/v1/{method}",
            headers={"Content-Type": "application/json", "Authorization": f"Bearer {self.access_token}"},
            body=json.dumps(body, separators=(",", ":")).encode())
        try:
            answer = json.loads(response.body or b"{}")
        except ValueError:
            answer = {}
        if response.status >= 400:
            error = answer.get("error") if isinstance(answer.get("error"), dict) else {}
            retry_after = (getattr(response, "headers", None) or {}).get("retry-after")
            raise DestinationRefused(
                "Google refused the audience update", action=classify(response.status, error),
                retry_after=float(retry_after) if retry_after and retry_after.isdigit() else None,
                status=response.status, code=error.get("status"), platform="google")
        return Upload(request_id=str(answer.get("requestId", "")), received=len(body["audienceMembers"]))
