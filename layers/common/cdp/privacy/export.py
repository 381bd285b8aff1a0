"""Access requests (GDPR Art. 15, "DSAR"): everything held about one person, as a machine-readable archive.

The archive is one zip object in the lake bucket under ``exports/`` (encrypted with the stack's key
like every object of the bucket, expired by a lifecycle rule) holding:

* ``profile.json`` — the profile, its identifiers, traits and computed traits, the standing consent
  and every consent statement, the lifecycle history, the merge log of the person's profiles, the
  segments they are in, the messages sent to them, and where each datum came from (per identifier,
  trait and source: the source's name, first and last seen, the events that carried it);
* ``events.jsonl`` — the person's events from the lake, oldest first, one JSON object per line.

The person's data is gathered by the single customer view (:func:`cdp.profiles.timeline.build_timeline`)
with every event instead of the latest few; this module adds the provenance and the packaging, and
hands the archive out by a presigned URL that expires in minutes.

Entry points: :func:`export_person` (build the archive) and :func:`run_export` (build, store and
link it for a privacy request).
"""

from __future__ import annotations

import io
import json
import re
import zipfile
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from cdp.errors import InvalidConfig, MalformedRequest, NotFound
from cdp.identity.config import IdentityConfig
from cdp.identity.explain import profile_history
from cdp.identity.identifiers import extract
from cdp.identity.lookup import live_profile
from cdp.identity.store import IdentityStore
from cdp.profiles.messages import MessageJournal
from cdp.profiles.timeline import EventReader, Memberships, build_timeline
from cdp.times import format_time

FORMAT = "cdp-export/1"
PREFIX = "exports/"
#: Events one archive holds at most; a person with more gets the latest ones and ``complete: false``.
MAX_EVENTS = 200_000
#: The presigned link's life: long enough to download, short enough that a forwarded link dies.
DEFAULT_LINK_SECONDS = 15 * 60
MAX_LINK_SECONDS = 60 * 60
_REQUEST_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")

#: What the archive does not hold, said in it so the person is told (docs/privacy.md).
NOT_INCLUDED = (
    "events that carry none of the identifiers user_id, anonymous_id or email (the lake is searched by these)",
    "rejected events kept in the quarantine (raw bodies, kept for repair and replay)",
    "copies that only live for a bounded time: the event stream (7 days), S3 noncurrent versions (30 days), "
    "DynamoDB point-in-time backups (35 days)",
)


class ArchiveStore(Protocol):
    """Where archives go (``cdp.adapters.exports.S3ExportArchives``; :class:`InMemoryArchives`)."""

    def put(self, key: str, body: bytes) -> None: ...

    def presigned_url(self, key: str, seconds: int) -> str: ...


class SourceDirectory(Protocol):
    def list_sources(self) -> Sequence[Any]:
        """Sources with ``source_id`` and ``name`` (write keys are never read)."""
        ...


@dataclass
class ExportStores:
    """Every port an export reads or writes."""

    store: IdentityStore
    memberships: Memberships
    journal: MessageJournal
    read_events: EventReader
    archives: ArchiveStore
    config: IdentityConfig
    segments: Collection[str] = ()
    sources: SourceDirectory | None = None
    link_seconds: int = DEFAULT_LINK_SECONDS


@dataclass
class ExportArchive:
    """The archive's two parts before they are zipped."""

    document: dict[str, Any]
    events: list[dict[str, Any]] = field(default_factory=list)

    @property
    def profile_id(self) -> str | None:
        found: str | None = (self.document.get("profile") or {}).get("profile_id")
        return found

    def events_jsonl(self) -> bytes:
        return b"".join(json.dumps(e, ensure_ascii=False, sort_keys=True, default=str).encode("utf-8") + b"\n"
                        for e in self.events)

    def to_zip(self) -> bytes:
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            archive.writestr("profile.json", json.dumps(self.document, ensure_ascii=False, indent=2, sort_keys=True))
            archive.writestr("events.jsonl", self.events_jsonl())
        return buffer.getvalue()


