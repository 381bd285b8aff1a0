"""Erasure: the person removed from every store, in steps checkpointed in the request record.

Each step is idempotent (deleting what is gone deletes nothing; a day with no row of the person
is not rewritten) and, once finished, recorded in ``request.steps`` with what it removed, then the
record is saved. A crash anywhere re-runs at most the unfinished step; a finished step is never
redone. The person (identifiers, profile ids, first and last seen) is resolved once, first, and
kept in the record, so later steps still know them after the profiles are gone.

Order: suppress (nothing new is collected), resolve, tell the destinations (while their
identifiers still exist), the lake (events, snapshots, quarantine, failures, reports), then
DynamoDB (memberships, messages and ledger keys, merge log, identity index, profiles), then verify.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, Protocol, runtime_checkable

from cdp.identity.store import IdentityStore
from cdp.privacy.matching import Needles
from cdp.privacy.requests import Person, PrivacyRequest, RequestStore, resolve_person
from cdp.privacy.suppression import SuppressionStore, identifier_hash
from cdp.times import format_time


@runtime_checkable
class ErasureNotice(Protocol):
    """A destination that holds people (email list, ad audience, webhook subscriber) and must be
    told of an erasure (GDPR Art. 19). ``notify`` must be idempotent: a resumed job calls it again."""

    name: str

    def notify(self, request_id: str, person: Person) -> dict[str, Any]: ...


_NOTICES: list[ErasureNotice] = []


def register_notice(notice: ErasureNotice) -> None:
    """Add a destination to tell; registering the same name again replaces it."""
    _NOTICES[:] = [n for n in _NOTICES if n.name != notice.name] + [notice]


def registered_notices() -> list[ErasureNotice]:
    return list(_NOTICES)


class ErasureStores(Protocol):
    """Where the person's data lives; every method returns what it removed, by store."""

    def lake_days(self, needles: Needles, days: list[str]) -> list[str]: ...

    def erase_event_days(self, days: list[str], needles: Needles) -> dict[str, int]: ...

    def erase_snapshots(self, needles: Needles) -> dict[str, int]: ...

    def erase_objects(self, needles: Needles) -> dict[str, int]: ...

    def erase_items(self, person: Person, needles: Needles) -> dict[str, int]: ...


class Verifier(Protocol):
    def __call__(self, needles: Needles, days: list[str]) -> dict[str, Any]: ...


STEPS = ("suppress", "resolve", "notices", "lake_events", "lake_snapshots", "lake_objects", "tables", "verify")


def needles_of(person: Person) -> Needles:
    return Needles.of(person.identifiers, person.profile_ids)


def person_days(person: Person) -> list[str]:
    from cdp.lake.person import days_between  # pyarrow: only the erase function needs it

    return days_between(person.first_seen, person.last_seen)


def run_erase(request: PrivacyRequest, *, requests: RequestStore, suppression: SuppressionStore,
              identity: IdentityStore, stores: ErasureStores, verify: Verifier, now: Callable[[], datetime],
              notices: Sequence[ErasureNotice] | None = None, previous_erase: str | None = None) -> PrivacyRequest:
    """Run (or resume) ``request``'s erasure to the end; returns the updated record."""
    if request.status == "done":
        return request
    request.status = "running"
    notices = registered_notices() if notices is None else list(notices)

    def step(name: str, action: Callable[[], dict[str, Any]]) -> None:
        if name in request.steps:
            return
        request.steps[name] = action()
        request.note(now(), f"step {name}", **{k: v for k, v in request.steps[name].items()
                                               if isinstance(v, int | str | bool)})
        requests.put_request(request)

    def suppress() -> dict[str, Any]:
        suppression.suppress([identifier_hash(request.identifier)], request_id=request.request_id,
                             at=format_time(now()))
        return {"suppressed": 1}

    def resolve() -> dict[str, Any]:
        request.person = resolve_person([request.identifier], identity)
        # Every identifier of the person is suppressed too, not just the one asked about.
        suppression.suppress([identifier_hash(i) for i in request.person.identifiers],
                             request_id=request.request_id, at=format_time(now()))
        found: dict[str, Any] = {"identifiers": len(request.person.identifiers),
                                 "profiles": len(request.person.profile_ids)}
        if not request.person.found:
            found["nothing_found"] = True
            if previous_erase:
                found["already_erased_by"] = previous_erase
        return found

    def tell() -> dict[str, Any]:
        told: dict[str, Any] = {}
        for notice in notices:
            told[notice.name] = notice.notify(request.request_id, request.person)
        return {"destinations": len(told), **{f"notice:{k}": str(v) for k, v in told.items()}}

    needles = lambda: needles_of(request.person)  # noqa: E731 (read after resolve)

    def lake_events() -> dict[str, Any]:
        days = stores.lake_days(needles(), person_days(request.person))
        return {"days_with_rows": len(days), **stores.erase_event_days(days, needles())}

    step("suppress", suppress)
    step("resolve", resolve)
    step("notices", tell)
    step("lake_events", lake_events)
    step("lake_snapshots", lambda: stores.erase_snapshots(needles()))
    step("lake_objects", lambda: stores.erase_objects(needles()))
    step("tables", lambda: stores.erase_items(request.person, needles()))
    step("verify", lambda: verify(needles(), person_days(request.person)))
    remaining = int(request.steps["verify"].get("remaining", 0))
    request.status = "done" if remaining == 0 else "failed"
    request.result = {"removed": removed_by_store(request.steps), "remaining": remaining,
                      "stores_checked": request.steps["verify"].get("stores_checked", 0)}
    if remaining:
        # Something wrote the person back meanwhile (a compaction of the same day that read the
        # files before the rewrite, a restore): the next run does every store again.
        request.result["findings"] = request.steps["verify"].get("by_store", {})
        request.steps = {k: v for k, v in request.steps.items() if k in ("suppress", "resolve", "notices")}
    if not request.person.found:
        request.result["nothing_found"] = True
        if previous_erase:
            request.result["already_erased_by"] = previous_erase
    request.note(now(), request.status, remaining=remaining)
    requests.put_request(request)
    return request


def removed_by_store(steps: dict[str, dict[str, Any]]) -> dict[str, int]:
    """Counts of the lake and table steps, by store (``events:rows`` ...)."""
    removed: dict[str, int] = {}
    for name in ("lake_events", "lake_snapshots", "lake_objects", "tables"):
        for key, value in steps.get(name, {}).items():
            if isinstance(value, int) and not isinstance(value, bool) and key != "days_with_rows":
                removed[key] = removed.get(key, 0) + value
    return removed
