"""The customer view (functions/profileview) on the stack of template.yaml (moto), the lake on disk."""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import quote, urlencode

import boto3
import pyarrow.fs as pafs
import pytest

from cdp.profiles.links import sign_view_link
from cdp.settings import Settings

from .collect_support import ADMIN_TOKEN, proxy_event, response_json
from .profileview_support import (
    ACTIVATE_FILE,
    APP_FILE,
    HOSTILE,
    build_history,
    load_module,
    sqs_record,
)

ALICE = "user_id:u-alice"


@pytest.fixture
def view_app(stack_environment: dict[str, str], stack_settings: Settings, tmp_path: Path,
             monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[ModuleType, dict[str, str]]]:
    """The customer view's app on the stack, with Alice's and Bob's history and one email to Alice."""
    for name, value in stack_environment.items():
        monkeypatch.setenv(name, value)
    boto3.client("secretsmanager").put_secret_value(
        SecretId=stack_settings.admin_token_secret_arn, SecretString=ADMIN_TOKEN)
    ids = build_history(stack_settings, tmp_path / "lake")
    activate = load_module(ACTIVATE_FILE, "cdp_test_activate_for_view")
    activate.record_handler(sqs_record({"segment": "repeat-buyers", "profile_id": ids["alice"],
                                        "change": "entered", "run_id": "run-7", "at": "2024-05-05T00:00:00.000Z"}))
    app = load_module(APP_FILE, "cdp_test_profileview_app")
    # The lake of this test is on disk: pyarrow's S3 client cannot reach moto in this process.
    monkeypatch.setattr(app, "lake", lambda: (pafs.LocalFileSystem(), str(tmp_path / "lake")))
    yield app, ids


def call(app: ModuleType, identifier: str, route: str, *, headers: dict[str, str] | None = None,
         query: dict[str, str] | None = None) -> dict[str, Any]:
    path = f"/v1/profiles/{quote(identifier, safe=':@+')}/{route}"
    event = proxy_event(path, method="GET", headers=headers, resource=f"/v1/profiles/{{identifier}}/{route}",
                        path_parameters={"identifier": quote(identifier, safe=':@+')})
    event["queryStringParameters"] = query
    event["multiValueQueryStringParameters"] = {k: [v] for k, v in (query or {}).items()} or None
    return app.app(event, None)  # type: ignore[no-any-return]


def bearer() -> dict[str, str]:
    return {"Authorization": f"Bearer {ADMIN_TOKEN}"}


def body_text(response: dict[str, Any]) -> str:
    body = response["body"]
    return base64.b64decode(body).decode() if response.get("isBase64Encoded") else body


def test_the_timeline_lists_exactly_the_persons_events_in_time_order_across_days_and_a_merge(view_app) -> None:
    app, ids = view_app

    response = call(app, ALICE, "timeline", headers=bearer())

    assert response["statusCode"] == 200
    view = response_json(response)
    assert view["profile_id"] == ids["alice"]
    assert [e["messageId"] for e in view["events"]] == ["a1", "a2", "a3", "a4", "a5"]
    assert [e["timestamp"][:10] for e in view["events"]] == [
        "2024-05-01", "2024-05-01", "2024-05-02", "2024-05-03", "2024-05-04"]
    assert view["events_more"] is False
    # Only the days between first and last seen (and a day either side) were read.
    assert view["events_days_read"] == {"from": "2024-04-30", "to": "2024-05-05", "count": 6}


