"""Fuzzing the tracking routes: no 5xx, every refusal names its reason, and nothing is lost.

Hostile input is part of the mix, as anyone holding a public browser key could send it: lone
surrogates, deep nesting, huge keys and identifiers, duplicate keys, numbers no store can hold
(NaN, Infinity, 1e400, integers beyond 64 bits) and event times far in the future or past.

Loss accounting: the adapters are the real ones (Kinesis and S3 in moto), wrapped to count what
each request handed them. Per request, the answer must match what was written (accepted events
on the stream, refused events of a known source in the quarantine, nothing for a bad key), and
the stream and the quarantine must hold exactly what was counted so far.
"""

from __future__ import annotations

import base64
import gzip
import json
from collections import Counter
from collections.abc import Iterator, Sequence
from types import ModuleType
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from cdp.adapters.kinesis import KinesisSink
from cdp.adapters.quarantine import S3Quarantine, entry_to_dict
from cdp.adapters.sources import DynamoSourceStore
from cdp.collect import OutgoingRecord, QuarantineEntry
from cdp.settings import Settings

from .collect_support import (
    WRITE_KEY,
    basic,
    check_against_spec,
    event_reasons,
    load_app,
    load_spec,
    proxy_event,
    quarantine_lines,
    request_reasons,
    response_json,
    stream_events,
)

SPEC = load_spec()
EVENT_REASONS = event_reasons(SPEC)
REQUEST_REASONS = request_reasons(SPEC)
TRACKING_ROUTES = ["batch", "track", "identify", "page", "screen", "group", "alias"]
UNREADABLE = {
    "empty_body",
    "invalid_json",
    "invalid_encoding",
    "invalid_gzip",
    "unsupported_content_encoding",
    "not_an_object",
    "request_too_large",
}


class CountingSink:
    def __init__(self, inner: KinesisSink) -> None:
        self.inner = inner
        self.message_ids: list[str] = []

    def put(self, records: Sequence[OutgoingRecord]) -> None:
        self.inner.put(records)
        self.message_ids.extend(r.event["messageId"] for r in records)


class CountingQuarantine:
    def __init__(self, inner: S3Quarantine) -> None:
        self.inner = inner
        self.entries: list[QuarantineEntry] = []

    def put(self, entries: Sequence[QuarantineEntry]) -> None:
        self.inner.put(entries)
        self.entries.extend(entries)


@pytest.fixture
def fuzzed(
    stack_environment: dict[str, str], stack_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[ModuleType, CountingSink, CountingQuarantine, Settings]]:
    for name, value in stack_environment.items():
        monkeypatch.setenv(name, value)
    DynamoSourceStore(stack_settings).register_write_key("fuzz", WRITE_KEY)
    collector = load_app("cdp_fuzz_collect_app")
    sink = CountingSink(KinesisSink(stack_settings))
    quarantine = CountingQuarantine(S3Quarantine(stack_settings))
    monkeypatch.setattr(collector, "sink", lambda: sink)
    monkeypatch.setattr(collector, "quarantine", lambda: quarantine)
    yield collector, sink, quarantine, stack_settings


def _stable(record: dict[str, Any]) -> str:
    # A retried quarantine write overwrites its own object, so compare distinct entries.
    return json.dumps({k: v for k, v in record.items() if k != "receivedAt"}, sort_keys=True)


def assert_stores_hold_what_was_counted(
    stack_settings: Settings, sink: CountingSink, quarantine: CountingQuarantine
) -> None:
    assert Counter(e["messageId"] for _, e in stream_events(stack_settings)) == Counter(sink.message_ids)
    stored = {_stable(line) for _, line in quarantine_lines(stack_settings)}
    assert stored == {_stable(entry_to_dict(e)) for e in quarantine.entries}


#: Stand-ins that the request builder swaps for JSON text json.dumps cannot write.
DUPLICATE_KEYS = "__duplicate_keys__"
OVERFLOWING_FLOAT = "__overflowing_float__"
RAW_TEXT = {DUPLICATE_KEYS: '{"k": 1, "k": 2}', OVERFLOWING_FLOAT: "1e400"}


def nested(depth: int) -> Any:
    value: Any = "leaf"
    for level in range(depth):
        value = [value] if level % 2 else {"n": value}
    return value


hostile_leaf = (
    st.sampled_from(["\ud800", "a\udfffb", "\udc00\ud800", "x" * 1025, "ü" * 600])
    | st.sampled_from([2**63 - 1, 2**63, -(2**63) - 1, 10**40, float("nan"), float("inf"), -float("inf")])
    | st.sampled_from([DUPLICATE_KEYS, OVERFLOWING_FLOAT])
    | st.integers(min_value=28, max_value=40).map(nested)
    | st.sampled_from([256, 257, 1000]).map(lambda n: {"k" * n: 1})
)
json_leaf = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8)
)
json_value = st.recursive(
    json_leaf | hostile_leaf,
    lambda inner: st.lists(inner, max_size=3)
    | st.dictionaries(st.text(max_size=5) | st.sampled_from(["\ud800", "k" * 300]), inner, max_size=3),
    max_leaves=6,
)
an_id = (
    st.none()
    | st.just("")
    | st.text(min_size=1, max_size=12)
    | st.integers()
    | st.booleans()
    | st.floats(allow_nan=False)
    | st.sampled_from(["i" * 1025, "\ud800", 2**64])
)
a_time = (
    st.none()
    | st.sampled_from(
        ["2024-05-01T12:00:00Z", "2024-05-01T12:00:00.123456+02:00", "20240501T120000Z", "2024-05-01"]
    )
    | st.sampled_from(["9999-12-31T23:59:59Z", "2999-01-01T00:00:00+01:00", "1970-01-01T00:00:00Z", "0001-01-01"])
    | st.text(max_size=12)
    | st.integers()
)
an_event = st.fixed_dictionaries(
    {},
    optional={
        "type": st.sampled_from(
            ["identify", "track", "page", "screen", "group", "alias", "Track", "bogus", ""]
        )
        | st.none(),
        "userId": an_id,
        "anonymousId": an_id,
        "event": st.text(max_size=10) | st.none() | st.integers() | st.sampled_from(["E\n", "E" * 1025]),
        "groupId": an_id,
        "previousId": an_id,
        "messageId": st.text(min_size=1, max_size=12)
        | st.integers()
        | st.none()
        | st.lists(st.integers(), max_size=1),
        "timestamp": a_time,
        "originalTimestamp": a_time,
        "sentAt": a_time,
        "properties": json_value,
        "traits": json_value,
        "context": json_value,
        "integrations": json_value,
    },
)


