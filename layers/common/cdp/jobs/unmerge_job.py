"""Unmerge with the archive: read a profile's events back from the lake, then detach or undo.

Identity resolution keeps no event history in DynamoDB (only counters and a dedupe window), so
rebuilding two profiles after a wrong merge replays their archived events from the lake.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from sqlglot import exp

from cdp.errors import NotFound
from cdp.identity.config import IdentityConfig
from cdp.identity.identifiers import parse_identifier, split_identifier
from cdp.identity.lookup import find_profile, live_profile
from cdp.identity.store import IdentityStore
from cdp.identity.unmerge import UnmergeResult, detach, normalise_archived, undo_merge
from cdp.lake import EVENT_COLUMNS
from cdp.segments.engines import QueryEngine

# Identifier types the lake has a column for; others are found through the events that carry
# one of these alongside them (every event has a user_id or an anonymous_id).
_LAKE_COLUMNS = ("user_id", "anonymous_id", "email")


def archived_events_sql(identifiers: list[str], dialect: str) -> str | None:
    """SQL for every archived event that carries one of ``identifiers`` (None if none can match)."""
    by_column: dict[str, list[str]] = {}
    for identifier in identifiers:
        kind, value = split_identifier(identifier)
        if kind in _LAKE_COLUMNS:
            by_column.setdefault(kind, []).append(value)
    if not by_column:
        return None
    condition = exp.or_(*[exp.column(col).isin(*[exp.Literal.string(v) for v in sorted(values)])
                          for col, values in sorted(by_column.items())])
    query = exp.select(*[exp.column(c) for c in EVENT_COLUMNS]).from_("events").where(condition)
    return query.sql(dialect=dialect, identify=True)  # quoted: "timestamp" is a keyword in Trino


def archived_events(identifiers: list[str], engine: QueryEngine) -> list[dict[str, Any]]:
    """The distinct archived events (by messageId) that carry one of ``identifiers``."""
    sql = archived_events_sql(identifiers, engine.dialect)
    if sql is None:
        return []
    events: dict[str, dict[str, Any]] = {}
    for row in engine.run(sql).rows:
        event = normalise_archived(row)
        events.setdefault(str(event.get("messageId")), event)
    return list(events.values())


def detach_identifier(identifier: str, store: IdentityStore, engine: QueryEngine, *, config: IdentityConfig,
                      now: datetime, reason: str = "manual",
                      suppressed: Callable[[Mapping[str, Any]], bool] | None = None) -> UnmergeResult:
    """Move ``identifier`` out of its profile; both sides rebuilt from the lake."""
    identifier = parse_identifier(identifier, config)
    profile = find_profile(identifier, store, config=config)
    if profile is None:
        raise NotFound("no profile has this identifier", identifier=identifier)
    events = _unsuppressed(archived_events(list(profile.identifiers), engine), suppressed)
    return detach(identifier, store, events=events, config=config, now=now, reason=reason)


def undo_profile_merge(absorbed_profile_id: str, store: IdentityStore, engine: QueryEngine, *, config: IdentityConfig,
                       now: datetime, reason: str = "manual",
                       suppressed: Callable[[Mapping[str, Any]], bool] | None = None) -> UnmergeResult:
    """Bring back a profile that a merge absorbed; it and its survivor rebuilt from the lake."""
    absorbed = store.get_profiles([absorbed_profile_id]).get(absorbed_profile_id)
    if absorbed is None:
        raise NotFound("no such profile", profile_id=absorbed_profile_id)
    identifiers = list(absorbed.identifiers)
    # The live survivor, not the profile it was merged into first: that one may have been merged
    # again since, and the survivor's own events must be replayed too.
    survivor = live_profile(absorbed.merged_into, store) if absorbed.merged_into else None
    if survivor is not None:
        identifiers += list(survivor.identifiers)
    events = _unsuppressed(archived_events(identifiers, engine), suppressed)
    return undo_merge(absorbed_profile_id, store, events=events, config=config, now=now, reason=reason)


def _unsuppressed(events: list[dict[str, Any]], suppressed: Callable[[Mapping[str, Any]], bool] | None,
                  ) -> list[dict[str, Any]]:
    """Events about a suppressed person are not replayed: a rebuild must not bring them back."""
    return events if suppressed is None else [e for e in events if not suppressed(e)]
