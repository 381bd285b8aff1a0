"""The collector's use case with in-memory stores: who is accepted, rejected, quarantined."""

from __future__ import annotations

import base64
import gzip
import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import pytest

from cdp.collect import IngestRequest, QuarantineEntry, Source, ingest
from cdp.errors import (
    CdpError,
    EventsRejected,
    MalformedRequest,
    PayloadTooLarge,
    StreamUnavailable,
    WriteKeyRejected,
)
from tests.unit.collect_fakes import ListSink

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
KEY = "wk_good"


class FakeSources:
    def __init__(self) -> None:
        self.sources = {KEY: Source("src_1", "web")}

    def authenticate(self, write_key: str) -> Source | None:
        return self.sources.get(write_key)



class ListQuarantine:
    def __init__(self) -> None:
        self.entries: list[QuarantineEntry] = []

    def put(self, entries: Sequence[QuarantineEntry]) -> None:
        self.entries.extend(entries)


def auth(key: str = KEY) -> str:
    return "Basic " + base64.b64encode(f"{key}:".encode()).decode()


def run(
    body: bytes | dict[str, Any],
    route: str = "batch",
    authorization: str | None = None,
    sink: ListSink | None = None,
    **kwargs: Any,
) -> tuple[Any, ListSink, ListQuarantine]:
    sink = sink or ListSink()
    quarantine = ListQuarantine()
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    request = IngestRequest(route=route, body=raw, authorization=authorization, **kwargs)
    result = ingest(request, sources=FakeSources(), sink=sink, quarantine=quarantine, now=NOW)
    return result, sink, quarantine


def attempt(*args: Any, **kwargs: Any) -> tuple[CdpError, ListQuarantine]:
    sink, quarantine = ListSink(), ListQuarantine()
    body, *rest = args
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    route = rest[0] if rest else kwargs.pop("route", "batch")
    limits = {k: kwargs.pop(k) for k in ("max_request_bytes",) if k in kwargs}
    request = IngestRequest(route=route, body=raw, **kwargs)
    with pytest.raises(CdpError) as raised:
        ingest(request, sources=FakeSources(), sink=sink, quarantine=quarantine, now=NOW, **limits)
    assert sink.records == []
    return raised.value, quarantine


GOOD = {"type": "track", "userId": "u1", "event": "Clicked"}
BAD = {"type": "track", "userId": "u1"}


def test_a_batch_of_valid_events_is_streamed_in_order() -> None:
    result, sink, _ = run({"batch": [GOOD, {**GOOD, "event": "Second"}]}, authorization=auth())
    assert result.accepted == 2
    assert [r.event["event"] for r in sink.records] == ["Clicked", "Second"]


def test_the_write_key_may_come_from_the_body() -> None:
    result, _, _ = run({"batch": [GOOD], "writeKey": KEY})
    assert result.accepted == 1


def test_a_single_event_route_accepts_the_body_as_the_event() -> None:
    result, sink, _ = run({"userId": "u1", "traits": {"plan": "pro"}}, route="identify", authorization=auth())
    assert (result.accepted, sink.records[0].event["type"]) == (1, "identify")


def test_a_gzip_body_from_an_sdk_is_accepted() -> None:
    body = gzip.compress(json.dumps({"batch": [GOOD]}).encode())
    result, _, _ = run(body, authorization=auth(), content_encoding="gzip")
    assert result.accepted == 1


def test_an_empty_batch_is_accepted_with_nothing_streamed() -> None:
    result, sink, quarantine = run({"batch": []}, authorization=auth())
    assert (result.accepted, sink.records, quarantine.entries) == (0, [], [])


def test_an_unknown_write_key_is_rejected_and_nothing_is_stored() -> None:
    error, quarantine = attempt({"batch": [BAD]}, authorization=auth("wk_bad"))
    assert isinstance(error, WriteKeyRejected) and error.reason == "unknown_write_key"
    assert quarantine.entries == []


def test_a_request_without_any_write_key_is_rejected() -> None:
    error, quarantine = attempt({"batch": [GOOD]})
    assert isinstance(error, WriteKeyRejected) and error.reason == "missing_write_key"
    assert quarantine.entries == []


def test_a_bad_header_key_is_rejected_even_if_the_body_carries_a_good_one() -> None:
    error, _ = attempt({"batch": [GOOD], "writeKey": KEY}, authorization=auth("wk_bad"))
    assert isinstance(error, WriteKeyRejected) and error.reason == "unknown_write_key"


def test_a_mixed_batch_accepts_the_valid_and_names_the_rejected_by_index() -> None:
    result, sink, _ = run({"batch": [GOOD, BAD, GOOD]}, authorization=auth())
    assert result.accepted == 2
    assert [(r.index, r.reason) for r in result.rejected] == [(1, "missing_event")]
    assert len(sink.records) == 2


