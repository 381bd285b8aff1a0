"""DuckDBEngine and compaction over S3 (a moto server on loopback), as the segment function reads it."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import boto3
import pyarrow.fs as pafs
import pytest

from cdp.adapters.duckdb import DuckDBEngine
from cdp.lake.compaction import compact_partition
from cdp.lake.parquet import write_events, write_identity_snapshot
from cdp.segments.definition import parse_segment
from cdp.segments.run import preview_segment

NOW = datetime(2024, 3, 31, 12, 0, tzinfo=UTC)
BUCKET = "lake"
REPEAT = parse_segment("name: rb\ncondition: {event: Order Completed, within_days: 30, min_count: 2}\n")


@pytest.fixture
def s3() -> Iterator[pafs.S3FileSystem]:
    from moto.server import ThreadedMotoServer

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        endpoint = f"http://127.0.0.1:{port}"
        boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1").create_bucket(Bucket=BUCKET)
        yield pafs.S3FileSystem(
            endpoint_override=f"127.0.0.1:{port}",
            scheme="http",
            region="us-east-1",
            access_key="testing",
            secret_key="testing",
        )
    finally:
        server.stop()


def order(mid: str, user: str, days_ago: float) -> dict:
    ts = (NOW - timedelta(days=days_ago)).isoformat()
    return {"messageId": mid, "type": "track", "event": "Order Completed", "userId": user, "timestamp": ts}


def test_a_segment_runs_on_duckdb_over_s3_and_survives_compaction(s3: pafs.S3FileSystem):
    day = NOW - timedelta(days=1)
    write_events([order("m1", "u1", 1)], s3, BUCKET, "b1")
    write_events([order("m2", "u1", 1), order("m3", "u2", 1)], s3, BUCKET, "b2")
    write_events([order("m2", "u1", 1)], s3, BUCKET, "b3")  # a redelivery
    write_identity_snapshot([("user_id:u1", "p1"), ("user_id:u2", "p2")], s3, BUCKET)
    engine = DuckDBEngine(s3, BUCKET)
    before = preview_segment(REPEAT, engine, NOW)

    report = compact_partition(s3, BUCKET, f"{day:%Y-%m-%d}")
    after = preview_segment(REPEAT, engine, NOW)

    assert (before.count, before.sample) == (1, ["p1"])
    assert (after.count, after.sample) == (1, ["p1"])
    assert (report.files_before, report.files_after, report.rows_after) == (3, 1, 3)
    assert after.bytes_scanned > 0
