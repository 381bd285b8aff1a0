"""Segment-compatible tracking API: API Gateway REST proxy events → Chalice → ``cdp.collect``.

The Lambda handler is ``app.handler``: Powertools (tracing, metrics) around the Chalice app
``app.app``, which tests and benchmarks call directly. Adapters are built lazily on first use from settings read
once, so tests and the local runner can point the environment at moto first.
"""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from chalice import Chalice, Response

from cdp.collect import IngestRequest, ingest
from cdp.collect.http import CORS_HEADERS, HttpResponse, error_response, preflight_response, success_response
from cdp.collect.limits import EventLimits
from cdp.collect.pixel import PIXEL_GIF, pixel_body
from cdp.collect.profiles import AdminAccess, audit_record, profile_response
from cdp.errors import CdpError
from cdp.observability import metrics, record_ingest, record_ingest_error
from cdp.operators import ROUTE_SCOPES
from cdp.privacy.suppression import SuppressionList
from cdp.settings import COLLECTOR_FIELDS, FUNCTION_FIELDS, UNSUBSCRIBE_FIELDS, Settings

app = Chalice(app_name="cdp-collect")
audit_log = logging.getLogger("cdp.audit")
audit_log.setLevel(logging.INFO)

_ANY_BODY = ["*/*"]
_TRACKER = Path(__file__).resolve().parent / "static" / "cdp.js"


@functools.cache
def settings() -> Settings:
    return Settings.from_env(require=FUNCTION_FIELDS | COLLECTOR_FIELDS)


@functools.cache
def sources() -> Any:
    from cdp.adapters.sources import DynamoSourceStore

    return DynamoSourceStore(settings())


@functools.cache
def sink() -> Any:
    from cdp.adapters.kinesis import KinesisSink

    return KinesisSink(settings())


@functools.cache
def quarantine() -> Any:
    from cdp.adapters.quarantine import S3Quarantine

    return S3Quarantine(settings())


@functools.cache
def identity_store() -> Any:
    from cdp.adapters.dynamo_profiles import DynamoIdentityStore

    return DynamoIdentityStore(settings())


@functools.cache
def privacy_store() -> Any:
    from cdp.adapters.privacy import DynamoPrivacyStore

    return DynamoPrivacyStore(settings())


@functools.cache
def suppression() -> SuppressionList:
    # The whole (hashed) list, re-read every 30 s: no read per event. If the privacy table does not
    # answer, the collector keeps collecting with the last list it read (unify and the archive,
    # which check again, fail closed): the privacy table is not one more way for collection to fail.
    return SuppressionList(privacy_store(), fail_open=True)


@functools.cache
def limits() -> EventLimits:
    # A tuning value with a default: read without requiring the resource names, which only the
    # adapters need (they are built on first use).
    return EventLimits(
        max_future=timedelta(seconds=Settings.from_env().collect_max_future_seconds),
        identifier_paths=identifier_paths,
    )


@functools.cache
def minimiser() -> Any:
    from cdp.privacy.minimise import minimiser_from_settings

    s = settings()
    key = ""
    if s.collect_ip_mode.strip().lower() == "hash":
        # Read once per container, and only in hash mode (a rotation takes effect at cold start).
        from cdp.adapters.secrets import CachedSecret

        key = CachedSecret(s, s.collect_ip_hash_key_secret_arn).value()
    return minimiser_from_settings(s.collect_ip_mode, key, s.collect_drop_traits)


@functools.cache
def identifier_paths() -> tuple[str, ...]:
    # Asked for only by an event over 1 KB (a shorter one cannot hold an over-long identifier),
    # so a cold collector does not import the identity package for its first small events.
    return tuple(path for spec in identity_config().identifiers for path in spec.paths)


@functools.cache
def tracker_script() -> str:
    return _TRACKER.read_text(encoding="utf-8")


def _respond(response: HttpResponse, extra: dict[str, str] | None = None) -> Response:
    return Response(
        body=response.body, status_code=response.status, headers={**response.headers, **(extra or {})}
    )


def _ingest(route: str, body: bytes) -> HttpResponse:
    request = app.current_request
    headers = request.headers
    ingest_request = IngestRequest(
        route=route,
        body=body,
        authorization=headers.get("authorization"),
        content_encoding=headers.get("content-encoding"),
        ip=(request.context.get("identity") or {}).get("sourceIp"),
        user_agent=headers.get("user-agent"),
    )
    try:
        result = ingest(
            ingest_request,
            sources=sources(),
            sink=sink(),
            quarantine=quarantine(),
            now=datetime.now(UTC),
            limits=limits(),
            minimise=minimiser(),
            suppression=suppression(),
        )
    except CdpError as exc:
        record_ingest_error(exc)
        return error_response(exc)
    record_ingest(result)
    return success_response(result)