def test_the_result_counts_the_quarantine_entries_it_wrote() -> None:
    result, _, quarantine = run({"batch": [BAD, GOOD, BAD]}, authorization=auth())
    assert result.quarantined == len(quarantine.entries) == 2


def test_a_refusal_says_how_many_entries_it_quarantined() -> None:
    all_bad, quarantine = attempt({"batch": [BAD, BAD]}, authorization=auth())
    assert all_bad.details["quarantined"] == len(quarantine.entries) == 2  # type: ignore[attr-defined]
    unreadable, quarantine = attempt(b"{not json", authorization=auth())
    assert unreadable.details["quarantined"] == len(quarantine.entries) == 1  # type: ignore[attr-defined]
    anonymous, quarantine = attempt(b"{not json")
    assert "quarantined" not in anonymous.details and quarantine.entries == []  # type: ignore[attr-defined]


def test_every_rejected_event_of_a_known_source_is_quarantined_with_its_reason() -> None:
    _, _, quarantine = run({"batch": [GOOD, BAD], "sentAt": "2024-05-01T12:00:00Z"}, authorization=auth())
    [entry] = quarantine.entries
    assert (entry.reason, entry.source_id, entry.index, entry.payload) == ("missing_event", "src_1", 1, BAD)
    assert (entry.received_at, entry.sent_at) == ("2024-05-01T12:00:00.000Z", "2024-05-01T12:00:00Z")


def test_the_write_key_of_a_single_event_body_is_not_quarantined() -> None:
    error, quarantine = attempt({"userId": "u1", "writeKey": KEY}, "track")
    assert isinstance(error, EventsRejected) and error.reason == "all_events_rejected"
    assert "writeKey" not in quarantine.entries[0].payload


def test_a_batch_with_only_invalid_events_is_rejected_with_every_reason() -> None:
    error, quarantine = attempt({"batch": [BAD, "x"]}, authorization=auth())
    assert isinstance(error, EventsRejected) and error.reason == "all_events_rejected"
    assert error.details["rejected"] == [
        {"index": 0, "reason": "missing_event"},
        {"index": 1, "reason": "not_an_object"},
    ]
    assert len(quarantine.entries) == 2


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"{oops", "invalid_json"),
        (b"[1, 2]", "not_an_object"),
        (b'{"batch": {"type": "track"}}', "batch_not_a_list"),
        (b'{"batch": [], "context": "web"}', "invalid_batch_context"),
    ],
)
def test_an_unreadable_body_of_a_known_source_is_quarantined_raw(body: bytes, reason: str) -> None:
    error, quarantine = attempt(body, authorization=auth())
    assert isinstance(error, MalformedRequest) and error.reason == reason
    [entry] = quarantine.entries
    assert (entry.reason, entry.raw_body, entry.index) == (reason, body, None)


def test_an_unreadable_body_without_a_header_key_is_refused_and_not_stored() -> None:
    error, quarantine = attempt(b"{oops")
    assert isinstance(error, MalformedRequest) and error.reason == "invalid_json"
    assert quarantine.entries == []


def test_a_request_over_the_size_limit_is_refused_naming_it_and_quarantined() -> None:
    error, quarantine = attempt({"batch": [GOOD] * 20}, authorization=auth(), max_request_bytes=100)
    assert isinstance(error, PayloadTooLarge) and error.details["limit"] == "500 KB per request"
    assert quarantine.entries[0].reason == "request_too_large"


def test_an_unknown_route_is_malformed() -> None:
    error, _ = attempt({"batch": []}, "purchase", authorization=auth())
    assert isinstance(error, MalformedRequest) and error.reason == "unknown_route"


def test_a_stream_failure_propagates_after_the_rejects_are_quarantined() -> None:
    sink, quarantine = ListSink(fail=True), ListQuarantine()
    request = IngestRequest(
        route="batch", body=json.dumps({"batch": [GOOD, BAD]}).encode(), authorization=auth()
    )
    with pytest.raises(StreamUnavailable):
        ingest(request, sources=FakeSources(), sink=sink, quarantine=quarantine, now=NOW)
    assert len(quarantine.entries) == 1


def test_the_request_ip_and_user_agent_reach_the_stored_event() -> None:
    _, sink, _ = run({"batch": [GOOD]}, authorization=auth(), ip="192.0.2.1", user_agent="analytics-python/2")
    assert sink.records[0].event["context"] == {"ip": "192.0.2.1", "userAgent": "analytics-python/2"}


