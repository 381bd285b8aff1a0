"""The single customer view of one person: profile, history, segments, messages and latest events.

Pure: every store is a port. The events come through ``read_events`` (``cdp.lake.person`` on the
lake, with pyarrow), so this module stays importable anywhere.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from decimal import Decimal
from typing import Any, Protocol

from cdp.errors import MalformedRequest, NotFound
from cdp.identity.computed import event_consent
from cdp.identity.config import IdentityConfig
from cdp.identity.explain import profile_history
from cdp.identity.identifiers import by_type
from cdp.identity.lookup import find_profile
from cdp.identity.store import IdentityStore
from cdp.profiles.messages import MessageJournal
from cdp.segments.membership import Member

DEFAULT_LIMIT = 50
MAX_LIMIT = 500


class Memberships(Protocol):
    def members_of(self, keys: Iterable[tuple[str, str]]) -> Mapping[tuple[str, str], Member]: ...


#: ``(identifiers, first_seen, last_seen, limit)`` -> ``{"events": [...], "matched", "more", "days_read"}``
EventReader = Callable[[Sequence[str], str | None, str | None, int], Mapping[str, Any]]


def parse_limit(raw: str | None) -> int:
    """The ``limit`` query parameter: 1 to MAX_LIMIT, DEFAULT_LIMIT when absent."""
    if raw is None or raw == "":
        return DEFAULT_LIMIT
    try:
        limit = int(raw)
    except ValueError:
        raise MalformedRequest("invalid_limit", limit=f"1 to {MAX_LIMIT} events") from None
    if not 1 <= limit <= MAX_LIMIT:
        raise MalformedRequest("invalid_limit", limit=f"1 to {MAX_LIMIT} events")
    return limit


def build_timeline(
    identifier: str, *, store: IdentityStore, config: IdentityConfig, segments: Collection[str],
    memberships: Memberships, journal: MessageJournal, read_events: EventReader, limit: int = DEFAULT_LIMIT,
) -> dict[str, Any]:
    """Everything known about the person holding ``identifier`` (``type:value``), JSON-ready.

    Segments and messages are looked up for the live profile and every profile merged into it
    (a merged profile's memberships last until the next segment run). Raises :class:`NotFound`
    when no profile holds the identifier, ``InvalidIdentifier`` when it is malformed.
    """
    profile = find_profile(identifier, store, config=config)
    if profile is None:
        raise NotFound("profile_not_found")
    history = profile_history(profile.profile_id, store)
    absorbed = sorted({other for e in history if e.kind == "merge" for other in e.other_profile_ids})
    profile_ids = [profile.profile_id, *absorbed]
    found = memberships.members_of((segment, pid) for segment in segments for pid in profile_ids)
    lake = read_events(list(profile.identifiers), profile.first_seen, profile.last_seen, limit)
    events = list(lake.get("events") or [])
    return _json_ready({
        "identifier": identifier,
        "profile_id": profile.profile_id,
        "identifiers": by_type(profile.identifiers),
        "traits": dict(profile.traits),
        "computed_traits": dict(profile.computed.values),
        "consent": {purpose: {"granted": held.granted, **_stamp(held.stamp)}
                    for purpose, held in sorted(profile.consent.purposes.items())},
        "consent_history": _consent_history(events),
        "lifecycle_stage": profile.lifecycle.stage,
        "lifecycle_history": [change.to_dict() for change in profile.lifecycle.history],
        "first_seen": profile.first_seen,
        "last_seen": profile.last_seen,
        "event_count": profile.event_count,
        "merges": [e.view() for e in history if e.kind == "merge"],
        "absorbed_profiles": absorbed,
        "segments": [{"segment": segment, "profile_id": pid, "entered_at": m.entered_at,
                      "entered_run": m.entered_run}
                     for (segment, pid), m in sorted(found.items(), key=lambda kv: (kv[1].entered_at, kv[0]))],
        "messages": [m.to_dict() for m in journal.sent_to(profile_ids)],
        "events": events,
        "events_limit": limit,
        "events_matched": int(lake.get("matched") or len(events)),
        "events_more": bool(lake.get("more")),
        "events_days_read": lake.get("days_read") or {},
    })


def _json_ready(view: dict[str, Any]) -> dict[str, Any]:
    """Plain JSON values: the stores hand back Decimals (DynamoDB), sets and datetimes."""
    ready: dict[str, Any] = json.loads(json.dumps(view, default=_plain))
    return ready


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, set | frozenset):
        return sorted(value, key=str)
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return str(value)


def _stamp(stamp: str) -> dict[str, str | None]:
    at, _, message_id = stamp.partition("|")
    return {"at": at or None, "message_id": message_id or None}


def _consent_history(events: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Consent statements among ``events`` (oldest first): the changes behind the standing consent,
    with when the event happened and when we received it (which orders them)."""
    return [{"at": event.get("timestamp"), "received_at": event.get("receivedAt"),
             "message_id": event.get("messageId"), "purpose": purpose, "granted": granted}
            for event in events for purpose, granted in sorted(event_consent(event).items())]