def _collect(route: str) -> Response:
    return _respond(_ingest(route, app.current_request.raw_body or b""), CORS_HEADERS)


@app.middleware("http")
def _pixel_whatever_accept_says(request: Any, get_response: Any) -> Response:
    # Chalice refuses a binary response unless the Accept header names a binary type, and mail
    # clients often send no Accept at all: the pixel answers before that check.
    if request.path == "/v1/pixel" and request.method == "GET":
        return pixel()
    return get_response(request)


def pixel() -> Response:
    try:
        body = pixel_body((app.current_request.query_params or {}).get("data"))
    except CdpError as exc:
        outcome = error_response(exc)
    else:
        outcome = _ingest("pixel", body)
    headers = {"Content-Type": "image/gif", "Cache-Control": "no-store, max-age=0", **CORS_HEADERS}
    if outcome.status != 200:
        headers["X-CDP-Reason"] = str(outcome.body.get("reason", ""))
        headers.update({k: v for k, v in outcome.headers.items() if k == "Retry-After"})
    return Response(body=PIXEL_GIF, status_code=outcome.status, headers=headers)


@app.route("/v1/pixel", methods=["GET"])
def pixel_route() -> Response:
    return pixel()  # reached only if the middleware did not answer first


@app.route("/v1/cdp.js", methods=["GET"])
def tracker() -> Response:
    headers = {
        "Content-Type": "application/javascript; charset=utf-8",
        "Cache-Control": "public, max-age=300",
    }
    return Response(body=tracker_script(), status_code=200, headers={**headers, **CORS_HEADERS})


@app.route("/v1/batch", methods=["POST"], content_types=_ANY_BODY)
def batch() -> Response:
    return _collect("batch")


@app.route("/v1/track", methods=["POST"], content_types=_ANY_BODY)
def track() -> Response:
    return _collect("track")


@app.route("/v1/identify", methods=["POST"], content_types=_ANY_BODY)
def identify() -> Response:
    return _collect("identify")


@app.route("/v1/page", methods=["POST"], content_types=_ANY_BODY)
def page() -> Response:
    return _collect("page")


@app.route("/v1/screen", methods=["POST"], content_types=_ANY_BODY)
def screen() -> Response:
    return _collect("screen")


@app.route("/v1/group", methods=["POST"], content_types=_ANY_BODY)
def group() -> Response:
    return _collect("group")


@app.route("/v1/alias", methods=["POST"], content_types=_ANY_BODY)
def alias() -> Response:
    return _collect("alias")


@app.route("/v1/batch", methods=["OPTIONS"], content_types=_ANY_BODY)
@app.route("/v1/track", methods=["OPTIONS"], content_types=_ANY_BODY)
@app.route("/v1/identify", methods=["OPTIONS"], content_types=_ANY_BODY)
@app.route("/v1/page", methods=["OPTIONS"], content_types=_ANY_BODY)
@app.route("/v1/screen", methods=["OPTIONS"], content_types=_ANY_BODY)
@app.route("/v1/group", methods=["OPTIONS"], content_types=_ANY_BODY)
@app.route("/v1/alias", methods=["OPTIONS"], content_types=_ANY_BODY)
def preflight() -> Response:
    return _respond(preflight_response())


@functools.cache
def identity_config() -> Any:
    from cdp.identity.config import load_identity_config

    return load_identity_config(Path(__file__).parent / "config" / "identity.yaml")


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


@functools.cache
def unsubscribe_secret() -> Any:
    from cdp.adapters.secrets import CachedSecret

    return CachedSecret(settings(), Settings.from_env(require=UNSUBSCRIBE_FIELDS).unsubscribe_secret_arn)


def unsubscribe_key() -> str:
    return str(unsubscribe_secret().value())


def _admin_read(route: str, identifier: str, lookup: Any) -> Response:
    request = app.current_request
    response, operator = profile_response(
        identifier,
        authorization=request.headers.get("authorization"),
        access=admin_access(),
        lookup=lambda ident: lookup(ident, identity_store(), config=identity_config()),
        route=route,
    )
    caller = (request.context.get("identity") or {}).get("sourceIp")
    audit_log.info("%s", json.dumps(audit_record(route, identifier, response, caller=caller, operator=operator)))
    return _respond(response)


