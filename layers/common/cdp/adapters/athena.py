"""Athena as a segment query engine: start, poll with backoff, read results, report bytes scanned."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from typing import Any

from cdp.adapters.errors import aws_errors, query_errors
from cdp.errors import QueryCancelled, QueryFailed, QueryTimedOut, StoreError
from cdp.segments.engines import QueryResult

_NUMERIC = {"tinyint", "smallint", "integer", "bigint"}
_FLOATING = {"double", "float", "real", "decimal"}


class AthenaEngine:
    """Runs segment SQL (Trino dialect) in an Athena work group.

    The work group (template.yaml: AthenaWorkGroup) enforces its result location and its
    bytes-scanned cutoff; a query over the cutoff is CANCELLED and raises QueryCancelled.
    """

    dialect = "trino"

    def __init__(
        self,
        client: Any,
        *,
        workgroup: str,
        database: str,
        output_location: str | None = None,
        timeout_seconds: float = 600.0,
        first_delay: float = 0.25,
        max_delay: float = 5.0,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.client = client
        self.workgroup = workgroup
        self.database = database
        self.output_location = output_location
        self.timeout_seconds = timeout_seconds
        self.first_delay = first_delay
        self.max_delay = max_delay
        self._sleep = sleep
        self._clock = clock

    def run(self, sql: str) -> QueryResult:
        query_id = self._start(sql)
        execution = self._wait(query_id)
        stats = execution.get("Statistics", {})
        bytes_scanned = int(stats.get("DataScannedInBytes", 0))
        return QueryResult(rows=self._results(query_id), bytes_scanned=bytes_scanned)

    def _start(self, sql: str) -> str:
        kwargs: dict[str, Any] = {
            "QueryString": sql,
            "WorkGroup": self.workgroup,
            "QueryExecutionContext": {"Database": self.database},
        }
        if self.output_location:
            kwargs["ResultConfiguration"] = {"OutputLocation": self.output_location}
        with _athena_errors("Athena refused the query"):
            return str(self.client.start_query_execution(**kwargs)["QueryExecutionId"])

    def _wait(self, query_id: str) -> dict[str, Any]:
        deadline = self._clock() + self.timeout_seconds
        delay = self.first_delay
        while True:
            with _athena_errors(f"could not read Athena query {query_id}", query_id=query_id):
                execution: dict[str, Any] = self.client.get_query_execution(QueryExecutionId=query_id)[
                    "QueryExecution"
                ]
            status = execution.get("Status", {})
            state = status.get("State")
            if state == "SUCCEEDED":
                return execution
            if state in ("FAILED", "CANCELLED"):
                reason = (
                    status.get("StateChangeReason")
                    or status.get("AthenaError", {}).get("ErrorMessage")
                    or state
                )
                error = QueryCancelled if state == "CANCELLED" else QueryFailed
                # Athena says whether running the same query again may succeed (AthenaError.Retryable):
                # an SQL or permission error never will, so it must not fail the tick again and again.
                retryable = state == "FAILED" and bool(status.get("AthenaError", {}).get("Retryable", False))
                raise error(
                    f"Athena query {query_id} {state}: {reason}",
                    retryable=retryable,
                    engine="athena",
                    query_id=query_id,
                    state=state,
                    bytes_scanned=int(execution.get("Statistics", {}).get("DataScannedInBytes", 0)),
                )
            if self._clock() + delay > deadline:
                self._stop(query_id)
                raise QueryTimedOut(
                    f"Athena query {query_id} still {state} after {self.timeout_seconds:g}s; stopped it",
                    engine="athena",
                    query_id=query_id,
                    state=state,
                )
            self._sleep(delay)
            delay = min(delay * 2, self.max_delay)

    def _stop(self, query_id: str) -> None:
        # Best effort: the timeout is what we report; the work group cutoff still bounds the cost.
        with contextlib.suppress(StoreError), aws_errors("could not stop an Athena query"):
            self.client.stop_query_execution(QueryExecutionId=query_id)

    def _results(self, query_id: str) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = []
        columns: list[tuple[str, str]] | None = None
        with _athena_errors(f"could not read the results of Athena query {query_id}", query_id=query_id):
            for page in self.client.get_paginator("get_query_results").paginate(QueryExecutionId=query_id):
                result_set = page["ResultSet"]
                data = result_set.get("Rows", [])
                if columns is None:
                    info = result_set.get("ResultSetMetadata", {}).get("ColumnInfo", [])
                    columns = [(c["Name"], c.get("Type", "varchar")) for c in info]
                    # The first row of the first page repeats the column names (SELECT queries).
                    data = data[1:]
                for row in data:
                    values = [cell.get("VarCharValue") for cell in row.get("Data", [])]
                    rows.append(
                        {
                            name: _convert(value, kind)
                            for (name, kind), value in zip(columns, values, strict=False)
                        }
                    )
        return rows


def _athena_errors(reason: str, **details: Any) -> contextlib.AbstractContextManager[None]:
    return query_errors(reason, engine="athena", **details)


def _convert(value: str | None, kind: str) -> Any:
    if value is None:
        return None
    if kind in _NUMERIC:
        return int(value)
    if kind in _FLOATING:
        return float(value)
    if kind == "boolean":
        return value == "true"
    return value
