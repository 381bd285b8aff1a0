"""The single customer view: ``GET /v1/profiles/{identifier}/timeline`` (JSON) and ``/view`` (HTML).

A function of its own beside the collector, on the same API: it reads the lake with pyarrow (the
AnalyticsLayer), which the collector must not import. Both routes are admin reads, audited like the
collector's; ``/view`` also opens from a signed link (``cdp profile view``) since a browser cannot
send the token as a header.
"""

from __future__ import annotations

import functools
import json
import logging
import time
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from chalice import Chalice, Response

from cdp.collect.http import HttpResponse, error_response
from cdp.collect.profiles import AdminAccess, audit_record, refused_caller
from cdp.errors import CdpError
from cdp.observability import metrics
from cdp.operators import Caller
from cdp.settings import COLLECTOR_FIELDS, FUNCTION_FIELDS, Settings

app = Chalice(app_name="cdp-profileview")
audit_log = logging.getLogger("cdp.audit")
audit_log.setLevel(logging.INFO)
HERE = Path(__file__).resolve().parent


@functools.cache
def settings() -> Settings:
    return Settings.from_env(require=FUNCTION_FIELDS | COLLECTOR_FIELDS)


@functools.cache
def identity_config() -> Any:
    from cdp.identity.config import load_identity_config

    return load_identity_config(HERE / "config" / "identity.yaml")


@functools.cache
def segment_names() -> tuple[str, ...]:
    from cdp.segments.catalog import all_segments

    return tuple(d.name for d in all_segments(HERE / "segments"))


@functools.cache
def stores() -> dict[str, Any]:
    from cdp.adapters.dynamo_profiles import DynamoIdentityStore
    from cdp.adapters.membership import DynamoMembershipStore
    from cdp.adapters.messages import DynamoMessageJournal

    return {"store": DynamoIdentityStore(settings()), "memberships": DynamoMembershipStore(settings()),
            "journal": DynamoMessageJournal(settings())}


@functools.cache
def lake() -> tuple[Any, str]:
    from cdp.adapters.lake import lake_filesystem, lake_root

    return lake_filesystem(settings()), lake_root(settings())


@functools.cache
def admin_secret() -> Any:
    from cdp.adapters.secrets import CachedSecret

    return CachedSecret(settings(), settings().admin_token_secret_arn)


def admin_token() -> str:
    return str(admin_secret().value())


@functools.cache
def admin_access() -> AdminAccess:
    from cdp.adapters.operators import DynamoOperatorStore
    from cdp.operators import CachedDirectory

    directory = CachedDirectory(DynamoOperatorStore(settings()), ttl_seconds=settings().operator_cache_seconds)
    return AdminAccess(directory, admin_token)


def read_events(identifiers: Any, first_seen: str | None, last_seen: str | None, limit: int) -> dict[str, Any]:
    from cdp.lake.person import person_events

    fs, root = lake()
    return person_events(fs, root, identifiers, first_seen=first_seen, last_seen=last_seen,
                         limit=limit).to_dict()


def timeline(identifier: str, limit: str | None) -> dict[str, Any]:
    from cdp.profiles.timeline import build_timeline, parse_limit

    return build_timeline(identifier, config=identity_config(), segments=segment_names(), read_events=read_events,
                          limit=parse_limit(limit), **stores())


def _respond(response: HttpResponse) -> Response:
    return Response(body=response.body, status_code=response.status, headers=response.headers)


def _audit(route: str, identifier: str, response: HttpResponse, auth: str, operator: Caller | None) -> None:
    caller = (app.current_request.context.get("identity") or {}).get("sourceIp")
    audit_log.info("%s", json.dumps({**audit_record(route, identifier, response, caller=caller, operator=operator),
                                     "auth": auth}))


@app.route("/v1/profiles/{identifier}/timeline", methods=["GET"])
def timeline_route(identifier: str) -> Response:
    request = app.current_request
    operator = None
    try:
        operator = admin_access().caller(request.headers.get("authorization"), "timeline")
        response = HttpResponse(200, timeline(unquote(identifier), (request.query_params or {}).get("limit")))
    except CdpError as exc:
        response, operator = error_response(exc), operator or refused_caller(exc)
    _audit("timeline", identifier, response, "bearer", operator)
    return _respond(response)


@app.route("/v1/profiles/{identifier}/view", methods=["GET"])
def view_route(identifier: str) -> Response:
    from cdp.profiles.links import verify_view_link
    from cdp.profiles.render import PAGE_HEADERS, render_page

    request = app.current_request
    params = request.query_params or {}
    auth = "bearer" if request.headers.get("authorization") else "link"
    operator = None
    try:
        if auth == "bearer":
            operator = admin_access().caller(request.headers.get("authorization"), "view")
        else:
            signer = verify_view_link(unquote(identifier), params.get("expires"), params.get("signature"),
                                      admin_token(), now=time.time(), operator=params.get("operator"))
            operator = admin_access().vouch(signer, "view")
        view = timeline(unquote(identifier), params.get("limit"))
    except CdpError as exc:
        response = error_response(exc)
        _audit("view", identifier, response, auth, operator or refused_caller(exc))
        return _respond(response)
    _audit("view", identifier, HttpResponse(200, {"profile_id": view["profile_id"]}), auth, operator)
    return Response(body=render_page(view), status_code=200, headers=dict(PAGE_HEADERS))


@app.route("/v1/profiles/{identifier}/view-link", methods=["POST"], content_types=["application/json", "*/*"])
def view_link_route(identifier: str) -> Response:
    """A link to the person's page signed for the calling operator (``cdp profile view``): the
    operator's token never sits in a URL, and the page's audit lines name who asked for the link."""
    from urllib.parse import quote, urlencode

    from cdp.profiles.links import parse_minutes, sign_view_link

    request = app.current_request
    operator = None
    try:
        operator = admin_access().caller(request.headers.get("authorization"), "view_link")
        minutes = parse_minutes((request.query_params or {}).get("minutes"))
        link = sign_view_link(unquote(identifier), admin_token(), now=time.time(), minutes=minutes,
                              operator=operator.operator_id)
        path = f"/v1/profiles/{quote(unquote(identifier), safe=':@+')}/view?{urlencode(link)}"
        response = HttpResponse(200, {**link, "path": path})
    except CdpError as exc:
        response, operator = error_response(exc), operator or refused_caller(exc)
    _audit("view_link", identifier, response, "bearer", operator)
    return _respond(response)


@metrics.log_metrics
def handler(event: dict[str, Any], context: Any) -> Any:
    return app(event, context)
