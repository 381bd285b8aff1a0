"""Real SDKs, unchanged but for their host, against the collector over HTTP."""

from __future__ import annotations

import json
import shutil
import subprocess
import textwrap
from datetime import UTC, datetime
from typing import Any

import pytest

from cdp.settings import Settings

from .collect_support import WRITE_KEY, stream_events


def by_type(settings: Settings) -> dict[str, dict[str, Any]]:
    return {event["type"]: event for _, event in stream_events(settings)}


def test_segment_analytics_python_events_arrive_intact(collector_url: str, stack_settings: Settings) -> None:
    from segment.analytics.client import Client

    errors: list[Exception] = []
    client = Client(
        WRITE_KEY,
        host=collector_url,
        sync_mode=True,
        gzip=True,
        max_retries=0,
        on_error=lambda e, _: errors.append(e),
    )
    when = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
    client.identify("user-1", {"email": "ada@example.com", "plan": "pro"}, timestamp=when)
    client.track("user-1", "Order Completed", {"revenue": 42.5, "items": [{"sku": "a"}]}, timestamp=when)
    client.page("user-1", "Docs", "Install", {"path": "/install"})
    client.screen("user-1", "App", "Home")
    client.group("user-1", "acme", {"name": "Acme"})
    client.alias("anon-7", "user-1")
    client.track(anonymous_id="anon-7", event="Viewed", properties={"x": 1})
    client.flush()
    assert errors == []
    events = stream_events(stack_settings)
    assert sorted(e["type"] for _, e in events) == [
        "alias",
        "group",
        "identify",
        "page",
        "screen",
        "track",
        "track",
    ]
    received = by_type(stack_settings)
    assert received["identify"]["traits"] == {"email": "ada@example.com", "plan": "pro"}
    assert received["identify"]["originalTimestamp"] == "2024-05-01T12:00:00.000Z"
    assert received["alias"]["previousId"] == "anon-7"
    assert received["group"]["groupId"] == "acme"
    assert received["page"]["name"] == "Install"
    assert all(e["context"]["library"]["name"] == "analytics-python" for _, e in events)
    assert all(e["sourceId"].startswith("src_") for _, e in events)
    order = next(e for _, e in events if e.get("event") == "Order Completed")
    assert order["properties"] == {"revenue": 42.5, "items": [{"sku": "a"}]}


def test_segment_analytics_python_sees_a_bad_write_key_refused(
    collector_url: str, stack_settings: Settings
) -> None:
    from segment.analytics.client import Client
    from segment.analytics.request import APIError

    client = Client("wk_wrong", host=collector_url, sync_mode=True, max_retries=0)
    with pytest.raises(APIError) as raised:
        client.track("user-1", "E")
    assert (raised.value.status, raised.value.code) == (401, "unknown_write_key")
    assert stream_events(stack_settings) == []


def test_rudder_sdk_python_events_arrive_intact(collector_url: str, stack_settings: Settings) -> None:
    from rudderstack.analytics.client import Client

    errors: list[Exception] = []
    client = Client(
        WRITE_KEY, host=collector_url, sync_mode=True, gzip=True, on_error=lambda e, _: errors.append(e)
    )
    client.identify("user-2", {"email": "grace@example.com"})
    client.track("user-2", "Signed Up", {"plan": "free"})
    client.page("user-2", "Docs", "Home")
    client.screen("user-2", "App", "Settings")
    client.group("user-2", "org-9", {"size": 10})
    client.alias("anon-2", "user-2")
    client.flush()
    assert errors == []
    received = by_type(stack_settings)
    assert set(received) == {"identify", "track", "page", "screen", "group", "alias"}
    assert received["track"]["event"] == "Signed Up"
    assert received["track"]["properties"] == {"plan": "free"}
    assert received["identify"]["traits"]["email"] == "grace@example.com"
    assert all(e["channel"] == "server" for e in received.values())  # RudderStack's own field, kept


def _node_module(name: str) -> bool:
    if shutil.which("node") is None:
        return False
    probe = subprocess.run(
        ["node", "-e", f"require.resolve({json.dumps(name)})"], capture_output=True, check=False
    )
    return probe.returncode == 0


@pytest.mark.skipif(
    not _node_module("@segment/analytics-node"), reason="node or @segment/analytics-node not installed"
)
def test_segment_analytics_node_events_arrive_intact(collector_url: str, stack_settings: Settings) -> None:
    script = textwrap.dedent(
        """
        const { Analytics } = require("@segment/analytics-node");
        const analytics = new Analytics({ writeKey: process.argv[1], host: process.argv[2], maxEventsInBatch: 1 });
        analytics.on("error", (err) => { console.error(err); process.exitCode = 1; });
        analytics.identify({ userId: "user-3", traits: { email: "linus@example.com" } });
        analytics.track({ anonymousId: "anon-3", event: "Clicked", properties: { n: 1 } });
        analytics.closeAndFlush().then(() => console.log("flushed"));
        """
    )
    done = subprocess.run(
        ["node", "-e", script, WRITE_KEY, collector_url],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    received = by_type(stack_settings)
    assert received["identify"]["traits"] == {"email": "linus@example.com"}
    assert received["track"]["anonymousId"] == "anon-3"


def test_a_client_waiting_for_100_continue_gets_it_from_the_local_api(collector_url: str,
                                                                      stack_settings: Settings) -> None:
    # Given a client that sends its body only after the interim answer (curl does past 1 KB)
    import base64
    from urllib.parse import urlsplit

    from .collect_support import interim_then_final

    url = urlsplit(collector_url)
    body = json.dumps({"batch": [{"type": "track", "event": "Waited", "anonymousId": "a-100",
                                  "messageId": "m-100-continue", "properties": {"pad": "x" * 1200}}]}).encode()
    auth = base64.b64encode(f"{WRITE_KEY}:".encode()).decode()
    # When it posts a batch
    interim, final = interim_then_final(url.hostname or "", url.port or 80, "POST", "/v1/batch", body,
                                        {"Content-Type": "application/json", "Authorization": f"Basic {auth}"})
    # Then it gets the interim answer, then the batch is accepted and reaches the stream
    assert interim == b"HTTP/1.1 100 Continue"
    assert final == b"HTTP/1.1 200 OK"
    assert [e["messageId"] for _, e in stream_events(stack_settings)] == ["m-100-continue"]
