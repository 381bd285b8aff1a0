"""docs/openapi.yaml is the collector's contract: routes, statuses, bodies and reason codes."""

from __future__ import annotations

import re
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from openapi_spec_validator import validate

from cdp_infra.template import load_template

from .collect_support import (
    ADMIN_TOKEN,
    WRITE_KEY,
    basic,
    check_against_spec,
    event_reasons,
    load_spec,
    proxy_event,
    request_reasons,
)
from .profileview_support import load_module

REPO = Path(__file__).resolve().parents[2]
SPEC = load_spec()


def spec_routes() -> set[tuple[str, str]]:
    return {
        (method.upper(), path)
        for path, item in SPEC["paths"].items()
        for method in item
        if method in ("get", "post", "options", "put", "delete", "patch")
    }


def test_the_contract_is_a_valid_openapi_document() -> None:
    validate(SPEC)


#: The functions behind the API: the collector, and the customer view (it reads the lake).
API_APPS = {"CollectFunction": REPO / "functions/collect/app.py", "ProfileViewFunction": REPO / "functions/profileview/app.py"}


def test_the_contract_names_exactly_the_routes_the_template_deploys() -> None:
    resources = load_template()["Resources"]
    deployed = {
        (e["Properties"]["Method"].upper(), e["Properties"]["Path"])
        for r in resources.values() if r["Type"] == "AWS::Serverless::Function"
        for e in r["Properties"].get("Events", {}).values() if e["Type"] == "Api"
    }
    assert spec_routes() == deployed


def test_the_contract_names_exactly_the_routes_the_apps_serve() -> None:
    served = set()
    for function, path in API_APPS.items():
        app = load_module(path, f"cdp_contract_{function.lower()}").app
        routes = {(method, route) for route, methods in app.routes.items() for method in methods}
        events = load_template()["Resources"][function]["Properties"]["Events"].values()
        assert routes == {(e["Properties"]["Method"].upper(), e["Properties"]["Path"])
                          for e in events if e["Type"] == "Api"}, function
        served |= routes
    assert spec_routes() == served


def test_every_reason_code_in_the_code_is_documented() -> None:
    sources = [
        *(REPO / "layers/common/cdp/collect").glob("*.py"),
        REPO / "layers/common/cdp/adapters/kinesis.py",
    ]
    sources += [
        REPO / "layers/common/cdp/adapters/sources.py",
        REPO / "layers/common/cdp/adapters/quarantine.py",
    ]
    pattern = re.compile(
        r"(?:InvalidEvent|MalformedRequest|PayloadTooLarge|WriteKeyRejected|EventsRejected|StreamUnavailable"
        r"|StoreError|Unauthorized|NotFound)\(\"([a-z_]+)\""
    )
    found = {code for path in sources for code in pattern.findall(path.read_text(encoding="utf-8"))}
    found |= {f"invalid_{name}" for name in ("properties", "traits", "context", "integrations")}
    internal = {"write_key_collision", "write_key_vanished", "unknown_source", "unknown_route"}
    assert found - internal <= event_reasons(SPEC) | request_reasons(SPEC)


GOOD = {"type": "track", "userId": "u1", "event": "E"}
CASES: list[tuple[str, str, dict[str, Any]]] = [
    ("/v1/batch", "POST", {"body": {"batch": [GOOD]}, "headers": {"Authorization": basic()}}),
    ("/v1/batch", "POST", {"body": {"batch": [GOOD, {"type": "x"}]}, "headers": {"Authorization": basic()}}),
    ("/v1/batch", "POST", {"body": {"batch": [{"type": "x"}]}, "headers": {"Authorization": basic()}}),
    ("/v1/batch", "POST", {"body": b"{", "headers": {"Authorization": basic()}}),
    ("/v1/batch", "POST", {"body": {"batch": []}, "headers": {"Authorization": basic("nope")}}),
    ("/v1/batch", "POST", {"body": {"batch": []}, "headers": {"Authorization": "Bearer x"}}),
    ("/v1/track", "POST", {"body": {"userId": "u", "event": "E", "writeKey": WRITE_KEY}}),
    ("/v1/identify", "POST", {"body": {"userId": "u"}, "headers": {"Authorization": basic()}}),
    ("/v1/page", "POST", {"body": {"anonymousId": "a"}, "headers": {"Authorization": basic()}}),
    ("/v1/screen", "POST", {"body": {"anonymousId": "a"}, "headers": {"Authorization": basic()}}),
    ("/v1/group", "POST", {"body": {"userId": "u"}, "headers": {"Authorization": basic()}}),
    (
        "/v1/alias",
        "POST",
        {"body": {"userId": "u", "previousId": "a"}, "headers": {"Authorization": basic()}},
    ),
    ("/v1/alias", "OPTIONS", {}),
    ("/v1/cdp.js", "GET", {}),
]


