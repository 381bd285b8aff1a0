"""Quarantine list and replay with an in-memory store: what now passes goes to the stream."""

from __future__ import annotations

import json
from collections.abc import Sequence

import pytest

from cdp.collect import QuarantineEntry
from cdp.collect.replay import list_quarantine, replay_quarantine
from cdp.errors import StreamUnavailable
from tests.unit.collect_fakes import ListSink

RECEIVED = "2024-05-01T12:00:00.000Z"


class MemoryQuarantine:
    def __init__(self, objects: dict[str, list[QuarantineEntry]]) -> None:
        self.objects = objects

    def keys(self, *, day_from: str | None = None, day_to: str | None = None) -> list[str]:
        def day(key: str) -> str:
            return key.split("dt=")[1][:10]

        return sorted(
            k
            for k in self.objects
            if (not day_from or day(k) >= day_from) and (not day_to or day(k) <= day_to)
        )

    def read(self, key: str) -> list[QuarantineEntry]:
        return list(self.objects[key])

    def rewrite(self, key: str, entries: Sequence[QuarantineEntry]) -> None:
        if entries:
            self.objects[key] = list(entries)
        else:
            del self.objects[key]



def event_entry(
    payload: object, reason: str = "missing_event", source: str = "src_1", **kw: object
) -> QuarantineEntry:
    return QuarantineEntry(
        reason, source, kw.pop("received_at", RECEIVED), "batch", index=0, payload=payload, **kw
    )  # type: ignore[arg-type]


VALID = {"type": "track", "userId": "u1", "event": "E", "messageId": "m1"}
INVALID = {"type": "track", "userId": "u1"}


def test_list_filters_by_reason_and_source() -> None:
    store = MemoryQuarantine(
        {
            "quarantine/dt=2024-05-01/a.jsonl": [
                event_entry(INVALID),
                event_entry(INVALID, "invalid_type", "src_2"),
            ],
        }
    )
    assert [i.entry.reason for i in list_quarantine(store, reason="invalid_type")] == ["invalid_type"]
    assert [i.entry.source_id for i in list_quarantine(store, source_id="src_1")] == ["src_1"]


def test_list_stops_at_the_limit() -> None:
    store = MemoryQuarantine({"quarantine/dt=2024-05-01/a.jsonl": [event_entry(INVALID)] * 5})
    assert len(list_quarantine(store, limit=3)) == 3


def test_list_reads_only_the_days_asked_for() -> None:
    store = MemoryQuarantine(
        {
            "quarantine/dt=2024-05-01/a.jsonl": [event_entry(INVALID)],
            "quarantine/dt=2024-05-03/b.jsonl": [event_entry(INVALID)],
        }
    )
    assert [i.key for i in list_quarantine(store, day_from="2024-05-02")] == [
        "quarantine/dt=2024-05-03/b.jsonl"
    ]


def test_replay_streams_what_now_passes_and_keeps_the_rest() -> None:
    key = "quarantine/dt=2024-05-01/a.jsonl"
    store = MemoryQuarantine({key: [event_entry(VALID), event_entry(INVALID)]})
    sink = ListSink()
    report = replay_quarantine(store, sink)
    assert (report.replayed, report.still_rejected) == (1, 1)
    assert [r.event["messageId"] for r in sink.records] == ["m1"]
    assert [e.payload for e in store.objects[key]] == [INVALID]


def test_a_fully_replayed_object_is_removed() -> None:
    key = "quarantine/dt=2024-05-01/a.jsonl"
    store = MemoryQuarantine({key: [event_entry(VALID)]})
    replay_quarantine(store, ListSink())
    assert store.objects == {}


def test_replayed_events_keep_their_first_received_time_and_batch_sent_at() -> None:
    payload = {**VALID, "timestamp": "2024-05-01T12:05:00Z"}
    entry = event_entry(payload, sent_at="2024-05-01T12:10:00Z", context={"locale": "fr"}, ip="192.0.2.1")
    sink = ListSink()
    replay_quarantine(MemoryQuarantine({"quarantine/dt=2024-05-01/a.jsonl": [entry]}), sink)
    event = sink.records[0].event
    assert (event["receivedAt"], event["timestamp"]) == (RECEIVED, "2024-05-01T11:55:00.000Z")
    assert event["context"] == {"locale": "fr", "ip": "192.0.2.1"}


def test_a_dry_run_counts_without_writing() -> None:
    key = "quarantine/dt=2024-05-01/a.jsonl"
    store = MemoryQuarantine({key: [event_entry(VALID)]})
    sink = ListSink()
    report = replay_quarantine(store, sink, dry_run=True)
    assert (report.replayed, sink.records, len(store.objects[key])) == (1, [], 1)


def test_a_raw_body_that_now_reads_is_split_into_its_events() -> None:
    body = json.dumps({"batch": [VALID, INVALID]}).encode()
    raw = QuarantineEntry("request_too_large", "src_1", RECEIVED, "batch", raw_body=body)
    key = "quarantine/dt=2024-05-01/a.jsonl"
    store = MemoryQuarantine({key: [raw]})
    sink = ListSink()
    report = replay_quarantine(store, sink)
    assert (report.replayed, len(sink.records)) == (1, 1)
    [left] = store.objects[key]
    assert (left.reason, left.index, left.payload, left.raw_body) == ("missing_event", 1, INVALID, None)


def test_a_raw_body_that_still_cannot_be_read_stays_with_its_reason() -> None:
    raw = QuarantineEntry("invalid_json", "src_1", RECEIVED, "batch", raw_body=b"{nope")
    key = "quarantine/dt=2024-05-01/a.jsonl"
    store = MemoryQuarantine({key: [raw]})
    report = replay_quarantine(store, ListSink())
    assert (report.replayed, report.still_rejected, store.objects[key]) == (0, 1, [raw])


def test_a_single_event_route_entry_replays_with_its_route_type() -> None:
    entry = QuarantineEntry("x", "src_1", RECEIVED, "identify", index=0, payload={"userId": "u1"})
    sink = ListSink()
    replay_quarantine(MemoryQuarantine({"quarantine/dt=2024-05-01/a.jsonl": [entry]}), sink)
    assert sink.records[0].event["type"] == "identify"


def test_replay_only_touches_the_source_asked_for() -> None:
    key = "quarantine/dt=2024-05-01/a.jsonl"
    store = MemoryQuarantine({key: [event_entry(VALID), event_entry(VALID, source="src_2")]})
    report = replay_quarantine(store, ListSink(), source_id="src_2")
    assert report.replayed == 1
    assert [e.source_id for e in store.objects[key]] == ["src_1"]


def test_a_stream_failure_during_replay_leaves_the_quarantine_untouched() -> None:
    key = "quarantine/dt=2024-05-01/a.jsonl"
    store = MemoryQuarantine({key: [event_entry(VALID)]})
    with pytest.raises(StreamUnavailable):
        replay_quarantine(store, ListSink(fail=True))
    assert len(store.objects[key]) == 1