def test_a_write_key_in_a_refused_body_is_never_stored_in_the_quarantine() -> None:
    # Given a body that authenticates with its own writeKey but is not a valid batch
    error, quarantine = attempt({"writeKey": KEY, "batch": {"type": "track"}})
    assert isinstance(error, MalformedRequest) and error.reason == "batch_not_a_list"
    [entry] = quarantine.entries
    # Then the quarantined body keeps everything but the key
    assert KEY.encode() not in entry.raw_body
    assert json.loads(entry.raw_body) == {"batch": {"type": "track"}}


def test_the_header_write_key_is_redacted_from_an_unreadable_body() -> None:
    body = b'{"writeKey": "' + KEY.encode() + b'", oops'
    error, quarantine = attempt(body, authorization=auth())
    assert isinstance(error, MalformedRequest) and error.reason == "invalid_json"
    [entry] = quarantine.entries
    assert entry.reason == "invalid_json"
    assert KEY.encode() not in entry.raw_body and b"[redacted write key]" in entry.raw_body


# ------------------------------------------------------------------ hostile input
def stored_line(entry: QuarantineEntry) -> str:
    from cdp.adapters.quarantine import entry_to_dict

    # What the quarantine writes: UTF-8 JSON text, strictly JSON (no NaN).
    return json.dumps(entry_to_dict(entry), ensure_ascii=False, allow_nan=False).encode("utf-8").decode()


@pytest.mark.parametrize(
    ("bad", "reason"),
    [
        (b'{"type": "track", "userId": "u1", "event": "E\\ud800"}', "invalid_unicode"),
        (b'{"type": "track", "userId": "u1", "event": "E", "properties": {"n": NaN}}', "invalid_number"),
        (b'{"type": "track", "userId": "u1", "event": "E", "properties": {"n": 1e999}}', "invalid_number"),
        (b'{"type": "track", "userId": "u1", "event": "E", "event": "F"}', "duplicate_key"),
    ],
)
def test_a_hostile_event_is_quarantined_alone_in_a_form_the_quarantine_can_write(bad: bytes, reason: str) -> None:
    body = b'{"batch": [' + json.dumps(GOOD).encode() + b", " + bad + b"]}"
    result, sink, quarantine = run(body, authorization=auth())
    assert result.accepted == 1 and [r.event["event"] for r in sink.records] == ["Clicked"]
    assert [(r.index, r.reason) for r in result.rejected] == [(1, reason)]
    [entry] = quarantine.entries
    assert entry.reason == reason and stored_line(entry)


def test_an_event_with_a_lone_surrogate_is_kept_as_its_json_text_with_the_surrogate_escaped() -> None:
    body = b'{"batch": [{"type": "track", "userId": "u1", "event": "E\\ud800"}]}'
    error, quarantine = attempt(body, authorization=auth())
    assert isinstance(error, EventsRejected)
    [entry] = quarantine.entries
    assert isinstance(entry.payload, str) and "\\ud800" in entry.payload
    assert json.loads(entry.payload)["event"] == "E\ud800"


def test_a_batch_context_with_a_lone_surrogate_refuses_its_events_and_is_kept_escaped() -> None:
    body = b'{"batch": [' + json.dumps(GOOD).encode() + b'], "context": {"x": "\\udfff"}}'
    error, quarantine = attempt(body, authorization=auth())
    assert isinstance(error, EventsRejected)
    [entry] = quarantine.entries
    assert entry.reason == "invalid_unicode" and isinstance(entry.context, str) and stored_line(entry)


def test_an_event_naming_a_key_twice_is_kept_as_sent_with_both_values() -> None:
    body = b'{"batch": [{"type": "track", "userId": "u1", "event": "E", "properties": {"a": 1, "a": 2}}]}'
    error, quarantine = attempt(body, authorization=auth())
    assert isinstance(error, EventsRejected)
    [entry] = quarantine.entries
    assert entry.payload == '{"type":"track","userId":"u1","event":"E","properties":{"a":1,"a":2}}'


def test_a_write_key_with_a_lone_surrogate_in_the_body_is_unknown() -> None:
    error, quarantine = attempt(b'{"writeKey": "\\ud800", "batch": []}')
    assert isinstance(error, WriteKeyRejected) and error.reason == "unknown_write_key"
    assert quarantine.entries == []


def test_a_batch_body_naming_a_key_twice_is_refused_whole_and_quarantined() -> None:
    body = b'{"batch": [], "batch": [' + json.dumps(GOOD).encode() + b"]}"
    error, quarantine = attempt(body, authorization=auth())
    assert isinstance(error, MalformedRequest) and error.reason == "duplicate_key"
    assert [e.reason for e in quarantine.entries] == ["duplicate_key"]
