"""The Chalice app behind API Gateway proxy events, on the template's stack in moto."""

from __future__ import annotations

import base64
import gzip
import json
import re
import sys
import types
from types import ModuleType
from typing import Any

import pytest

from cdp.errors import StreamUnavailable
from cdp.settings import Settings

from .collect_support import (
    ADMIN_TOKEN,
    APP_FILE,
    WRITE_KEY,
    basic,
    proxy_event,
    quarantine_lines,
    response_json,
    stream_events,
)


def call(collector: ModuleType, event: dict[str, Any]) -> dict[str, Any]:
    return collector.app(event, None)


BATCH = {
    "batch": [
        {"type": "identify", "userId": "u1", "traits": {"email": "a@example.com"}, "messageId": "m1"},
        {"type": "track", "anonymousId": "anon-9", "event": "Viewed", "messageId": "m2"},
    ],
    "sentAt": "2024-05-01T12:00:00Z",
}


def test_a_batch_with_a_basic_auth_key_reaches_the_stream(
    collector: ModuleType, stack_settings: Settings
) -> None:
    response = call(collector, proxy_event("/v1/batch", body=BATCH, headers={"Authorization": basic()}))
    assert response["statusCode"] == 200
    assert response_json(response) == {"success": True, "accepted": 2, "rejected": []}
    events = {e["messageId"]: (key, e) for key, e in stream_events(stack_settings)}
    assert set(events) == {"m1", "m2"}
    assert events["m1"][0] == "u1" and events["m2"][0] == "anon-9"
    assert events["m1"][1]["context"]["ip"] == "198.51.100.7"
    assert events["m1"][1]["sourceId"].startswith("src_")


def test_a_gzip_body_with_the_key_in_the_body_is_accepted(
    collector: ModuleType, stack_settings: Settings
) -> None:
    body = gzip.compress(json.dumps({**BATCH, "writeKey": WRITE_KEY}).encode())
    response = call(collector, proxy_event("/v1/batch", body=body, headers={"Content-Encoding": "gzip"}))
    assert response["statusCode"] == 200
    assert len(stream_events(stack_settings)) == 2


@pytest.mark.parametrize("route", ["track", "identify", "page", "screen", "group", "alias"])
def test_every_single_event_route_streams_its_type(
    collector: ModuleType, stack_settings: Settings, route: str
) -> None:
    body = {"userId": "u1", "event": "E", "groupId": "g1", "previousId": "anon-1", "name": "Home"}
    response = call(collector, proxy_event(f"/v1/{route}", body=body, headers={"Authorization": basic()}))
    assert response["statusCode"] == 200
    [(_, event)] = stream_events(stack_settings)
    assert event["type"] == route


def test_a_text_plain_body_is_read_as_json(collector: ModuleType, stack_settings: Settings) -> None:
    event = proxy_event(
        "/v1/track",
        body={"anonymousId": "a", "event": "E", "writeKey": WRITE_KEY},
        headers={"Content-Type": "text/plain;charset=UTF-8"},
    )
    assert call(collector, event)["statusCode"] == 200


def test_an_unknown_write_key_is_401_and_nothing_is_stored(
    collector: ModuleType, stack_settings: Settings
) -> None:
    response = call(
        collector, proxy_event("/v1/batch", body=BATCH, headers={"Authorization": basic("wk_nope")})
    )
    assert response["statusCode"] == 401
    assert response_json(response)["reason"] == "unknown_write_key"
    assert stream_events(stack_settings) == []
    assert quarantine_lines(stack_settings) == []


def test_a_mixed_batch_is_200_naming_the_rejected_which_go_to_quarantine(
    collector: ModuleType, stack_settings: Settings
) -> None:
    body = {"batch": [BATCH["batch"][0], {"type": "track", "userId": "u1"}]}
    response = call(collector, proxy_event("/v1/batch", body=body, headers={"Authorization": basic()}))
    assert response["statusCode"] == 200
    assert response_json(response)["rejected"] == [{"index": 1, "reason": "missing_event"}]
    assert [e["messageId"] for _, e in stream_events(stack_settings)] == ["m1"]
    [(key, line)] = quarantine_lines(stack_settings)
    assert re.fullmatch(r"quarantine/dt=\d{4}-\d{2}-\d{2}/src_[0-9a-f]+-[0-9a-f]{32}\.jsonl", key)
    assert (line["reason"], line["index"], line["payload"]) == (
        "missing_event",
        1,
        {"type": "track", "userId": "u1"},
    )