@pytest.mark.parametrize(("resource", "method", "request_kwargs"), CASES)
def test_each_answer_is_one_the_contract_documents(
    collector: ModuleType, resource: str, method: str, request_kwargs: dict[str, Any]
) -> None:
    response = collector.app(proxy_event(resource, method=method, **request_kwargs), None)
    check_against_spec(SPEC, resource, method, response)


@pytest.mark.parametrize(("status", "token"), [(401, None), (404, ADMIN_TOKEN)])
def test_profile_answers_are_ones_the_contract_documents(
    collector: ModuleType, monkeypatch: pytest.MonkeyPatch, status: int, token: str | None
) -> None:
    monkeypatch.setattr(collector, "identity_store", lambda: None)
    import cdp.identity

    monkeypatch.setattr(cdp.identity, "lookup_profile", lambda identifier, store, config=None: None)
    event = proxy_event(
        "/v1/profiles/email:a@example.com",
        method="GET",
        headers={"Authorization": f"Bearer {token}"} if token else {},
        resource="/v1/profiles/{identifier}",
        path_parameters={"identifier": "email:a@example.com"},
    )
    response = collector.app(event, None)
    assert response["statusCode"] == status
    check_against_spec(SPEC, "/v1/profiles/{identifier}", "GET", response)


def _view_event(route: str, token: str | None, query: dict[str, str] | None = None) -> dict[str, Any]:
    event = proxy_event(f"/v1/profiles/email:a@example.com/{route}", method="GET",
                        headers={"Authorization": f"Bearer {token}"} if token else {},
                        resource=f"/v1/profiles/{{identifier}}/{route}",
                        path_parameters={"identifier": "email:a@example.com"})
    event["queryStringParameters"] = query
    event["multiValueQueryStringParameters"] = {k: [v] for k, v in (query or {}).items()} or None
    return event


@pytest.mark.parametrize(("route", "status", "token", "query"), [
    ("timeline", 401, None, None), ("timeline", 404, ADMIN_TOKEN, None), ("timeline", 400, ADMIN_TOKEN, {"limit": "0"}),
    ("timeline", 200, ADMIN_TOKEN, None), ("view", 401, None, {"expires": "1", "signature": "x"}),
    ("view", 200, ADMIN_TOKEN, None)])
def test_customer_view_answers_are_ones_the_contract_documents(
    collector: ModuleType, monkeypatch: pytest.MonkeyPatch, route: str, status: int, token: str | None,
    query: dict[str, str] | None,
) -> None:
    from cdp.errors import NotFound

    view = load_module(REPO / "functions/profileview/app.py", "cdp_contract_view")
    found = {"profile_id": "p-1", "identifiers": {}, "traits": {}, "computed_traits": {}, "consent": {},
             "consent_history": [], "lifecycle_history": [], "merges": [], "segments": [], "messages": [],
             "events": [], "events_limit": 50, "events_more": False}

    def timeline(identifier: str, limit: str | None) -> dict[str, Any]:
        from cdp.profiles.timeline import parse_limit

        parse_limit(limit)
        if status == 404:
            raise NotFound("profile_not_found")
        return found

    monkeypatch.setattr(view, "timeline", timeline)
    response = view.app(_view_event(route, token, query), None)
    assert response["statusCode"] == status
    check_against_spec(SPEC, f"/v1/profiles/{{identifier}}/{route}", "GET", response)
