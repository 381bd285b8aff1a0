"""A local API Gateway: real HTTP in, REST API proxy events out, to the function that owns the route.

Routes, binary media types and throttling come from the template's ``AWS::Serverless::Api``
and the functions' ``Api`` events, so the local server answers on exactly the routes that
are deployed.
"""

from __future__ import annotations

import base64
import json
import logging
import re
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from .runtime import LocalFunction

log = logging.getLogger("cdp.local.api")

MAX_PAYLOAD = 10 * 1024 * 1024  # API Gateway's request payload limit


@dataclass(frozen=True)
class Route:
    method: str
    resource: str  # e.g. /v1/profiles/{identifier}
    function: LocalFunction

    @property
    def pattern(self) -> re.Pattern[str]:
        parts = re.split(r"\{([A-Za-z0-9_]+)(\+?)\}", self.resource)
        regex = ""
        for i in range(0, len(parts), 3):
            regex += re.escape(parts[i])
            if i + 1 < len(parts):  # {name} is one path segment, {name+} the rest of the path
                regex += f"(?P<{parts[i + 1]}>{'.+' if parts[i + 2] else '[^/]+'})"
        return re.compile(f"^{regex}$")


class TokenBucket:
    """API Gateway's stage throttling (rate and burst), answered with 429 as API Gateway does."""

    def __init__(self, rate: float, burst: float) -> None:
        self.rate, self.burst = rate, burst
        self.tokens = burst
        self.updated = time.monotonic()
        self.lock = threading.Lock()

    def take(self) -> bool:
        with self.lock:
            now = time.monotonic()
            self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
            self.updated = now
            if self.tokens >= 1:
                self.tokens -= 1
                return True
            return False


def proxy_event(method: str, route: Route, path: str, params: dict[str, str], query: str,
                headers: list[tuple[str, str]], body: bytes, source_ip: str, stage: str) -> dict[str, Any]:
    """The REST API (v1) Lambda proxy integration event for one request."""
    single: dict[str, str] = {}
    multi: dict[str, list[str]] = {}
    for name, value in headers:
        single[name] = value
        multi.setdefault(name, []).append(value)
    qs = parse_qs(query, keep_blank_values=True)
    now_ms = int(time.time() * 1000)
    request_id = str(uuid.uuid4())
    user_agent = next((v for k, v in headers if k.lower() == "user-agent"), None)
    return {
        "resource": route.resource,
        "path": path,
        "httpMethod": method,
        "headers": single or None,
        "multiValueHeaders": multi or None,
        "queryStringParameters": {k: v[-1] for k, v in qs.items()} or None,
        "multiValueQueryStringParameters": qs or None,
        "pathParameters": params or None,
        "stageVariables": None,
        "requestContext": {
            "resourceId": "local",
            "resourcePath": route.resource,
            "httpMethod": method,
            "extendedRequestId": request_id,
            "requestTime": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(now_ms / 1000)),
            "path": f"/{stage}{path}",
            "accountId": route.function.account_id,
            "protocol": "HTTP/1.1",
            "stage": stage,
            "domainPrefix": "localhost",
            "requestTimeEpoch": now_ms,
            "requestId": request_id,
            "identity": {"sourceIp": source_ip, "userAgent": user_agent},
            "domainName": "localhost",
            "apiId": "local",
        },
        # BinaryMediaTypes is */* in the template: API Gateway base64-encodes every body.
        "body": base64.b64encode(body).decode("ascii") if body else None,
        "isBase64Encoded": bool(body),
    }


@dataclass(frozen=True)
class AdminRoutes:
    """Routes only the local API has: ``GET /v1/metrics`` (scope ``metrics:read``), the metrics the
    functions flushed, which on AWS are in CloudWatch; admin pages (scope ``reports:read``)."""

    access: Any  # cdp.collect.profiles.AdminAccess: operators and the break-glass token
    metrics: Callable[[], dict[str, Any]]
    path: str = "/v1/metrics"
    # Admin pages by path (e.g. /v1/reports/latest): HTML, or None when there is nothing yet.
    pages: Mapping[str, Callable[[], bytes | None]] = field(default_factory=dict)

    def page(self, path: str, authorization: str | None) -> tuple[int, dict[str, str], bytes]:
        status, payload = self.answer(authorization, lambda: {}, route="report")
        if status != 200:
            return status, {"Content-Type": "application/json"}, json.dumps(payload).encode()
        html = self.pages[path]()
        if html is None:
            return 404, {"Content-Type": "application/json"}, b'{"message": "nothing here yet"}'
        return 200, {"Content-Type": "text/html; charset=utf-8"}, html

    def answer(self, authorization: str | None, body: Callable[[], dict[str, Any]] | None = None, *,
               route: str = "metrics") -> tuple[int, dict[str, Any]]:
        from cdp.collect.http import error_response
        from cdp.errors import CdpError

        try:
            self.access.caller(authorization, route)
        except CdpError as exc:
            response = error_response(exc)
            return response.status, response.body
        return 200, (body or self.metrics)()