def test_a_lone_surrogate_refuses_only_its_event_which_the_quarantine_keeps_escaped(
    collector: ModuleType, stack_settings: Settings
) -> None:
    good = json.dumps(BATCH["batch"][0]).encode()
    body = b'{"batch": [' + good + b', {"type": "track", "userId": "u1", "event": "E\\ud800"}]}'
    response = call(collector, proxy_event("/v1/batch", body=body, headers={"Authorization": basic()}))
    assert response["statusCode"] == 200
    assert response_json(response)["rejected"] == [{"index": 1, "reason": "invalid_unicode"}]
    assert [e["messageId"] for _, e in stream_events(stack_settings)] == ["m1"]
    [(_, line)] = quarantine_lines(stack_settings)
    assert line["reason"] == "invalid_unicode"
    assert json.loads(line["payload"]) == {"type": "track", "userId": "u1", "event": "E\ud800"}


def test_a_batch_of_only_invalid_events_is_400_with_every_reason(
    collector: ModuleType, stack_settings: Settings
) -> None:
    body = {"batch": [{"type": "track"}, {"type": "nope", "userId": "u"}]}
    response = call(collector, proxy_event("/v1/batch", body=body, headers={"Authorization": basic()}))
    assert response["statusCode"] == 400
    assert response_json(response)["rejected"] == [
        {"index": 0, "reason": "missing_identity"},
        {"index": 1, "reason": "invalid_type"},
    ]
    assert len(quarantine_lines(stack_settings)) == 2


def test_malformed_json_of_a_known_source_is_400_and_quarantined_raw(
    collector: ModuleType, stack_settings: Settings
) -> None:
    response = call(collector, proxy_event("/v1/batch", body=b"{nope", headers={"Authorization": basic()}))
    assert (response["statusCode"], response_json(response)["reason"]) == (400, "invalid_json")
    [(_, line)] = quarantine_lines(stack_settings)
    assert base64.b64decode(line["rawBody"]) == b"{nope"


def test_a_stream_outage_is_503_with_retry_after(
    collector: ModuleType, stack_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    class DownSink:
        def put(self, records: object) -> None:
            raise StreamUnavailable("stream_write_failed")

    monkeypatch.setattr(collector, "sink", lambda: DownSink())
    response = call(collector, proxy_event("/v1/batch", body=BATCH, headers={"Authorization": basic()}))
    assert response["statusCode"] == 503
    assert int(response["headers"]["Retry-After"]) > 0


def profile_event(identifier: str, token: str | None) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return proxy_event(
        f"/v1/profiles/{identifier}",
        method="GET",
        headers=headers,
        resource="/v1/profiles/{identifier}",
        path_parameters={"identifier": identifier},
    )


@pytest.fixture
def fake_identity(monkeypatch: pytest.MonkeyPatch, collector: ModuleType) -> None:
    module = types.ModuleType("cdp.identity")
    profiles = {"user:u1": {"profile_id": "p1", "traits": {"plan": "pro"}}}
    module.lookup_profile = lambda identifier, store, config: profiles.get(identifier)  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "cdp.identity", module)
    monkeypatch.setattr(collector, "identity_store", lambda: object())
    monkeypatch.setattr(collector, "identity_config", lambda: object())


@pytest.mark.usefixtures("fake_identity")
def test_a_profile_is_read_with_the_admin_token(collector: ModuleType) -> None:
    response = call(collector, profile_event("user:u1", ADMIN_TOKEN))
    assert (response["statusCode"], response_json(response)["profile_id"]) == (200, "p1")


@pytest.mark.usefixtures("fake_identity")
def test_a_profile_read_without_the_admin_token_is_401(collector: ModuleType) -> None:
    assert call(collector, profile_event("user:u1", None))["statusCode"] == 401


@pytest.mark.usefixtures("fake_identity")
def test_an_unknown_profile_is_404(collector: ModuleType) -> None:
    assert call(collector, profile_event("user:nobody", ADMIN_TOKEN))["statusCode"] == 404


