"""Query engines: the same SQL runs on Athena on AWS and on DuckDB locally, over the same Parquet.

This module holds the port (what the segment runner needs of an engine); the engines themselves
are adapters: ``cdp.adapters.athena.AthenaEngine`` and ``cdp.adapters.duckdb.DuckDBEngine``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol


@dataclass(frozen=True, slots=True)
class QueryResult:
    rows: list[dict[str, Any]]
    bytes_scanned: int = 0


class QueryEngine(Protocol):
    dialect: str

    def run(self, sql: str) -> QueryResult: ...
