"""Segment membership: who is in, since which run; the changes a run hands to activation."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Protocol

from cdp import concurrently


@dataclass(frozen=True, slots=True)
class Member:
    """A member of a segment and the run at which it entered (the id activation dedupes on).

    ``announced`` is False from the moment an entry is stored until its change has been published
    (an outbox): any later evaluation that finds an unannounced member publishes its entry again
    with the stored ``entered_run`` and ``entered_at``, so the entry is announced under one id only.
    """

    profile_id: str
    entered_run: str
    entered_at: str  # ISO 8601, UTC
    announced: bool = True


class Change(StrEnum):
    """What a run decided for one profile; the value is the wire form."""

    ENTERED = "entered"
    EXITED = "exited"


@dataclass(frozen=True, slots=True)
class MembershipChange:
    """``entered`` or ``exited`` for one profile, decided by run ``run_id``.

    For ``entered``, ``run_id`` is the member's entry run: a re-sent entry (a retried run) carries the
    same id, so activation dedupes on ``(segment, profile_id, run_id)``.
    """

    segment: str
    profile_id: str
    change: Change
    run_id: str
    at: str  # ISO 8601, UTC

    def __post_init__(self) -> None:
        # Callers may pass the wire text; anything but a Change value is refused here.
        if not isinstance(self.change, Change):
            try:
                object.__setattr__(self, "change", Change(self.change))
            except ValueError:
                raise ValueError(f"change must be 'entered' or 'exited', got {self.change!r}") from None

    def to_dict(self) -> dict[str, str]:
        """The queue message: plain strings, as every version of this class has written it."""
        return {"segment": self.segment, "profile_id": self.profile_id, "change": self.change.value,
                "run_id": self.run_id, "at": self.at}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> MembershipChange:
        return cls(
            segment=str(data["segment"]),
            profile_id=str(data["profile_id"]),
            change=data["change"],
            run_id=str(data["run_id"]),
            at=str(data["at"]),
        )

    @property
    def dedupe_key(self) -> str:
        return f"{self.segment}|{self.profile_id}|{self.change.value}|{self.run_id}"


class MembershipStore(Protocol):
    """Stored membership of every segment, and the record of completed runs."""

    def members(self, segment: str) -> dict[str, Member]:
        """The current members of ``segment`` by profile id."""
        ...

    def member(self, segment: str, profile_id: str) -> Member | None:
        """One profile's membership of ``segment``, or None (for real-time evaluation)."""
        ...

    def members_page(self, segment: str, *, after: str | None, limit: int) -> tuple[list[Member], str | None]:
        """Up to ``limit`` members of ``segment`` whose profile id sorts after ``after`` (from the start if
        None), in profile id order, and the id to continue after (None when there are no more)."""
        ...

    def members_of(self, keys: Iterable[tuple[str, str]]) -> dict[tuple[str, str], Member]:
        """The memberships among ``(segment, profile_id)`` keys, in one batch read."""
        ...

    def apply(self, segment: str, entered: Iterable[Member], exited: Iterable[str]) -> None:
        """Add (or overwrite) ``entered`` members, with their ``announced`` flag; remove ``exited`` ids."""
        ...

    def completed_run(self, segment: str, run_id: str) -> dict[str, Any] | None:
        """The report of run ``run_id`` of ``segment`` if it completed, else None."""
        ...

    def record_run(self, segment: str, run_id: str, report: dict[str, Any]) -> None:
        """Mark run ``run_id`` of ``segment`` as completed, keeping its report."""
        ...

    def last_run(self, segment: str) -> dict[str, Any] | None:
        """The report of the most recently completed run of ``segment`` (by ``at``), else None."""
        ...

    def last_campaign_tick(self, campaign: str) -> dict[str, Any] | None:
        """The last tick of a scheduled campaign (``run_id``, ``at``, ``queued``), else None."""
        ...

    def record_campaign_tick(self, campaign: str, report: dict[str, Any]) -> None:
        """Record a scheduled campaign's tick (after its fan-out): the next due check reads it."""
        ...


class InMemoryMembershipStore:
    """A MembershipStore in memory: for tests and one-off local runs."""

    def __init__(self) -> None:
        self._members: dict[str, dict[str, Member]] = {}
        self._runs: dict[str, dict[str, dict[str, Any]]] = {}
        self._ticks: dict[str, dict[str, Any]] = {}

    def members(self, segment: str) -> dict[str, Member]:
        return dict(self._members.get(segment, {}))

    def member(self, segment: str, profile_id: str) -> Member | None:
        return self._members.get(segment, {}).get(profile_id)

    def members_page(self, segment: str, *, after: str | None, limit: int) -> tuple[list[Member], str | None]:
        # Sorted by code point, which is the UTF-8 byte order DynamoDB sorts a range key in; a full
        # page names where to continue even if nothing follows, as DynamoDB's LastEvaluatedKey does.
        ids = sorted(pid for pid in self._members.get(segment, {}) if after is None or pid > after)
        page = [self._members[segment][pid] for pid in ids[:limit]]
        return page, (page[-1].profile_id if page and len(page) == limit else None)

    def members_of(self, keys: Iterable[tuple[str, str]]) -> dict[tuple[str, str], Member]:
        return {(seg, pid): m for seg, pid in keys if (m := self.member(seg, pid)) is not None}

    def apply(self, segment: str, entered: Iterable[Member], exited: Iterable[str]) -> None:
        current = self._members.setdefault(segment, {})
        for member in entered:
            current[member.profile_id] = member
        for profile_id in exited:
            current.pop(profile_id, None)

    def completed_run(self, segment: str, run_id: str) -> dict[str, Any] | None:
        report = self._runs.get(segment, {}).get(run_id)
        return dict(report) if report is not None else None

    def record_run(self, segment: str, run_id: str, report: dict[str, Any]) -> None:
        self._runs.setdefault(segment, {})[run_id] = dict(report)

    def last_run(self, segment: str) -> dict[str, Any] | None:
        runs = self._runs.get(segment, {})
        if not runs:
            return None
        latest = max(runs.values(), key=lambda r: str(r.get("at", "")))
        return dict(latest)

    def last_campaign_tick(self, campaign: str) -> dict[str, Any] | None:
        tick = self._ticks.get(campaign)
        return dict(tick) if tick is not None else None

    def record_campaign_tick(self, campaign: str, report: dict[str, Any]) -> None:
        self._ticks[campaign] = dict(report)


if TYPE_CHECKING:
    # mypy proves the twin keeps up with the port.
    _twin: MembershipStore = InMemoryMembershipStore()


def store_announced(membership: MembershipStore, changes: Iterable[MembershipChange]) -> None:
    """After publishing: entries become announced members, exits leave."""
    by_segment: dict[str, tuple[list[Member], list[str]]] = {}
    for change in changes:
        entered, exited = by_segment.setdefault(change.segment, ([], []))
        if change.change is Change.ENTERED:
            entered.append(Member(change.profile_id, change.run_id, change.at))
        else:
            exited.append(change.profile_id)
    concurrently.all_of(lambda segment: membership.apply(segment, *by_segment[segment]), list(by_segment))