def pixel_event(data: str | None, headers: dict[str, str] | None = None) -> dict[str, Any]:
    event = proxy_event("/v1/pixel", method="GET", headers=headers or {})
    event["queryStringParameters"] = {"data": data} if data is not None else None
    event["multiValueQueryStringParameters"] = {"data": [data]} if data is not None else None
    return event


def b64(payload: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(payload).encode()).decode().rstrip("=")


def test_the_pixel_records_an_email_open_and_answers_a_gif(
    collector: ModuleType, stack_settings: Settings
) -> None:
    data = b64(
        {"writeKey": WRITE_KEY, "userId": "u1", "event": "Email Opened", "properties": {"campaign": "c1"}}
    )
    response = call(collector, pixel_event(data))
    assert response["statusCode"] == 200
    assert base64.b64decode(response["body"]).startswith(b"GIF89a")
    [(_, event)] = stream_events(stack_settings)
    assert (event["type"], event["event"]) == ("track", "Email Opened")


def test_the_pixel_answers_a_mail_client_that_sends_no_accept_header(collector: ModuleType) -> None:
    response = call(collector, pixel_event(b64({"writeKey": WRITE_KEY, "userId": "u1", "event": "E"}), {}))
    assert (response["statusCode"], response["headers"]["Content-Type"]) == (200, "image/gif")


def test_a_pixel_with_unreadable_data_is_400_naming_the_reason(collector: ModuleType) -> None:
    response = call(collector, pixel_event("%%%"))
    assert (response["statusCode"], response["headers"]["X-CDP-Reason"]) == (400, "invalid_pixel_data")


def test_a_pixel_with_a_bad_write_key_is_401(collector: ModuleType) -> None:
    response = call(collector, pixel_event(b64({"writeKey": "nope", "userId": "u1", "event": "E"})))
    assert response["statusCode"] == 401


def test_a_cors_preflight_allows_posts_with_authorization(collector: ModuleType) -> None:
    response = call(
        collector, proxy_event("/v1/batch", method="OPTIONS", headers={"Origin": "https://shop.example"})
    )
    assert response["statusCode"] == 204
    assert response["headers"]["Access-Control-Allow-Origin"] == "*"
    assert "Authorization" in response["headers"]["Access-Control-Allow-Headers"]
    assert "POST" in response["headers"]["Access-Control-Allow-Methods"]


@pytest.mark.parametrize("key", [WRITE_KEY, "wk_nope"])
def test_tracking_answers_carry_the_cors_header_whatever_the_outcome(collector: ModuleType, key: str) -> None:
    response = call(collector, proxy_event("/v1/batch", body=BATCH, headers={"Authorization": basic(key)}))
    assert response["headers"]["Access-Control-Allow-Origin"] == "*"


def test_the_browser_tracker_is_served_as_javascript(collector: ModuleType) -> None:
    response = call(collector, proxy_event("/v1/cdp.js", method="GET", headers={}))
    assert response["statusCode"] == 200
    assert response["headers"]["Content-Type"].startswith("application/javascript")
    tracker = APP_FILE.parent / "static" / "cdp.js"
    assert response["body"] == tracker.read_text(encoding="utf-8")


def test_a_request_over_500_kb_is_400_naming_the_limit(
    collector: ModuleType, stack_settings: Settings
) -> None:
    body = {
        "batch": [{"type": "track", "userId": "u", "event": "E", "properties": {"pad": "x" * 30_000}}] * 20
    }
    response = call(collector, proxy_event("/v1/batch", body=body, headers={"Authorization": basic()}))
    assert response["statusCode"] == 400
    assert response_json(response)["limit"] == "500 KB per request"
    assert stream_events(stack_settings) == []


def test_an_event_over_32_kb_is_rejected_naming_the_limit(
    collector: ModuleType, stack_settings: Settings
) -> None:
    big = {"type": "track", "userId": "u", "event": "E", "properties": {"pad": "x" * 40_000}}
    response = call(
        collector, proxy_event("/v1/batch", body={"batch": [big]}, headers={"Authorization": basic()})
    )
    assert response["statusCode"] == 400
    assert response_json(response)["rejected"] == [{"index": 0, "reason": "event_too_large"}]
