"""Proof of erasure: every store read for any trace of the person, plain or hashed.

A scanner yields ``(store, location, text)`` for every item of every table and every version of
every lake object (Parquet rows as JSON, base64 payloads decoded); a store with nothing in it still
yields one empty entry so it counts as checked. Locations never hold the identifiers themselves.
The privacy table is not scanned: it keeps the suppression list (hashes) and the request records
on purpose (docs/privacy.md).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, Protocol

from cdp.privacy.matching import Needles

MAX_FINDINGS_SHOWN = 50


class TraceScanner(Protocol):
    def items(self) -> Iterator[tuple[str, str, str]]: ...

    def lake(self, days: Sequence[str] | None) -> Iterator[tuple[str, str, str]]: ...


def verify(needles: Needles, scanner: TraceScanner, *, days: Sequence[str] | None = None) -> dict[str, Any]:
    """``{"stores_checked", "remaining", "by_store", "findings"}``; ``remaining`` 0 is the proof."""
    stores: set[str] = set()
    by_store: dict[str, int] = {}
    findings: list[dict[str, Any]] = []
    for source in (scanner.items(), scanner.lake(days)):
        for store, where, text in source:
            stores.add(store)
            kinds = needles.found_in(text) if text else []
            if kinds:
                by_store[store] = by_store.get(store, 0) + 1
                if len(findings) < MAX_FINDINGS_SHOWN:
                    findings.append({"store": store, "where": where, "kinds": kinds})
    return {"stores_checked": len(stores), "remaining": sum(by_store.values()), "by_store": by_store,
            "findings": findings, "stores": sorted(stores)}