@st.composite
def valid_event(draw: st.DrawFn) -> dict[str, Any]:
    kind = draw(st.sampled_from(["identify", "track", "page", "screen", "group", "alias"]))
    event: dict[str, Any] = {"type": kind, "userId": draw(st.text(min_size=1, max_size=8))}
    event.update({"event": "E", "groupId": "g", "previousId": "p"})
    event.update(
        draw(an_event.map(lambda e: {k: v for k, v in e.items() if k in ("timestamp", "properties")}))
    )
    if draw(st.booleans()):
        event["messageId"] = draw(st.text(min_size=1, max_size=12))
    return event


@st.composite
def hostile_event(draw: st.DrawFn) -> dict[str, Any]:
    """A valid event with one hostile value where a store would meet it."""
    event = draw(valid_event())
    value = draw(hostile_leaf)
    where = draw(st.sampled_from(["properties", "context", "traits", "key", "userId", "event", "timestamp"]))
    if where in ("properties", "context", "traits"):
        event[where] = {"h": value}
    elif where == "key":
        event["properties"] = {draw(st.sampled_from(["\ud800", "k" * 257, "ok"])): value}
    elif where == "userId":
        event["userId"] = draw(an_id)
    elif where == "event":
        event["event"] = draw(st.sampled_from(["E\n", "E" * 1025, "E\ud800", "E"]))
    else:
        event["timestamp"] = draw(a_time)
    return event


some_event = valid_event() | valid_event() | hostile_event() | hostile_event() | an_event


@st.composite
def requests(draw: st.DrawFn) -> dict[str, Any]:
    route = draw(st.sampled_from(TRACKING_ROUTES))
    auth = draw(
        st.sampled_from(
            ["header", "header", "header", "body", "body", "bad_header", "none", "malformed_header"]
        )
    )
    shape = draw(st.sampled_from(["events", "events", "events", "json", "bytes"]))
    if shape == "events":
        payload: Any = (
            {"batch": draw(st.lists(some_event | json_leaf, max_size=5))}
            if route == "batch"
            else draw(some_event)
        )
        if route == "batch" and draw(st.booleans()):
            payload["sentAt"] = draw(a_time)
        if auth == "body":
            payload["writeKey"] = WRITE_KEY
        body = json.dumps(payload).encode()
        for stand_in, text in RAW_TEXT.items():
            body = body.replace(json.dumps(stand_in).encode(), text.encode())
    elif shape == "json":
        body = json.dumps(draw(json_value)).encode()
    else:
        body = draw(st.binary(max_size=40))
    headers = {"Content-Type": draw(st.sampled_from(["application/json", "text/plain;charset=UTF-8", "x/y"]))}
    if draw(st.booleans()):
        body = gzip.compress(body, mtime=0)
        headers["Content-Encoding"] = "gzip"
    if auth == "header":
        headers["Authorization"] = basic()
    elif auth == "bad_header":
        headers["Authorization"] = basic("wk_wrong")
    elif auth == "malformed_header":
        headers["Authorization"] = "Basic " + base64.b64encode(b"\xff").decode()
    return {"route": route, "auth": auth, "shape": shape, "body": body, "headers": headers}


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(request=requests())
def test_no_input_breaks_the_collector_or_loses_an_event(
    fuzzed: tuple[ModuleType, CountingSink, CountingQuarantine, Settings], request: dict[str, Any]
) -> None:
    collector, sink, quarantine, stack_settings = fuzzed
    streamed_before, quarantined_before = len(sink.message_ids), len(quarantine.entries)
    resource = f"/v1/{request['route']}"
    response = collector.app(proxy_event(resource, body=request["body"], headers=request["headers"]), None)
    status = response["statusCode"]
    event(f"status {status}")
    assert status < 500, response
    assert_stores_hold_what_was_counted(stack_settings, sink, quarantine)
    check_against_spec(SPEC, resource, "POST", response)
    body = response_json(response)
    streamed = len(sink.message_ids) - streamed_before
    quarantined = len(quarantine.entries) - quarantined_before
    rejected = body.get("rejected", [])
    assert all(r["reason"] in EVENT_REASONS for r in rejected)
    for reason in {r["reason"] for r in rejected}:
        event(f"rejected {reason}")
    if status == 200:
        assert streamed == body["accepted"]
        assert quarantined == len(rejected)
        return
    assert streamed == 0
    assert body["reason"] in REQUEST_REASONS
    if status == 401:
        assert quarantined == 0
        return
    assert status == 400
    key_known = request["auth"] == "header" or (
        request["auth"] == "body" and body["reason"] not in UNREADABLE
    )
    if not key_known:
        assert quarantined == 0
    elif rejected:
        assert quarantined == len(rejected)
    else:
        assert quarantined == 1
