"""Meta Custom Audiences, through the Marketing API's users edge (a small client; no SDK).

Contract (developers.facebook.com/docs/marketing-api/reference/custom-audience/users):

* ``POST /{version}/{audience_id}/users`` adds, ``DELETE`` on the same path removes;
* parameters ``payload`` = ``{"schema": [...], "data": [[...], ...]}`` (multi-key: one row per person,
  values in schema order, each normalised then SHA-256 hex; see ``normalise``), ``session`` =
  ``{"session_id", "batch_seq" (from 1), "last_batch_flag", "estimated_num_total"}`` so an upload
  split in batches is one session, and ``access_token``; sent form-encoded as the reference shows;
* "only a maximum of 10000 at a time": :data:`MAX_BATCH`;
* the answer: ``{"audience_id", "session_id", "num_received", "num_invalid_entries", ...}``; an error
  is ``{"error": {"message", "type", "code", "error_subcode", "fbtrace_id"}}``.

Error classes (developers.facebook.com/docs/marketing-api/error-reference and .../overview/rate-limiting):
``4`` application request limit, ``17`` user request limit, ``32`` page request limit, ``613`` calls
from this ad account, ``80003`` custom audience rate limit (business use case) and HTTP 429 slow down;
``1`` unknown, ``2`` service temporarily unavailable and HTTP 5xx are retried; the rest (``100``
invalid parameter, ``190`` bad token, ``10``/``200`` permission, ``2650`` audience errors...) abort.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlencode

from cdp.activation.audiences import Transport, Upload
from cdp.activation.audiences.normalise import META_SCHEMA, PersonKeys, meta_row
from cdp.errors import DestinationRefused

MAX_BATCH = 10_000
API_VERSION = "v25.0"
SLOW_DOWN_CODES = frozenset({4, 17, 32, 613, 80003, 80004})
RETRY_CODES = frozenset({1, 2})


def classify(status: int, error: dict[str, Any]) -> str:
    """``retry``, ``slow_down`` or ``abort`` for one Graph API error answer."""
    code = error.get("code")
    if code in SLOW_DOWN_CODES or status == 429:
        return "slow_down"
    if code in RETRY_CODES or error.get("is_transient") is True or status >= 500:
        return "retry"
    return "abort"


class MetaAudience:
    """One Custom Audience. ``access_token`` comes from Secrets Manager (a system user's token)."""

    max_batch = MAX_BATCH

    def __init__(self, audience_id: str, access_token: str, transport: Transport, *,
                 base_url: str = "https://graph.facebook.com", version: str = API_VERSION) -> None:
        self.audience_id = audience_id
        self.access_token = access_token
        self.transport = transport
        self.url = f"{base_url.rstrip('/')}/{version}/{audience_id}/users"

    def add(self, people: Sequence[PersonKeys], *, session: int | None = None, batch_seq: int = 1,
            last: bool = True, estimated_total: int | None = None) -> Upload:
        return self.send("add", [r for p in people if (r := meta_row(p))], session=session, batch_seq=batch_seq,
                         last=last, estimated_total=estimated_total)

    def remove(self, people: Sequence[PersonKeys], *, session: int | None = None, batch_seq: int = 1,
               last: bool = True, estimated_total: int | None = None) -> Upload:
        return self.send("remove", [r for p in people if (r := meta_row(p))], session=session,
                         batch_seq=batch_seq, last=last, estimated_total=estimated_total)

    def hashed(self, person: PersonKeys) -> list[str] | None:
        return meta_row(person)

    def payload(self, people: Sequence[PersonKeys]) -> dict[str, Any]:
        rows = [row for person in people if (row := meta_row(person)) is not None]
        return {"schema": list(META_SCHEMA), "data": rows}

    def send(self, op: str, members: Sequence[Any], *, session: int | None = None, batch_seq: int = 1,
             last: bool = True, estimated_total: int | None = None) -> Upload:
        """POST (add) or DELETE (remove) ``members``: rows in :data:`META_SCHEMA` order (:meth:`hashed`)."""
        if len(members) > MAX_BATCH:
            raise ValueError(f"at most {MAX_BATCH} people per request, got {len(members)}")
        method = "POST" if op == "add" else "DELETE"
        payload = {"schema": list(META_SCHEMA), "data": [list(row) for row in members]}
        if not payload["data"]:
            return Upload(request_id="", received=0)
        params: dict[str, str] = {"payload": json.dumps(payload, separators=(",", ":")),
                                  "access_token": self.access_token}
        if session is not None:
            params["session"] = json.dumps({
                "session_id": session, "batch_seq": batch_seq, "last_batch_flag": last,
                "estimated_num_total": estimated_total if estimated_total is not None else len(members)},
                separators=(",", ":"))
        response: Any = self.transport.request(
            method, self.url, headers={"Content-Type": "application/x-www-form-urlencoded"},
            body=urlencode(params).encode())
        try:
            answer = json.loads(response.body or b"{}")
        except ValueError:
            answer = {}
        if response.status >= 400 or "error" in answer:
            error = answer.get("error") if isinstance(answer.get("error"), dict) else {}
            raise DestinationRefused(
                "Meta refused the audience update", action=classify(response.status, error),
                retry_after=_retry_after(response), status=response.status, code=error.get("code"),
                subcode=error.get("error_subcode"), platform="meta")
        return Upload(request_id=str(answer.get("session_id", "")), received=int(answer.get("num_received", 0)),
                      invalid=int(answer.get("num_invalid_entries", 0)))


def _retry_after(response: Any) -> float | None:
    value = (getattr(response, "headers", None) or {}).get("retry-after")
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None