@dataclass(frozen=True, slots=True)
class ExportResult:
    """What a privacy request records of its export: where the archive is and how to fetch it."""

    request_id: str
    key: str
    url: str
    expires_at: str
    found: bool
    profile_id: str | None
    events: int
    complete: bool
    bytes: int

    def to_dict(self) -> dict[str, Any]:
        return {"request_id": self.request_id, "key": self.key, "url": self.url, "expires_at": self.expires_at,
                "found": self.found, "profile_id": self.profile_id, "events": self.events,
                "complete": self.complete, "bytes": self.bytes}


def export_person(subject: str, stores: ExportStores, *, now: datetime, request_id: str = "") -> ExportArchive:
    """The archive of the person holding ``subject`` (``type:value``, or ``profile:<profile id>``).

    An unknown person gives an archive that says nothing was found. Raises ``InvalidIdentifier``
    for a malformed identifier.
    """
    identifier = _identifier_of(subject, stores.store)
    header = {"format": FORMAT, "request_id": request_id or None, "subject": subject,
              "generated_at": format_time(now), "not_included": list(NOT_INCLUDED)}
    if identifier is None:
        return ExportArchive({**header, "found": False})
    try:
        view = build_timeline(identifier, store=stores.store, config=stores.config, segments=stores.segments,
                              memberships=stores.memberships, journal=stores.journal,
                              read_events=stores.read_events, limit=MAX_EVENTS)
    except NotFound:
        return ExportArchive({**header, "found": False})
    events = list(view.pop("events"))
    history = profile_history(view["profile_id"], stores.store)
    names = {str(s.source_id): str(s.name) for s in (stores.sources.list_sources() if stores.sources else ())}
    document = {
        **header,
        "found": True,
        "profile": {key: view[key] for key in ("profile_id", "identifiers", "traits", "computed_traits",
                                               "lifecycle_stage", "first_seen", "last_seen", "event_count")},
        "absorbed_profiles": view["absorbed_profiles"],
        "consent": view["consent"],
        "consent_history": view["consent_history"],
        "lifecycle_history": view["lifecycle_history"],
        "merge_log": [entry.view() for entry in history],
        "segments": view["segments"],
        "messages": view["messages"],
        "provenance": provenance(events, view["identifiers"], names, stores.config),
        "events": {"file": "events.jsonl", "count": len(events), "complete": not view["events_more"],
                   "days_read": view["events_days_read"]},
    }
    return ExportArchive(document, events)


def run_export(request: Any, stores: Any, *, now: datetime | None = None) -> ExportResult:
    """Build, store and link the archive for a privacy request.

    ``request`` has an id (``id`` or ``request_id``) and names the person by ``profile_id``,
    ``identifiers`` or ``identifier`` (``type:value``), or by a ``person`` holding ``profile_ids``
    and ``identifiers`` (the privacy request record); the first that finds a profile is used.
    ``stores`` is an :class:`ExportStores`, or holds one as ``export``. Storing under the request's
    id makes a retried export overwrite its own archive, never add another.
    """
    now = now or datetime.now(UTC)
    export_stores = _export_stores(stores)
    request_id = str(getattr(request, "id", None) or getattr(request, "request_id", None) or "")
    if not _REQUEST_ID.fullmatch(request_id):
        raise MalformedRequest("invalid_request_id", expected="1-128 letters, digits, '_', '.', '-'")
    archive = _archive_for(request, export_stores, now=now, request_id=request_id)
    body = archive.to_zip()
    key = f"{PREFIX}{request_id}.zip"
    export_stores.archives.put(key, body)
    seconds = max(1, min(int(export_stores.link_seconds), MAX_LINK_SECONDS))
    url = export_stores.archives.presigned_url(key, seconds)
    found = bool(archive.document.get("found"))
    events = archive.document.get("events") or {}
    return ExportResult(request_id=request_id, key=key, url=url, expires_at=format_time(now + timedelta(seconds=seconds)),
                        found=found, profile_id=archive.profile_id, events=int(events.get("count") or 0),
                        complete=bool(events.get("complete", True)), bytes=len(body))


def _export_stores(stores: Any) -> ExportStores:
    found = stores if isinstance(stores, ExportStores) else getattr(stores, "export", None)
    if not isinstance(found, ExportStores):
        raise InvalidConfig("run_export needs ExportStores (cdp.adapters.exports.stack_export_stores)")
    return found


