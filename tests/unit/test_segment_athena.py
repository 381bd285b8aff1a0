"""AthenaEngine against botocore's Stubber: start, poll with backoff, read pages, report bytes scanned."""

from __future__ import annotations

import boto3
import pytest
from botocore.stub import Stubber

from cdp.adapters.athena import AthenaEngine
from cdp.errors import QueryCancelled, QueryFailed, QueryTimedOut

QID = "11111111-2222-3333-4444-555555555555"


@pytest.fixture
def athena():
    client = boto3.client("athena", region_name="us-east-1")
    with Stubber(client) as stub:
        yield client, stub


class Clock:
    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    def __call__(self) -> float:
        return self.now


def engine(client, clock: Clock, **kwargs) -> AthenaEngine:
    return AthenaEngine(
        client, workgroup="wg", database="lake", sleep=clock.sleep, clock=clock, first_delay=0.25, **kwargs
    )


def expect_start(stub: Stubber, sql: str = "SELECT 1", **extra) -> None:
    params = {"QueryString": sql, "WorkGroup": "wg", "QueryExecutionContext": {"Database": "lake"}, **extra}
    stub.add_response("start_query_execution", {"QueryExecutionId": QID}, params)


def expect_state(stub: Stubber, state: str, *, scanned: int = 0, reason: str | None = None,
                 athena_error: dict | None = None) -> None:
    status: dict = {"State": state}
    if reason:
        status["StateChangeReason"] = reason
    if athena_error:
        status["AthenaError"] = athena_error
    stub.add_response(
        "get_query_execution",
        {
            "QueryExecution": {
                "QueryExecutionId": QID,
                "Status": status,
                "Statistics": {"DataScannedInBytes": scanned},
            }
        },
        {"QueryExecutionId": QID},
    )


def page(rows: list[list[str | None]], *, header: bool, token: str | None = None) -> dict:
    data = [{"Data": [{"VarCharValue": v} if v is not None else {} for v in row]} for row in rows]
    if header:
        data.insert(0, {"Data": [{"VarCharValue": "profile_id"}, {"VarCharValue": "n"}]})
    result = {
        "ResultSet": {
            "Rows": data,
            "ResultSetMetadata": {
                "ColumnInfo": [{"Name": "profile_id", "Type": "varchar"}, {"Name": "n", "Type": "bigint"}]
            },
        }
    }
    if token:
        result["NextToken"] = token
    return result


def test_a_query_polls_until_done_and_reads_every_page(athena):
    client, stub = athena
    clock = Clock()
    expect_start(stub)
    expect_state(stub, "QUEUED")
    expect_state(stub, "RUNNING")
    expect_state(stub, "SUCCEEDED", scanned=4096)
    stub.add_response(
        "get_query_results", page([["p1", "2"]], header=True, token="t2"), {"QueryExecutionId": QID}
    )
    stub.add_response(
        "get_query_results", page([["p2", None]], header=False), {"QueryExecutionId": QID, "NextToken": "t2"}
    )

    result = engine(client, clock).run("SELECT 1")

    assert result.rows == [{"profile_id": "p1", "n": 2}, {"profile_id": "p2", "n": None}]
    assert result.bytes_scanned == 4096
    stub.assert_no_pending_responses()


def test_polling_backs_off_exponentially_up_to_a_ceiling(athena):
    client, stub = athena
    clock = Clock()
    expect_start(stub)
    for _ in range(6):
        expect_state(stub, "RUNNING")
    expect_state(stub, "SUCCEEDED")
    stub.add_response("get_query_results", page([], header=True), {"QueryExecutionId": QID})

    engine(client, clock, max_delay=2.0).run("SELECT 1")

    assert clock.sleeps == [0.25, 0.5, 1.0, 2.0, 2.0, 2.0]


def test_the_output_location_is_passed_when_given(athena):
    client, stub = athena
    expect_start(stub, ResultConfiguration={"OutputLocation": "s3://lake/athena-results/"})
    expect_state(stub, "SUCCEEDED")
    stub.add_response("get_query_results", page([], header=True), {"QueryExecutionId": QID})

    result = engine(client, Clock(), output_location="s3://lake/athena-results/").run("SELECT 1")

    assert result.rows == []


def test_a_failed_query_raises_with_its_reason(athena):
    client, stub = athena
    expect_start(stub)
    expect_state(stub, "FAILED", reason="SYNTAX_ERROR: line 1:8: Column 'nope' cannot be resolved")

    with pytest.raises(QueryFailed, match="Column 'nope' cannot be resolved") as caught:
        engine(client, Clock()).run("SELECT 1")

    assert caught.value.details["query_id"] == QID
    assert caught.value.details["state"] == "FAILED"
    assert caught.value.retryable is False  # an SQL error fails the same way every time


def test_a_query_athena_calls_retryable_fails_as_retryable(athena):
    client, stub = athena
    expect_start(stub)
    expect_state(stub, "FAILED", reason="INTERNAL_ERROR_QUERY_ENGINE",
                 athena_error={"ErrorCategory": 1, "ErrorType": 401, "Retryable": True})

    with pytest.raises(QueryFailed) as caught:
        engine(client, Clock()).run("SELECT 1")

    assert caught.value.retryable is True


def test_a_query_cancelled_by_the_scan_cutoff_raises_query_cancelled(athena):
    client, stub = athena
    expect_start(stub)
    expect_state(stub, "CANCELLED", scanned=10_000_000_000, reason="Query exceeded the bytes scanned limit")

    with pytest.raises(QueryCancelled, match="bytes scanned limit") as caught:
        engine(client, Clock()).run("SELECT 1")

    assert caught.value.details["bytes_scanned"] == 10_000_000_000


def test_a_query_past_the_timeout_is_stopped_and_raises(athena):
    client, stub = athena
    expect_start(stub)
    expect_state(stub, "RUNNING")
    expect_state(stub, "RUNNING")
    stub.add_response("stop_query_execution", {}, {"QueryExecutionId": QID})

    with pytest.raises(QueryTimedOut):
        engine(client, Clock(), timeout_seconds=0.5).run("SELECT 1")

    stub.assert_no_pending_responses()


def test_a_refused_start_raises_query_failed(athena):
    client, stub = athena
    stub.add_client_error("start_query_execution", "InvalidRequestException", "workgroup is disabled")

    with pytest.raises(QueryFailed, match="workgroup is disabled"):
        engine(client, Clock()).run("SELECT 1")


def test_an_error_reading_results_raises_query_failed(athena):
    client, stub = athena
    expect_start(stub)
    expect_state(stub, "SUCCEEDED")
    stub.add_client_error("get_query_results", "InternalServerException", "boom")

    with pytest.raises(QueryFailed, match="results"):
        engine(client, Clock()).run("SELECT 1")


def test_the_engine_speaks_trino():
    assert AthenaEngine(object(), workgroup="wg", database="db").dialect == "trino"