@app.route("/v1/profiles/{identifier}", methods=["GET"])
def profile(identifier: str) -> Response:
    from cdp.identity import lookup_profile

    return _admin_read("profile", identifier, lookup_profile)


@app.route("/v1/profiles/{identifier}/explain", methods=["GET"])
def explain_profile(identifier: str) -> Response:
    from cdp.identity import explain

    return _admin_read("explain", identifier, explain)


def _privacy(route: str, action: Callable[[], Any]) -> Response:
    from cdp.collect.privacy import privacy_response

    request = app.current_request
    response, operator = privacy_response(action, authorization=request.headers.get("authorization"),
                                          access=admin_access(), route=route)
    caller = (request.context.get("identity") or {}).get("sourceIp")
    audit_log.info("%s", json.dumps({"audit": route, "operator": operator.operator_id if operator else None,
                                     "scope": ROUTE_SCOPES[route], "caller": caller, "status": response.status,
                                     "request_id": (response.body or {}).get("request_id")}))
    return _respond(response)


@app.route("/v1/privacy/requests", methods=["POST"], content_types=["application/json"])
def privacy_request() -> Response:
    from cdp.adapters.privacy import SqsPrivacyQueue
    from cdp.jobs.privacy_job import accept_request

    def accept() -> Any:
        body = app.current_request.json_body
        accepted = accept_request(body, config=identity_config(), privacy=privacy_store(), identity=identity_store(),
                                  enqueue=SqsPrivacyQueue(settings()), now=datetime.now(UTC))
        suppression().forget()  # this container at once; the others within the cache's 30 s
        return accepted

    return _privacy("privacy_request", accept)


@app.route("/v1/privacy/requests/{request_id}", methods=["GET"])
def privacy_status(request_id: str) -> Response:
    from cdp.privacy.requests import is_request_id

    return _privacy("privacy_status",
                    lambda: privacy_store().get_request(request_id) if is_request_id(request_id) else None)


@app.route("/v1/unsubscribe", methods=["GET", "POST"], content_types=["application/x-www-form-urlencoded", "*/*"])
def unsubscribe() -> Response:
    """RFC 8058 one-click (POST) and the page a person opening the link sees (GET: a confirm button)."""
    from urllib.parse import urlencode

    from cdp.campaigns.unsubscribe import (
        CONFIRMATION_PAGE,
        INVALID_PAGE,
        confirmation_form,
        record_unsubscribe,
        verify_link,
    )
    from cdp.errors import NotFound, Unauthorized

    request = app.current_request
    params = dict(request.query_params or {})
    page = {"Content-Type": "text/html; charset=utf-8", "Cache-Control": "no-store", "Referrer-Policy": "no-referrer"}
    try:
        if request.method == "GET":
            verify_link(params, unsubscribe_key(), now=datetime.now(UTC).timestamp())
            return Response(body=confirmation_form(urlencode(params)), status_code=200, headers=page)
        record_unsubscribe(params, secret=unsubscribe_key(), profiles=identity_store(), sink=sink(),
                           now=datetime.now(UTC), method="one-click")
    except (Unauthorized, NotFound) as exc:
        audit_log.info("%s", json.dumps({"route": "unsubscribe", "refused": exc.reason}))
        return Response(body=INVALID_PAGE, status_code=400 if isinstance(exc, Unauthorized) else 404, headers=page)
    except CdpError as exc:
        return _respond(error_response(exc))
    return Response(body=CONFIRMATION_PAGE, status_code=200, headers=page)


def _run_app(event: dict[str, Any], context: Any) -> Any:
    return app(event, context)


@functools.cache
def _traced() -> Callable[[dict[str, Any], Any], Any]:
    # Tracer imports the X-Ray SDK and botocore, several times this module's own import: it is
    # made on the first invocation, which still precedes every AWS client (all are lazy), so it
    # patches botocore and every Kinesis, DynamoDB and S3 call is a subsegment.
    from aws_lambda_powertools import Tracer

    return Tracer().capture_lambda_handler(_run_app)  # type: ignore[no-any-return]


@metrics.log_metrics(capture_cold_start_metric=True)
def handler(event: dict[str, Any], context: Any) -> Any:
    return _traced()(event, context)