def _subjects(request: Any) -> list[str]:
    """Who the request is about, most precise first: profile ids, then identifiers."""
    person = getattr(request, "person", None)
    profile_ids = [getattr(request, "profile_id", None), *(getattr(person, "profile_ids", None) or ())]
    identifiers = [*(getattr(request, "identifiers", None) or ()), getattr(request, "identifier", None),
                   *(getattr(person, "identifiers", None) or ())]
    subjects = [f"profile:{p}" for p in profile_ids if p] + [str(i) for i in identifiers if i]
    return list(dict.fromkeys(subjects))


def _archive_for(request: Any, stores: ExportStores, *, now: datetime, request_id: str) -> ExportArchive:
    subjects = _subjects(request)
    if not subjects:
        raise MalformedRequest("no_identifier", expected="a profile_id or type:value identifiers")
    archive = ExportArchive({})
    for subject in subjects:
        archive = export_person(subject, stores, now=now, request_id=request_id)
        if archive.document.get("found"):
            break
    return archive


def _identifier_of(subject: str, store: IdentityStore) -> str | None:
    """``type:value`` to look the person up by; a ``profile:`` subject by one of its identifiers."""
    kind, _, value = subject.partition(":")
    if kind != "profile":
        return subject
    profile = live_profile(value, store) if value else None
    if profile is None or not profile.identifiers:
        return None
    return str(sorted(profile.identifiers)[0])


# ------------------------------------------------------------------------------ provenance
def provenance(events: Iterable[Mapping[str, Any]], identifiers: Mapping[str, Sequence[str]],
               source_names: Mapping[str, str], config: IdentityConfig) -> dict[str, Any]:
    """Where each datum came from, from the events themselves (oldest first).

    ``identifiers`` is the profile's, by type (``{"email": ["a@x.io"]}``).

    * ``identifiers``: per identifier of the profile, the sources that sent it, first and last seen;
    * ``traits``: per trait, the source and event of its latest value, and when it was first sent;
    * ``sources``: per source, its name, the number of events, first and last seen.
    """
    held = {f"{kind}:{value}" for kind, values in identifiers.items() for value in values}
    by_identifier: dict[str, dict[str, Any]] = {}
    by_trait: dict[str, dict[str, Any]] = {}
    by_source: dict[str, dict[str, Any]] = {}
    for event in events:
        at = event.get("timestamp") or event.get("receivedAt")
        source_id = str(event.get("sourceId") or "")
        source = source_names.get(source_id) or source_id or None
        _seen(by_source.setdefault(source_id or "unknown", {"name": source, "events": 0}), at)
        by_source[source_id or "unknown"]["events"] += 1
        for identifier in extract(event, config).identifiers:
            if identifier in held:
                entry = by_identifier.setdefault(identifier, {"sources": [], "events": 0})
                _seen(entry, at)
                entry["events"] += 1
                if source and source not in entry["sources"]:
                    entry["sources"].append(source)
        for traits in (event.get("traits"), (event.get("context") or {}).get("traits")):
            if not isinstance(traits, Mapping) or event.get("type") == "group":
                continue
            for name in traits:
                entry = by_trait.setdefault(str(name), {})
                _seen(entry, at)
                if at is not None and str(at) >= str(entry.get("set_at") or ""):
                    entry.update(set_at=at, source=source, message_id=event.get("messageId"))
    return {"identifiers": dict(sorted(by_identifier.items())), "traits": dict(sorted(by_trait.items())),
            "sources": dict(sorted(by_source.items()))}


def _seen(entry: dict[str, Any], at: Any) -> None:
    if at is None:
        return
    text = str(at)
    if entry.get("first_seen") is None or text < entry["first_seen"]:
        entry["first_seen"] = text
    if entry.get("last_seen") is None or text > entry["last_seen"]:
        entry["last_seen"] = text


class InMemoryArchives:
    """An ArchiveStore in memory (tests, one-off runs): links are ``memory://`` URLs."""

    def __init__(self) -> None:
        self.objects: dict[str, bytes] = {}

    def put(self, key: str, body: bytes) -> None:
        self.objects[key] = body

    def presigned_url(self, key: str, seconds: int) -> str:
        return f"memory://{key}?expires={seconds}"
