"""What counts as a trace of a person: the strings erase removes and verify looks for.

For each identifier ``type:value``: the identifier itself, its SHA-256 (the form the suppression
list, audit lines and hashed-audience uploads use), the SHA-256 of the bare value, and the value as
a JSON string (``"alice@example.com"``) — quoted, so a short user id such as ``42`` does not match
every number in the lake. Profile ids (derived from identifiers, pseudonymous) count too.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass

from cdp.identity.identifiers import split_identifier
from cdp.privacy.suppression import identifier_hash

#: Lake event columns that hold one identifier type each.
ID_COLUMNS = {"user_id": "user_id", "anonymous_id": "anonymous_id", "email": "email"}
#: Lake event columns holding JSON text in which identifiers may appear anywhere.
JSON_COLUMNS = ("traits", "properties", "context")


@dataclass(frozen=True)
class Needles:
    identifiers: tuple[str, ...]
    profile_ids: tuple[str, ...]

    @classmethod
    def of(cls, identifiers: Iterable[str], profile_ids: Iterable[str] = ()) -> Needles:
        return cls(tuple(sorted(set(identifiers))), tuple(sorted(set(profile_ids))))

    @property
    def values(self) -> list[str]:
        return sorted({split_identifier(i)[1] for i in self.identifiers if split_identifier(i)[1]})

    @property
    def quoted(self) -> list[str]:
        """Each value as it appears inside JSON text (quotes included)."""
        return sorted({json.dumps(v) for v in self.values} | {json.dumps(v, ensure_ascii=False) for v in self.values})

    @property
    def hashes(self) -> list[str]:
        return sorted({identifier_hash(i) for i in self.identifiers}
                      | {hashlib.sha256(v.encode("utf-8")).hexdigest() for v in self.values})

    def strings(self) -> list[str]:
        """Every string whose presence anywhere is a trace of the person."""
        return sorted({*self.identifiers, *self.quoted, *self.hashes, *self.profile_ids})

    def found_in(self, text: str) -> list[str]:
        """Which kinds of trace ``text`` holds (``identifier``, ``value``, ``hash``, ``profile_id``)."""
        kinds = []
        if any(i in text for i in self.identifiers):
            kinds.append("identifier")
        if any(q in text for q in self.quoted):
            kinds.append("value")
        if any(h in text for h in self.hashes):
            kinds.append("hash")
        if any(p in text for p in self.profile_ids):
            kinds.append("profile_id")
        return kinds

    def column_values(self) -> dict[str, list[str]]:
        """Identifier column -> the person's values in it."""
        found: dict[str, set[str]] = {}
        for identifier in self.identifiers:
            kind, value = split_identifier(identifier)
            if kind in ID_COLUMNS and value:
                found.setdefault(ID_COLUMNS[kind], set()).add(value)
        return {column: sorted(values) for column, values in sorted(found.items())}


def _sql_text(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def days_query(needles: Needles, days: list[str]) -> str | None:
    """The one engine query (DuckDB and Athena alike) naming the ``dt`` partitions holding the person,
    restricted to ``days`` (their first to last seen); None when there is nothing to look for."""
    terms = [f"{column} IN ({', '.join(_sql_text(v) for v in values)})"
             for column, values in needles.column_values().items()]
    terms += [f"strpos({column}, {_sql_text(q)}) > 0" for column in JSON_COLUMNS for q in needles.quoted]
    if not terms or not days:
        return None
    return (f"SELECT DISTINCT dt FROM events WHERE dt BETWEEN {_sql_text(min(days))} AND {_sql_text(max(days))} "
            f"AND ({' OR '.join(terms)}) ORDER BY dt")
