"""What each ad audience holds: per (destination, profile), the hashed keys we sent it.

The platforms' audiences cannot be listed, so removing someone needs the keys that were sent, not
the profile's keys of today (an email may have changed since). The record is written **before** an
add and deleted **after** a remove, so it always holds at least what the platform holds: a crash
anywhere leaves a record of keys that may or may not be there, and removing keys that are not in
an audience is a no-op. ``AudienceHoldingsTable`` keeps them (hashes only; encrypted with the stack
key; an erasure deletes a person's records).

Several writers meet on one record (a delivery, a consent signal, a resync, a merge's clean-up), each
reading, sending, then writing. Each record has a version, and every write is conditional on the
version its writer read (:meth:`Holdings.write`), so nobody overwrites what another wrote:

* :func:`grow` (before rows are sent) re-reads and retries on a conflict: nothing was sent yet. It
  writes a new version even when the rows are already held, as a fence: a writer that read the
  record before, removed those rows at the platform and now wants to drop them, fails;
* :func:`shrink` (after rows were removed at the platform) gives up on a conflict and leaves the
  record as it is: the platform may hold those rows again (someone re-sent them), and a record that
  holds too much only costs a no-op remove at the next resync or signal.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from cdp.activation.audiences import Hashed
from cdp.errors import ConcurrentUpdate

#: Rounds of re-reading a record another writer changed, before the caller's message is retried.
GROW_ROUNDS = 8


@dataclass(frozen=True, slots=True)
class Holding:
    """One person's record for one destination: the hashed members sent, and its version."""

    rows: list[Hashed] = field(default_factory=list)
    version: int = 0  # 0: no record (or one written before records had versions)


class Holdings(Protocol):
    def read(self, destination: str, profile_ids: Sequence[str]) -> dict[str, Holding]:
        """Each profile's record with its version; absent ids have none."""
        ...

    def write(self, destination: str, items: Iterable[tuple[str, list[Hashed], int]]) -> list[str]:
        """Set each ``(profile, rows, version read)``'s rows (empty: delete the record) only if its
        version is still the one read; the record's version becomes one more. Returns the profile
        ids whose record had changed since (those are not written)."""
        ...

    def held(self, destination: str, profile_ids: Sequence[str]) -> dict[str, list[Hashed]]:
        """The hashed members sent (and not yet removed) per profile id; absent ids hold nothing."""
        ...

    def put(self, destination: str, items: Iterable[tuple[str, list[Hashed]]]) -> None:
        """Set what each profile holds (an empty list deletes its record) whatever it held: for erasure."""
        ...

    def profiles(self, destination: str) -> Iterator[str]:
        """Every profile id with a record for ``destination`` (a resync removes those not wanted)."""
        ...


class InMemoryHoldings:
    def __init__(self) -> None:
        self.items: dict[tuple[str, str], list[Any]] = {}
        self.versions: dict[tuple[str, str], int] = {}

    def read(self, destination: str, profile_ids: Sequence[str]) -> dict[str, Holding]:
        return {pid: Holding(list(v), self.versions.get((destination, pid), 0))
                for pid in profile_ids if (v := self.items.get((destination, pid)))}

    def write(self, destination: str, items: Iterable[tuple[str, list[Hashed], int]]) -> list[str]:
        conflicts = []
        for pid, rows, version in items:
            key = (destination, pid)
            if self.versions.get(key, 0) != version:
                conflicts.append(pid)
                continue
            if rows:
                self.items[key], self.versions[key] = list(rows), version + 1
            else:
                self.items.pop(key, None)
                self.versions.pop(key, None)
        return conflicts

    def held(self, destination: str, profile_ids: Sequence[str]) -> dict[str, list[Hashed]]:
        return {pid: list(v) for pid in profile_ids if (v := self.items.get((destination, pid)))}

    def put(self, destination: str, items: Iterable[tuple[str, list[Hashed]]]) -> None:
        for pid, sent in items:
            if sent:
                self.items[(destination, pid)] = list(sent)
                self.versions[(destination, pid)] = self.versions.get((destination, pid), 0) + 1
            else:
                self.items.pop((destination, pid), None)
                self.versions.pop((destination, pid), None)

    def profiles(self, destination: str) -> Iterator[str]:
        return iter(sorted(pid for d, pid in self.items if d == destination))


def grow(holdings: Holdings, destination: str, adds: Mapping[str, list[Hashed]],
         known: Mapping[str, Holding]) -> dict[str, Holding]:
    """Before ``adds`` are sent: each record becomes its rows plus those, under a new version even if
    nothing is new (the fence above). ``known`` is what the caller read; a record changed since is
    read again and merged again. Returns the records as written (for a later :func:`shrink`)."""
    pending, current, written = dict(adds), dict(known), {}
    for _ in range(GROW_ROUNDS):
        items = []
        for pid, rows in pending.items():
            have = current.get(pid) or Holding()
            items.append((pid, have.rows + [r for r in rows if r not in have.rows], have.version))
        conflicts = set(holdings.write(destination, items))
        written.update({pid: Holding(rows, version + 1) for pid, rows, version in items if pid not in conflicts})
        if not conflicts:
            return written
        pending = {pid: pending[pid] for pid in sorted(conflicts)}
        current = holdings.read(destination, list(pending))
    raise ConcurrentUpdate("audience holdings kept changing under this write", destination=destination,
                           profiles=sorted(pending))


def shrink(holdings: Holdings, destination: str, removes: Mapping[str, list[Hashed]],
           known: Mapping[str, Holding]) -> list[str]:
    """After ``removes`` were removed at the platform: drop them from each record read as ``known``,
    unless it changed since (then it is left holding them: see above). Returns the ids left so."""
    items = []
    for pid, rows in removes.items():
        have = known.get(pid)
        if have is None:
            continue
        keep = [r for r in have.rows if r not in rows]
        if keep != have.rows:
            items.append((pid, keep, have.version))
    return holdings.write(destination, items)