class LocalApi:
    def __init__(self, routes: list[Route], *, host: str = "127.0.0.1", port: int = 0,
                 stage: str = "v1api", throttle: TokenBucket | None = None,
                 admin: AdminRoutes | None = None) -> None:
        self.routes = routes
        self.admin = admin
        self.stage = stage
        self.throttle = throttle
        self.httpd = ThreadingHTTPServer((host, port), self._handler_class())
        self.httpd.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> LocalApi:
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="local-api", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def match(self, method: str, path: str) -> tuple[Route | None, dict[str, str], bool]:
        """The route for ``method path``, its path parameters, and whether the path exists at all."""
        path_exists = False
        for route in self.routes:
            m = route.pattern.match(path)
            if m:
                path_exists = True
                if route.method in (method, "ANY"):
                    return route, {k: unquote(v) for k, v in m.groupdict().items()}, True
        return None, {}, path_exists

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        api = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            server_version = "cdp-local"
            # Buffered: headers and body leave in one write, flushed after the handler's response.
            wbufsize = -1

            def handle_expect_100(self) -> bool:
                # The interim answer must leave now: the client waits for it before its body.
                answered = super().handle_expect_100()
                self.wfile.flush()
                return answered

            def log_message(self, fmt: str, *args: Any) -> None:
                log.debug(fmt, *args)

            def _send(self, status: int, headers: dict[str, str], body: bytes) -> None:
                self.send_response(status)
                for name, value in headers.items():
                    if name.lower() not in ("content-length", "connection", "transfer-encoding"):
                        self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            def _json(self, status: int, payload: dict[str, Any], extra: dict[str, str] | None = None) -> None:
                self._send(status, {"Content-Type": "application/json", **(extra or {})},
                           json.dumps(payload).encode())

            def _handle(self) -> None:
                split = urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                if length > MAX_PAYLOAD:
                    self.close_connection = True
                    self._json(413, {"message": "Request Too Long"})
                    return
                body = self.rfile.read(length) if length else b""
                path = split.path
                if path.startswith(f"/{api.stage}/"):
                    path = path[len(api.stage) + 1:]
                if api.admin is not None and path == api.admin.path and self.command == "GET":
                    self._json(*api.admin.answer(self.headers.get("Authorization")))
                    return
                if api.admin is not None and path in api.admin.pages and self.command == "GET":
                    self._send(*api.admin.page(path, self.headers.get("Authorization")))
                    return
                route, params, path_exists = api.match(self.command, path)
                if route is None:
                    # API Gateway answers unknown routes with 403 "Missing Authentication Token".
                    status = 405 if path_exists else 403
                    self._json(status, {"message": "Missing Authentication Token"})
                    return
                if api.throttle is not None and not api.throttle.take():
                    self._json(429, {"message": "Too Many Requests"}, {"Retry-After": "1"})
                    return
                event = proxy_event(self.command, route, path, params, split.query,
                                    list(self.headers.items()), body, self.client_address[0], api.stage)
                try:
                    response = route.function.invoke(event)
                except Exception:  # the Lambda failed: API Gateway answers 502
                    log.exception("handler of %s %s failed", self.command, route.resource)
                    self._json(502, {"message": "Internal server error"})
                    return
                self._reply(response)

            def _reply(self, response: dict[str, Any]) -> None:
                headers = {k: str(v) for k, v in (response.get("headers") or {}).items()}
                for name, values in (response.get("multiValueHeaders") or {}).items():
                    headers[name] = ", ".join(str(v) for v in values)
                raw = response.get("body") or ""
                body = base64.b64decode(raw) if response.get("isBase64Encoded") else raw.encode("utf-8")
                self._send(int(response.get("statusCode", 200)), headers, body)

            do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = do_HEAD = _handle

        return Handler
