"""Erasure and verification with the lake's Parquet on local disk (``LAKE_ROOT``, as the local stack
runs it) and quarantine in the bucket (moto): no byte of the person is left in either."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pytest

from cdp.adapters.engines import query_engine
from cdp.adapters.privacy import AwsErasureStores, AwsTraceScanner
from cdp.lake.parquet import (
    IDENTITY_SCHEMA,
    PROFILES_SCHEMA,
    write_events,
    write_identity_snapshot,
    write_snapshot,
)
from cdp.privacy.matching import Needles
from cdp.privacy.verify import verify
from cdp.settings import Settings

ALICE = ["user_id:u-alice", "email:alice@example.com", "anonymous_id:anon-alice"]
ALICE_PROFILE = "p-alice"
DAYS = ["2024-05-01", "2024-05-02"]
RAW = [b"u-alice", b"alice@example.com", b"anon-alice", b"p-alice"]


def _event(mid: str, day: int, **fields: Any) -> dict[str, Any]:
    ts = datetime(2024, 5, day, 9, tzinfo=UTC).isoformat().replace("+00:00", "Z")
    return {"messageId": mid, "type": "track", "event": "Viewed", "timestamp": ts, "receivedAt": ts, **fields}


@pytest.fixture
def disk_lake(stack_environment: dict[str, str], tmp_path: Path) -> tuple[Settings, Path]:
    """Alice's and Bob's events over two days (two files a day) and both snapshots on disk; a
    quarantined line of each in the (versioned) bucket, and an old bucket snapshot holding Alice."""
    lake = tmp_path / "lake"
    lake.mkdir()
    settings = Settings.from_env({**stack_environment, "LAKE_ROOT": lake.as_uri()})
    fs = pafs.LocalFileSystem()
    for n, batch in enumerate((
            [_event("a1", 1, anonymousId="anon-alice"), _event("b1", 1, userId="u-bob")],
            [_event("a2", 2, userId="u-alice", anonymousId="anon-alice", traits={"email": "alice@example.com"}),
             _event("b2", 2, userId="u-bob"), _event("b3", 1, userId="u-bob")],
            [_event("a3", 2, userId="u-alice", properties={"friend": "alice@example.com"})])):
        write_events(batch, fs, str(lake), f"batch-{n}")
    write_identity_snapshot([(i, ALICE_PROFILE) for i in ALICE] + [("user_id:u-bob", "p-bob")], fs, str(lake))
    profile = {"first_seen": None, "last_seen": None, "event_count": 1, "lifecycle_stage": "lead",
               "traits": "{}", "computed": "{}", "consent": "{}", "lifecycle_history": "[]"}
    write_snapshot([{**profile, "profile_id": ALICE_PROFILE, "email": "alice@example.com"},
                    {**profile, "profile_id": "p-bob", "email": "bob@example.com"}], PROFILES_SCHEMA, fs,
                   f"{lake}/profiles/profiles.parquet")
    s3 = boto3.client("s3", region_name=settings.aws_region)
    s3.put_bucket_versioning(Bucket=settings.lake_bucket, VersioningConfiguration={"Status": "Enabled"})
    lines = [json.dumps({"reason": "missing_event", "payload": {"userId": u}}) for u in ("u-alice", "u-bob")]
    s3.put_object(Bucket=settings.lake_bucket, Key="quarantine/dt=2024-05-01/q.jsonl",
                  Body=("\n".join(lines) + "\n").encode())
    old = tmp_path / "old-identity.parquet"
    pq.write_table(pa.Table.from_pylist([{"identifier": "user_id:u-alice", "profile_id": ALICE_PROFILE}],
                                        schema=IDENTITY_SCHEMA), old)
    s3.put_object(Bucket=settings.lake_bucket, Key="identity/identity.parquet", Body=old.read_bytes())
    return settings, lake


def _erase(settings: Settings, needles: Needles) -> dict[str, int]:
    stores = AwsErasureStores(settings, engine=query_engine(settings), segments=[])
    days = stores.lake_days(needles, DAYS)
    return {"days": len(days), **stores.erase_event_days(days, needles), **stores.erase_snapshots(needles),
            **stores.erase_objects(needles)}


def _disk_text(lake: Path) -> dict[str, bytes]:
    """Every file on disk as bytes, Parquet files as their rows (their pages are compressed)."""
    out = {}
    for path in sorted(p for p in lake.rglob("*") if p.is_file()):
        raw = path.read_bytes()
        if path.suffix == ".parquet":
            raw = json.dumps(pq.read_table(path).to_pylist(), default=str).encode()
        out[str(path.relative_to(lake))] = raw
    return out


def test_verify_reads_the_lake_on_disk_and_finds_the_person_there_before_the_erasure(
        disk_lake: tuple[Settings, Path]) -> None:
    settings, lake = disk_lake

    found = verify(Needles.of(ALICE, [ALICE_PROFILE]), AwsTraceScanner(settings), days=DAYS)

    on_disk = {f["where"] for f in found["findings"] if f["where"].startswith(str(lake))}
    assert {f"{lake}/identity/identity.parquet", f"{lake}/profiles/profiles.parquet"} <= on_disk
    assert sum(w.startswith(f"{lake}/events/") for w in on_disk) == 3  # each of the three files
    assert found["by_store"]["lake:quarantine"] == 1


def test_erase_then_verify_leave_no_byte_of_the_person_on_disk_or_in_the_bucket_and_keep_the_others(
        disk_lake: tuple[Settings, Path]) -> None:
    settings, lake = disk_lake
    needles = Needles.of(ALICE, [ALICE_PROFILE])

    removed = _erase(settings, needles)
    proof = verify(needles, AwsTraceScanner(settings), days=DAYS)

    assert removed["days"] == 2 and removed["lake:events:rows"] == 3 and removed["lake:events:files"] == 4  # every file of both days
    assert removed["lake:events:versions"] == 0  # a disk keeps no old versions
    # The disk snapshot rewritten, the bucket's old one deleted with its version (2 objects, 1 version).
    assert removed["lake:identity:objects"] == 2 and removed["lake:identity:versions"] == 1
    assert removed["lake:profiles:objects"] == 1 and removed["lake:quarantine:objects"] == 1
    assert proof["remaining"] == 0, proof["findings"]
    for name, body in _disk_text(lake).items():
        assert not any(n in body for n in RAW), name
    s3 = boto3.client("s3", region_name=settings.aws_region)
    for v in s3.list_object_versions(Bucket=settings.lake_bucket).get("Versions", []):
        body = s3.get_object(Bucket=settings.lake_bucket, Key=v["Key"], VersionId=v["VersionId"])["Body"].read()
        assert not any(n in body for n in RAW), v["Key"]
    events = query_engine(settings).run("SELECT message_id FROM events ORDER BY message_id").rows
    assert [r["message_id"] for r in events] == ["b1", "b2", "b3"]
    assert pq.read_table(lake / "identity" / "identity.parquet").to_pylist() == [
        {"identifier": "user_id:u-bob", "profile_id": "p-bob"}]
    assert [r["profile_id"] for r in pq.read_table(lake / "profiles" / "profiles.parquet").to_pylist()] == ["p-bob"]


def test_a_second_erasure_on_disk_finds_and_rewrites_nothing(disk_lake: tuple[Settings, Path]) -> None:
    settings, lake = disk_lake
    needles = Needles.of(ALICE, [ALICE_PROFILE])
    _erase(settings, needles)
    files = _disk_text(lake)

    again = _erase(settings, needles)

    assert again["days"] == 0 and not any(again.values())
    assert _disk_text(lake) == files
