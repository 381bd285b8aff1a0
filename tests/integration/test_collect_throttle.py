"""Throttling: declared in the template, answered 429 with Retry-After."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest

from cdp.adapters.sources import DynamoSourceStore
from cdp.settings import Settings
from cdp_infra.server import TokenBucket
from cdp_infra.template import load_template

from .collect_support import WRITE_KEY, basic, load_app, serve_collector


def test_the_template_throttles_the_stage_and_tells_throttled_clients_when_to_retry() -> None:
    api = load_template()["Resources"]["CollectApi"]["Properties"]
    [method_settings] = api["MethodSettings"]
    assert {"ThrottlingRateLimit", "ThrottlingBurstLimit"} <= set(method_settings)
    assert api["GatewayResponses"]["THROTTLED"]["ResponseParameters"]["Headers"]["Retry-After"] == "'1'"


def post(url: str) -> tuple[int, dict[str, str]]:
    body = json.dumps({"batch": [{"type": "track", "userId": "u", "event": "E"}]}).encode()
    request = urllib.request.Request(
        f"{url}/v1/batch", data=body, headers={"Authorization": basic(), "Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, dict(response.headers)
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers)


def test_requests_over_the_limit_get_429_with_retry_after(
    stack_environment: dict[str, str], stack_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in stack_environment.items():
        monkeypatch.setenv(name, value)
    DynamoSourceStore(stack_settings).register_write_key("throttled", WRITE_KEY)
    server = serve_collector(load_app("cdp_throttle_collect_app"), throttle=TokenBucket(rate=0.01, burst=1))
    try:
        first, second = post(server.url), post(server.url)
    finally:
        server.stop()
    assert first[0] == 200
    assert second[0] == 429 and int(second[1]["Retry-After"]) >= 1