def test_the_timeline_holds_the_profile_its_merge_segments_and_messages(view_app) -> None:
    app, ids = view_app

    view = response_json(call(app, "email:Alice@Example.com", "timeline", headers=bearer()))

    assert view["identifiers"]["user_id"] == ["u-alice"]
    assert set(view["identifiers"]["anonymous_id"]) == {"anon-1", "anon-2"}
    assert view["traits"]["first_name"] == "Alice"
    assert view["computed_traits"]["orders_count"] == 1
    assert view["consent"]["email"]["granted"] is True and view["consent"]["email"]["message_id"] == "a3"
    assert view["consent_history"] == [
        {"at": "2024-05-02T08:00:00.000Z", "received_at": "2024-05-02T08:00:00.000Z", "message_id": "a3",
         "purpose": "email", "granted": True}]
    assert view["lifecycle_stage"] and view["lifecycle_history"]
    assert len(view["merges"]) == 1 and len(view["absorbed_profiles"]) == 1
    assert [(s["segment"], s["profile_id"]) for s in view["segments"]] == [("repeat-buyers", ids["alice"])]
    assert [(m["channel"], m["segment"], m["run"], m["profile_id"]) for m in view["messages"]] == [
        ("email", "repeat-buyers", "run-7", ids["alice"])]
    assert view["messages"][0]["sent_at"]


def test_the_limit_keeps_the_latest_events_still_in_time_order(view_app) -> None:
    app, _ = view_app

    view = response_json(call(app, ALICE, "timeline", headers=bearer(), query={"limit": "2"}))

    assert [e["messageId"] for e in view["events"]] == ["a4", "a5"]
    assert view["events_more"] is True


def test_a_limit_outside_1_to_500_is_refused(view_app) -> None:
    app, _ = view_app

    responses = [call(app, ALICE, "timeline", headers=bearer(), query={"limit": limit})
                 for limit in ("0", "501", "many")]

    assert [r["statusCode"] for r in responses] == [400, 400, 400]
    assert {response_json(r)["reason"] for r in responses} == {"invalid_limit"}


def test_the_timeline_needs_the_admin_token(view_app) -> None:
    app, _ = view_app

    assert call(app, ALICE, "timeline")["statusCode"] == 401
    assert call(app, ALICE, "timeline", headers={"Authorization": "Bearer nope"})["statusCode"] == 401


def test_an_unknown_person_is_404(view_app) -> None:
    app, _ = view_app

    assert call(app, "user_id:nobody", "timeline", headers=bearer())["statusCode"] == 404


def test_every_read_is_audited_without_the_identifier(view_app, caplog: pytest.LogCaptureFixture) -> None:
    app, ids = view_app

    with caplog.at_level("INFO", logger="cdp.audit"):
        call(app, ALICE, "timeline", headers=bearer())
        call(app, ALICE, "view", query=sign_view_link(ALICE, ADMIN_TOKEN, now=time.time()))

    records = [r.getMessage() for r in caplog.records if r.name == "cdp.audit"]
    assert len(records) == 2 and all(ids["alice"] in r and "u-alice" not in r for r in records)
    assert '"route": "timeline"' in records[0] and '"auth": "link"' in records[1]


def test_the_page_opens_from_a_signed_link_and_escapes_hostile_traits(view_app) -> None:
    app, ids = view_app

    response = call(app, ALICE, "view", query=sign_view_link(ALICE, ADMIN_TOKEN, now=time.time()))

    assert response["statusCode"] == 200
    assert response["headers"]["Content-Type"].startswith("text/html")
    assert "default-src 'none'" in response["headers"]["Content-Security-Policy"]
    page = body_text(response)
    assert ids["alice"] in page and "a5" in page
    assert HOSTILE not in page and "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in page


def test_the_page_also_opens_with_the_admin_token(view_app) -> None:
    app, ids = view_app

    response = call(app, ALICE, "view", headers=bearer())

    assert response["statusCode"] == 200 and ids["alice"] in body_text(response)


def tampered_links(now: float) -> dict[str, tuple[str, dict[str, str]]]:
    """A valid link to Alice's page, spoiled in every way a caller could (identifier, query)."""
    link = sign_view_link(ALICE, ADMIN_TOKEN, now=now)
    flipped = link["signature"][:-1] + ("0" if link["signature"][-1] != "0" else "1")
    return {
        "expired": (ALICE, sign_view_link(ALICE, ADMIN_TOKEN, now=now - 3600, minutes=15)),
        "signature changed": (ALICE, {**link, "signature": flipped}),
        "another person": ("email:bob@example.com", link),
        "expiry pushed back": (ALICE, {**link, "expires": str(int(link["expires"]) + 3600)}),
        "no signature": (ALICE, {}),
        "signed with another token": (ALICE, sign_view_link(ALICE, "another-token", now=now)),
    }


