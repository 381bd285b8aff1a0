"""Sources, quarantine and the Kinesis sink against the template's resources in moto."""

from __future__ import annotations

import json

import boto3
import pytest

from cdp.adapters.kinesis import KinesisSink
from cdp.adapters.quarantine import S3Quarantine, entry_from_dict
from cdp.adapters.sources import DynamoSourceStore, hash_write_key
from cdp.collect import OutgoingRecord, QuarantineEntry, Source
from cdp.errors import NotFound
from cdp.settings import Settings

from .collect_support import quarantine_lines, stream_events


def test_a_created_source_authenticates_with_its_write_key(stack_settings: Settings) -> None:
    store = DynamoSourceStore(stack_settings)
    source_id, write_key = store.create_source("web")
    source = store.authenticate(write_key)
    assert source is not None and (source.source_id, source.name) == (source_id, "web")


def test_write_keys_are_stored_only_as_hashes(stack_settings: Settings) -> None:
    store = DynamoSourceStore(stack_settings)
    _, write_key = store.create_source("web")
    items = boto3.client("dynamodb").scan(TableName=stack_settings.sources_table)["Items"]
    assert write_key not in json.dumps(items)
    assert items[0]["key_hash"]["S"] == hash_write_key(write_key)


def test_an_unknown_write_key_does_not_authenticate(stack_settings: Settings) -> None:
    assert DynamoSourceStore(stack_settings).authenticate("wk_unknown") is None


def test_registering_the_same_key_twice_keeps_one_source(stack_settings: Settings) -> None:
    store = DynamoSourceStore(stack_settings)
    first = store.register_write_key("dev", "wk_dev_key")
    second = store.register_write_key("dev", "wk_dev_key")
    assert first.source_id == second.source_id
    assert len(store.list_sources()) == 1


def test_a_disabled_source_no_longer_authenticates(stack_settings: Settings) -> None:
    store = DynamoSourceStore(stack_settings)
    source_id, write_key = store.create_source("web")
    assert _source_id(store.authenticate(write_key)) == source_id
    store.disable(source_id)
    assert store.authenticate(write_key) is None
    assert [s.enabled for s in store.list_sources()] == [False]


def test_another_warm_instance_sees_a_disabled_key_once_its_cache_expires(stack_settings: Settings) -> None:
    now = [0.0]
    warm = DynamoSourceStore(stack_settings, cache_seconds=30, clock=lambda: now[0])
    source_id, write_key = DynamoSourceStore(stack_settings).create_source("web")
    assert _source_id(warm.authenticate(write_key)) == source_id
    DynamoSourceStore(stack_settings).disable(source_id)
    assert _source_id(warm.authenticate(write_key)) == source_id
    now[0] = 31.0
    assert warm.authenticate(write_key) is None


def test_disabling_an_unknown_source_is_not_found(stack_settings: Settings) -> None:
    with pytest.raises(NotFound):
        DynamoSourceStore(stack_settings).disable("src_missing")


def test_quarantined_entries_are_json_lines_under_their_day(stack_settings: Settings) -> None:
    entry = QuarantineEntry(
        reason="missing_event",
        source_id="src_1",
        received_at="2024-05-01T12:00:00.000Z",
        route="batch",
        index=3,
        payload={"type": "track"},
    )
    S3Quarantine(stack_settings).put([entry])
    [(key, line)] = quarantine_lines(stack_settings)
    assert key.startswith("quarantine/dt=2024-05-01/src_1-")
    assert entry_from_dict(line) == entry


def test_a_retried_quarantine_write_overwrites_its_own_object(stack_settings: Settings) -> None:
    def entry(received_at: str) -> QuarantineEntry:
        return QuarantineEntry("invalid_json", "src_1", received_at, "batch", raw_body=b"{x")

    S3Quarantine(stack_settings).put([entry("2024-05-01T12:00:00.000Z")])
    S3Quarantine(stack_settings).put([entry("2024-05-01T12:00:05.000Z")])
    assert len(quarantine_lines(stack_settings)) == 1


def test_the_sink_writes_every_record_with_its_partition_key(stack_settings: Settings) -> None:
    records = [OutgoingRecord({"n": i}, json.dumps({"n": i}).encode(), f"anon-{i % 3}") for i in range(1200)]
    KinesisSink(stack_settings).put(records)
    found = stream_events(stack_settings)
    assert sorted(e["n"] for _, e in found) == list(range(1200))
    assert all(key == f"anon-{e['n'] % 3}" for key, e in found)


def test_one_senders_events_stay_in_order_on_their_shard(stack_settings: Settings) -> None:
    records = [OutgoingRecord({"n": i}, json.dumps({"n": i}).encode(), "anon-1") for i in range(50)]
    KinesisSink(stack_settings).put(records)
    assert [e["n"] for _, e in stream_events(stack_settings)] == list(range(50))


def test_a_payload_with_unicode_line_separators_stays_one_line(stack_settings: Settings) -> None:
    payload = {"type": "track", "properties": {"note": "a\u2028b\x85c\u2029"}}
    entry = QuarantineEntry(
        "missing_identity", "src_1", "2024-05-01T12:00:00.000Z", "batch", index=0, payload=payload
    )
    store = S3Quarantine(stack_settings)
    store.put([entry])
    [key] = store.keys()
    assert store.read(key) == [entry]


def _source_id(source: Source | None) -> str | None:
    return None if source is None else source.source_id
