"""The storage port of identity resolution, and an in-memory store with the same semantics.

The port is shaped after what DynamoDB does cheaply: batch reads of the identity index and of
profiles, batch (unconditional) writes of index entries and log entries, and conditional writes
where correctness needs them: claiming a new identifier, writing a profile at an expected
version, and the rare merge as one transaction.
"""

from __future__ import annotations

import copy
import hashlib
import threading
from collections import Counter
from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from cdp.errors import ConcurrentUpdate, IdentifierTaken
from cdp.identity.profile import Profile


@dataclass(frozen=True)
class MergeLogEntry:
    """One link, merge, refusal or unmerge, with its evidence."""

    profile_id: str
    kind: str  # link | merge | refused | detach | unmerge
    at: str  # event time of the evidence (or operation time)
    message_id: str | None = None
    rule: str | None = None
    identifiers: tuple[str, ...] = ()
    other_profile_ids: tuple[str, ...] = ()
    details: Mapping[str, Any] = field(default_factory=dict)

    @property
    def entry_id(self) -> str:
        """Sortable by time; deterministic, so a retried batch rewrites the same entry."""
        digest = hashlib.sha256(
            "|".join(
                [
                    self.kind,
                    self.message_id or "",
                    self.rule or "",
                    *self.identifiers,
                    *self.other_profile_ids,
                ]
            ).encode()
        ).hexdigest()[:16]
        return f"{self.at}#{self.kind}#{digest}"

    def view(self) -> dict[str, Any]:
        return {
            "entry_id": self.entry_id,
            "profile_id": self.profile_id,
            "kind": self.kind,
            "at": self.at,
            "message_id": self.message_id,
            "rule": self.rule,
            "identifiers": list(self.identifiers),
            "other_profile_ids": list(self.other_profile_ids),
            "details": dict(self.details),
        }


class IdentityStore(Protocol):
    def get_pointers(self, identifiers: Collection[str]) -> dict[str, str]:
        """identifier -> profile_id for the identifiers that have an index entry (batch read)."""
        ...

    def get_profiles(self, profile_ids: Collection[str]) -> dict[str, Profile]:
        """The stored profiles among ``profile_ids``, tombstones included (batch read)."""
        ...

    def claim_identifiers(self, claims: Mapping[str, str]) -> None:
        """Create index entries for new identifiers, each only if absent or already equal.

        Raises :class:`IdentifierTaken` (details ``identifiers``) when another writer got there first.
        """
        ...

    def put_profile(self, profile: Profile) -> None:
        """Write at ``profile.version`` (None: must not exist) and bump it; else ConcurrentUpdate."""
        ...

    def put_merge(self, survivor: Profile, tombstones: Sequence[Profile]) -> None:
        """Write the survivor and the tombstones atomically, each at its expected version."""
        ...

    def set_pointers(self, pointers: Mapping[str, str]) -> None:
        """Point existing index entries elsewhere (batch write, unconditional)."""
        ...

    def delete_pointers(self, identifiers: Collection[str]) -> None: ...

    def append_merge_log(self, entries: Sequence[MergeLogEntry]) -> None: ...

    def read_merge_log(self, profile_id: str) -> list[MergeLogEntry]: ...

    def scan_profiles(self) -> Iterator[Profile]: ...

    def scan_pointers(self) -> Iterator[tuple[str, str]]: ...


class InMemoryIdentityStore:
    """Dict-backed store with DynamoDB's conditions and copy semantics; counts its requests."""

    def __init__(self) -> None:
        self.pointers: dict[str, str] = {}
        self.profiles: dict[str, Profile] = {}
        self.log: dict[str, dict[str, MergeLogEntry]] = {}
        self.requests: Counter[str] = Counter()
        self._lock = threading.RLock()

    # --------------------------------------------------------------- reads
    def get_pointers(self, identifiers: Collection[str]) -> dict[str, str]:
        keys = list(dict.fromkeys(identifiers))
        with self._lock:
            self.requests["BatchGetItem"] += -(-len(keys) // 100)
            return {k: self.pointers[k] for k in keys if k in self.pointers}

    def get_profiles(self, profile_ids: Collection[str]) -> dict[str, Profile]:
        keys = list(dict.fromkeys(profile_ids))
        with self._lock:
            self.requests["BatchGetItem"] += -(-len(keys) // 100)
            return {k: copy.deepcopy(self.profiles[k]) for k in keys if k in self.profiles}

    # --------------------------------------------------------------- writes
    def claim_identifiers(self, claims: Mapping[str, str]) -> None:
        if not claims:
            return
        items = list(claims.items())
        with self._lock:
            for start in range(0, len(items), 100):
                chunk = items[start : start + 100]
                self.requests["TransactWriteItems" if len(chunk) > 1 else "PutItem"] += 1
                taken = [i for i, p in chunk if self.pointers.get(i, p) != p]
                if taken:
                    raise IdentifierTaken("identifier claimed by another writer", identifiers=taken)
                self.pointers.update(chunk)

    def _check_version(self, profile: Profile) -> None:
        stored = self.profiles.get(profile.profile_id)
        expected = None if stored is None else stored.version
        if expected != profile.version:
            raise ConcurrentUpdate(
                "profile changed since it was read", profile_id=profile.profile_id, expected=profile.version
            )

    def _write(self, profile: Profile) -> None:
        profile.version = (profile.version or 0) + 1
        self.profiles[profile.profile_id] = copy.deepcopy(profile)

    def put_profile(self, profile: Profile) -> None:
        with self._lock:
            self.requests["PutItem"] += 1
            self._check_version(profile)
            self._write(profile)

    def put_merge(self, survivor: Profile, tombstones: Sequence[Profile]) -> None:
        with self._lock:
            self.requests["TransactWriteItems"] += 1
            for profile in (survivor, *tombstones):
                self._check_version(profile)
            for profile in (survivor, *tombstones):
                self._write(profile)

    def set_pointers(self, pointers: Mapping[str, str]) -> None:
        if not pointers:
            return
        with self._lock:
            self.requests["BatchWriteItem"] += -(-len(pointers) // 25)
            self.pointers.update(pointers)

    def delete_pointers(self, identifiers: Collection[str]) -> None:
        if not identifiers:
            return
        with self._lock:
            self.requests["BatchWriteItem"] += -(-len(identifiers) // 25)
            for identifier in identifiers:
                self.pointers.pop(identifier, None)

    def append_merge_log(self, entries: Sequence[MergeLogEntry]) -> None:
        if not entries:
            return
        with self._lock:
            self.requests["BatchWriteItem"] += -(-len(entries) // 25)
            for entry in entries:
                self.log.setdefault(entry.profile_id, {})[entry.entry_id] = entry

    def read_merge_log(self, profile_id: str) -> list[MergeLogEntry]:
        with self._lock:
            self.requests["Query"] += 1
            entries = self.log.get(profile_id, {})
            return [entries[k] for k in sorted(entries)]

    # --------------------------------------------------------------- scans
    def scan_profiles(self) -> Iterator[Profile]:
        with self._lock:
            snapshot = [copy.deepcopy(p) for p in self.profiles.values()]
        yield from snapshot

    def scan_pointers(self) -> Iterator[tuple[str, str]]:
        with self._lock:
            snapshot = list(self.pointers.items())
        yield from snapshot

    @property
    def request_count(self) -> int:
        return sum(self.requests.values())


if TYPE_CHECKING:
    # mypy proves the twin keeps up with the port.
    _twin: IdentityStore = InMemoryIdentityStore()