def test_an_expired_or_tampered_link_is_refused(view_app) -> None:
    app, _ = view_app

    responses = {case: call(app, identifier, "view", query=query)
                 for case, (identifier, query) in tampered_links(time.time()).items()}

    assert {case: r["statusCode"] for case, r in responses.items()} == dict.fromkeys(responses, 401)
    assert not any("alice" in body_text(r).lower() for r in responses.values())


# ---------------------------------------------------------------- operators
def _link_for(app: ModuleType, identifier: str, token: str, minutes: str | None = None) -> dict[str, Any]:
    path = f"/v1/profiles/{quote(identifier, safe=':@+')}/view-link"
    event = proxy_event(path, method="POST", headers={"Authorization": f"Bearer {token}"},
                        resource="/v1/profiles/{identifier}/view-link",
                        path_parameters={"identifier": quote(identifier, safe=':@+')})
    event["queryStringParameters"] = {"minutes": minutes} if minutes else None
    event["multiValueQueryStringParameters"] = {"minutes": [minutes]} if minutes else None
    return app.app(event, None)  # type: ignore[no-any-return]


@pytest.fixture
def operators(view_app, stack_settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Any:
    from cdp.adapters.operators import DynamoOperatorStore

    monkeypatch.setenv("OPERATOR_CACHE_SECONDS", "0")  # a revocation is seen at the next request
    return DynamoOperatorStore(stack_settings)


def test_an_operator_gets_a_link_that_names_it_and_opens_the_page(
        view_app, operators: Any, caplog: pytest.LogCaptureFixture) -> None:
    app, ids = view_app
    operator, token = operators.add("support", ["profiles:read"])

    with caplog.at_level("INFO", logger="cdp.audit"):
        answer = response_json(_link_for(app, ALICE, token, minutes="5"))
        link = {k: answer[k] for k in ("expires", "operator", "signature")}
        page = call(app, ALICE, "view", query=link)

    assert answer["operator"] == operator.operator_id and token not in json.dumps(answer)
    assert answer["path"].endswith(urlencode(link)) and int(link["expires"]) <= time.time() + 300
    assert page["statusCode"] == 200 and ids["alice"] in body_text(page)
    lines = [json.loads(r.getMessage()) for r in caplog.records if r.name == "cdp.audit"]
    assert [(x["route"], x["operator"], x["auth"], x["status"]) for x in lines] == [
        ("view_link", operator.operator_id, "bearer", 200), ("view", operator.operator_id, "link", 200)]


def test_a_link_dies_with_its_operator_and_cannot_be_passed_off_as_anothers(view_app, operators: Any) -> None:
    app, _ = view_app
    operator, token = operators.add("leaver", ["profiles:read"])
    other, _ = operators.add("stays", ["profiles:read"])
    link = {k: v for k, v in response_json(_link_for(app, ALICE, token)).items() if k != "path"}

    assert call(app, ALICE, "view", query={**link, "operator": other.operator_id})["statusCode"] == 401
    operators.revoke(operator.operator_id)
    refused = call(app, ALICE, "view", query=link)
    assert (refused["statusCode"], response_json(refused)["reason"]) == (401, "link_revoked")


def test_a_link_needs_profiles_read_and_a_sane_life(view_app, operators: Any) -> None:
    app, _ = view_app
    _, privacy_token = operators.add("dpo", ["privacy:write"])
    _, reader_token = operators.add("support", ["profiles:read"])

    assert _link_for(app, ALICE, privacy_token)["statusCode"] == 403
    assert _link_for(app, ALICE, "cdp_op_0123456789ab_" + "A" * 43)["statusCode"] == 401
    too_long = _link_for(app, ALICE, reader_token, minutes="1441")
    assert (too_long["statusCode"], response_json(too_long)["reason"]) == (400, "invalid_minutes")


def test_the_timeline_refuses_an_operator_without_profiles_read(view_app, operators: Any) -> None:
    app, _ = view_app
    _, token = operators.add("dpo", ["privacy:read"])
    assert call(app, ALICE, "timeline", headers={"Authorization": f"Bearer {token}"})["statusCode"] == 403


# ---------------------------------------------------------------- in a real browser
CHROMIUM = next((p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None)


def serve_view(app: ModuleType) -> tuple[Any, list[str]]:
    """The customer view's routes of template.yaml behind the local API Gateway; the paths it served."""
    from cdp_infra.server import LocalApi, Route
    from cdp_infra.template import load_template

    served: list[str] = []

    class Function:
        account_id = "123456789012"

        def invoke(self, event: dict[str, Any]) -> Any:
            served.append(event["path"])
            return app.app(event, None)

    events = load_template()["Resources"]["ProfileViewFunction"]["Properties"]["Events"].values()
    routes = [Route(method=e["Properties"]["Method"], resource=e["Properties"]["Path"], function=Function())  # type: ignore[arg-type]
              for e in events if e["Type"] == "Api"]
    return LocalApi(routes).start(), served


def page_requests(net_log: Path, origin: str) -> list[str]:
    """URLs requested on behalf of a page of ``origin`` (its subresources, the favicon; not the
    navigation to it, nor the browser's own background requests)."""
    log = json.loads(net_log.read_text(encoding="utf-8"))
    start = log["constants"]["logEventTypes"]["URL_REQUEST_START_JOB"]
    return [e["params"].get("url") for e in log["events"]
            if e["type"] == start and e.get("params", {}).get("initiator") == origin]


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (Debian package: chromium)")
def test_the_page_in_headless_chromium_shows_the_person_without_errors_or_requests(view_app, tmp_path: Path) -> None:
    app, ids = view_app
    api, served = serve_view(app)
    query = urlencode(sign_view_link(ALICE, ADMIN_TOKEN, now=time.time(), minutes=5))
    url = f"{api.url}/v1api/v1/profiles/{quote(ALICE, safe=':@+')}/view?{query}"
    net_log = tmp_path / "net.json"
    try:
        done = subprocess.run(
            [str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
             "--no-first-run", f"--user-data-dir={tmp_path / 'profile'}", "--enable-logging=stderr", "--v=0",
             f"--log-net-log={net_log}", "--virtual-time-budget=5000", "--dump-dom", url],
            capture_output=True, text=True, timeout=120, check=False)
    finally:
        api.stop()
    dom = done.stdout
    assert f'<h1 id="profile-id">{ids["alice"]}</h1>' in dom
    assert all(f"<td>{mid}</td>" in dom for mid in ("a1", "a2", "a3", "a4", "a5"))
    assert "&lt;script&gt;" in dom and "<script>" not in dom
    assert [line for line in done.stderr.splitlines() if ":CONSOLE" in line] == []
    assert served == [f"/v1/profiles/{ALICE}/view"]
    assert page_requests(net_log, api.url) == []


def test_cdp_profile_timeline_prints_the_view_in_the_terminal(view_app, capsys: pytest.CaptureFixture[str]) -> None:
    from cdp_infra import cli

    app, ids = view_app
    api, _ = serve_view(app)
    try:
        status = cli.main(["profile", "timeline", ALICE, "--url", api.url, "--token", ADMIN_TOKEN])
    finally:
        api.stop()

    out = capsys.readouterr().out
    assert status == 0 and out.startswith(f"Profile {ids['alice']}")
    events = out[out.index("== Events"):].splitlines()[1:6]
    assert [line.split()[-1] for line in events] == ["a1", "a2", "a3", "a4", "a5"]
    assert "repeat-buyers" in out[out.index("== Segments"):out.index("== Messages sent")]
    assert "repeat-buyers" in out[out.index("== Messages sent"):out.index("== Merges")]
