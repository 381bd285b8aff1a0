"""Privacy requests end to end: accept one (API, CLI), run it (the privacy function), check deadlines.

Dispatch by kind is one table (:data:`RUNNERS`). Suppression happens when the request is accepted,
before any job runs, for ``erase`` and ``suppress``: nothing about the person is collected while
the erasure is queued or running.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Protocol

from cdp.identity.config import IdentityConfig
from cdp.identity.store import IdentityStore
from cdp.privacy.erase import ErasureNotice, ErasureStores, Verifier, run_erase
from cdp.privacy.requests import PrivacyRequest, new_request, parse_request, resolve_person
from cdp.privacy.suppression import identifier_hash
from cdp.times import format_time, parse_time

if TYPE_CHECKING:
    from cdp.privacy.export import ExportStores


class PrivacyStore(Protocol):
    def put_request(self, request: PrivacyRequest) -> None: ...

    def get_request(self, request_id: str) -> PrivacyRequest | None: ...

    def open_requests(self) -> dict[str, str]: ...

    def suppressed_hashes(self) -> set[str]: ...

    def suppressed_by(self, hash_: str) -> str | None: ...

    def suppress(self, hashes: Iterable[str], *, request_id: str, at: str) -> None: ...

    def unsuppress(self, hashes: Iterable[str]) -> None: ...


@dataclass
class PrivacyStores:
    """What running a request needs; ``erasure`` and ``verify`` only for erase, ``export`` only for export."""

    privacy: PrivacyStore
    identity: IdentityStore
    erasure: ErasureStores | None = None
    verify: Verifier | None = None
    notices: list[ErasureNotice] | None = None
    export: ExportStores | None = None


def accept_request(body: object, *, config: IdentityConfig, privacy: PrivacyStore, identity: IdentityStore,
                   enqueue: Callable[[str], None], now: datetime) -> PrivacyRequest:
    """Validate, record, suppress at once (erase, suppress) or lift (unsuppress), and queue the job.

    Raises :class:`cdp.errors.InvalidIdentifier` / :class:`cdp.errors.MalformedRequest` (400).
    """
    kind, identifier = parse_request(body, config=config)
    request = new_request(kind, identifier, now=now)
    person = resolve_person([identifier], identity)
    request.person = person
    hashes = sorted({identifier_hash(i) for i in person.identifiers})
    previous = privacy.suppressed_by(identifier_hash(identifier)) if kind == "erase" else None
    if kind in ("erase", "suppress"):
        privacy.suppress(hashes, request_id=request.request_id, at=format_time(now))
        request.note(now, "suppressed", identifiers=len(hashes))
    if not person.found:
        request.result["nothing_found"] = True
        if previous:
            request.result["already_erased_by"] = previous
    if kind == "unsuppress":
        privacy.unsuppress(hashes)
        request.note(now, "unsuppressed", identifiers=len(hashes))
    if kind in ("suppress", "unsuppress"):
        request.status = "done"
    privacy.put_request(request)
    if request.status != "done":
        enqueue(request.request_id)
    return request


def _erase(request: PrivacyRequest, stores: PrivacyStores, now: Callable[[], datetime]) -> PrivacyRequest:
    assert stores.erasure is not None and stores.verify is not None, "erase needs the erasure stores"
    previous = request.result.get("already_erased_by")
    return run_erase(request, requests=stores.privacy, suppression=stores.privacy, identity=stores.identity,
                     stores=stores.erasure, verify=stores.verify, now=now, notices=stores.notices,
                     previous_erase=previous if isinstance(previous, str) else None)


def _export(request: PrivacyRequest, stores: PrivacyStores, now: Callable[[], datetime]) -> PrivacyRequest:
    """Build, store and link the person's archive; the record keeps where it is and its link.

    Rerunning (SQS redelivery, ``cdp privacy export ID``) overwrites the same ``exports/<id>.zip``
    and records a fresh link: the crash matrix is docs/privacy.md's.
    """
    from cdp.privacy.export import run_export

    assert stores.export is not None, "export needs the export stores"
    result = run_export(request, stores, now=now())
    request.result.update({key: value for key, value in result.to_dict().items() if key != "request_id"})
    request.status = "done"
    request.note(now(), "exported", key=result.key, events=result.events, bytes=result.bytes,
                 expires_at=result.expires_at)
    stores.privacy.put_request(request)
    return request


def _already_done(request: PrivacyRequest, stores: PrivacyStores, now: Callable[[], datetime]) -> PrivacyRequest:
    return request  # suppress and unsuppress are done when accepted


#: kind -> what runs it. One table: a new kind is one line here.
RUNNERS: dict[str, Callable[[PrivacyRequest, PrivacyStores, Callable[[], datetime]], PrivacyRequest]] = {
    "erase": _erase,
    "export": _export,
    "suppress": _already_done,
    "unsuppress": _already_done,
}


def queued_request_id(body: str) -> str:
    """The request id of a privacy queue message (what ``SqsPrivacyQueue`` sends)."""
    return str(json.loads(body)["request_id"])


def run_request(request_id: str, stores: PrivacyStores, *, now: Callable[[], datetime]) -> PrivacyRequest | None:
    request = stores.privacy.get_request(request_id)
    if request is None:
        return None
    return RUNNERS[request.kind](request, stores, now)


def overdue(privacy: PrivacyStore, *, now: datetime) -> list[str]:
    """Open requests past their due date (the alarm's metric counts them)."""
    late = []
    for request_id, due_at in sorted(privacy.open_requests().items()):
        due = parse_time(due_at)
        if due is not None and due < now:
            late.append(request_id)
    return late
