"""A privacy request as a record: what was asked, about whom, by when, and everything done since.

The identifiers a request covers are resolved through the identity graph to the whole person:
the live profile's identifiers, and those of every profile merged into it (tombstones keep the
identifiers they absorbed). The due date is one month out (GDPR Art. 12(3)); the audit trail is
append-only and never holds a plain identifier.
"""

from __future__ import annotations

import calendar
import re
import uuid
from collections.abc import Collection, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any, Protocol

from cdp.errors import InvalidIdentifier, MalformedRequest
from cdp.identity.config import IdentityConfig
from cdp.identity.identifiers import parse_identifier
from cdp.identity.lookup import follow_tombstones
from cdp.identity.store import IdentityStore
from cdp.privacy.suppression import identifier_hash
from cdp.times import format_time

KINDS = ("erase", "export", "suppress", "unsuppress")
#: received -> running -> done | failed (a failed step is retried; the record says which).
STATUSES = ("received", "running", "done", "failed")
#: At most this many profiles are followed through merges from the one an identifier points to.
MAX_PROFILES = 64


def one_month_after(moment: datetime) -> datetime:
    """The same day of the next month, or its last day (31 January -> 28/29 February)."""
    year, month = (moment.year + 1, 1) if moment.month == 12 else (moment.year, moment.month + 1)
    day = min(moment.day, calendar.monthrange(year, month)[1])
    return moment.replace(year=year, month=month, day=day)


@dataclass
class Person:
    """Everything one request covers, frozen in the record when the job starts (profiles may go)."""

    identifiers: list[str] = field(default_factory=list)
    profile_ids: list[str] = field(default_factory=list)
    first_seen: str | None = None
    last_seen: str | None = None

    @property
    def found(self) -> bool:
        return bool(self.profile_ids)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> Person:
        data = data or {}
        return cls(identifiers=list(data.get("identifiers") or []), profile_ids=list(data.get("profile_ids") or []),
                   first_seen=data.get("first_seen"), last_seen=data.get("last_seen"))


@dataclass
class PrivacyRequest:
    request_id: str
    kind: str
    identifier: str  # the normalised identifier asked about
    created_at: str
    due_at: str
    status: str = "received"
    person: Person = field(default_factory=Person)
    # step name -> what it removed (counts per store); a step listed here is not run again.
    steps: dict[str, dict[str, Any]] = field(default_factory=dict)
    audit: list[dict[str, Any]] = field(default_factory=list)
    result: dict[str, Any] = field(default_factory=dict)

    def note(self, at: datetime, what: str, **details: Any) -> None:
        self.audit.append({"at": format_time(at), "what": what, **details})

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["person"] = self.person.to_dict()
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PrivacyRequest:
        return cls(request_id=data["request_id"], kind=data["kind"], identifier=data["identifier"],
                   created_at=data["created_at"], due_at=data["due_at"], status=data.get("status", "received"),
                   person=Person.from_dict(data.get("person")), steps=dict(data.get("steps") or {}),
                   audit=list(data.get("audit") or []), result=dict(data.get("result") or {}))

    def view(self) -> dict[str, Any]:
        """What the API and the CLI show: progress, not the plain identifiers of the person."""
        return {"request_id": self.request_id, "kind": self.kind, "status": self.status,
                "identifier_sha256": identifier_hash(self.identifier), "created_at": self.created_at,
                "due_at": self.due_at, "identifiers_covered": len(self.person.identifiers),
                "profiles_covered": len(self.person.profile_ids), "steps": self.steps,
                "result": self.result, "audit": self.audit}


class RequestStore(Protocol):
    def put_request(self, request: PrivacyRequest) -> None: ...

    def get_request(self, request_id: str) -> PrivacyRequest | None: ...


def parse_request(body: object, *, config: IdentityConfig) -> tuple[str, str]:
    """``{"kind": "erase", "identifier": "email:a@x.io"}`` -> (kind, normalised identifier).

    Raises :class:`MalformedRequest` or :class:`InvalidIdentifier` naming what is wrong (400).
    """
    if not isinstance(body, dict):
        raise MalformedRequest("body must be a JSON object with kind and identifier")
    kind = body.get("kind")
    if kind not in KINDS:
        raise MalformedRequest(f"kind must be one of {', '.join(KINDS)}", field="kind")
    text = body.get("identifier")
    if not isinstance(text, str) or not text.strip():
        raise InvalidIdentifier("identifier is missing: give <type>:<value>", field="identifier")
    return kind, parse_identifier(text, config)


_REQUEST_ID = re.compile(r"pr-[0-9a-f]{32}")


def is_request_id(text: str) -> bool:
    """Whether ``text`` can be a request id (anything else is looked up nowhere: hostile input)."""
    return bool(_REQUEST_ID.fullmatch(text))


def new_request(kind: str, identifier: str, *, now: datetime, request_id: str | None = None) -> PrivacyRequest:
    request = PrivacyRequest(request_id=request_id or f"pr-{uuid.uuid4().hex}", kind=kind, identifier=identifier,
                             created_at=format_time(now), due_at=format_time(one_month_after(now)))
    request.note(now, "received", kind=kind, identifier_sha256=identifier_hash(identifier))
    return request


def resolve_person(identifiers: Collection[str], store: IdentityStore) -> Person:
    """The whole person behind ``identifiers``: the live profile, every profile merged into it, and
    all their identifiers. Unknown identifiers resolve to a person with only those identifiers."""
    pointers = store.get_pointers(sorted(set(identifiers)))
    cache: dict[str, Any] = {}

    def read(profile_id: str) -> Any:
        if profile_id not in cache:
            cache[profile_id] = store.get_profiles([profile_id]).get(profile_id)
        return cache[profile_id]

    roots = {follow_tombstones(pid, read)[0] for pid in pointers.values()}
    seen: set[str] = set()
    todo = sorted(roots | set(pointers.values()))
    while todo and len(seen) < MAX_PROFILES:
        pid = todo.pop()
        if pid in seen:
            continue
        seen.add(pid)
        for entry in store.read_merge_log(pid):
            todo.extend(p for p in entry.other_profile_ids if p not in seen and entry.kind == "merge")
    profiles = [p for p in (read(pid) for pid in sorted(seen)) if p is not None]
    found = set(identifiers)
    for profile in profiles:
        found.update(profile.identifiers)
    times = [t for p in profiles for t in (p.first_seen, p.last_seen) if t]
    return Person(identifiers=sorted(found), profile_ids=sorted(p.profile_id for p in profiles),
                  first_seen=min(times) if times else None, last_seen=max(times) if times else None)


def covered_hashes(identifiers: Sequence[str]) -> list[str]:
    return sorted({identifier_hash(i) for i in identifiers})
