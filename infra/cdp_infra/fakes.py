"""Local fakes of the destinations: Meta's users edge, Google's Data Manager API, a webhook receiver.

Each is a small HTTP server on 127.0.0.1 that checks every request against the platform's documented
contract (field names, hashing format, batch limits, session fields, auth) and answers as the platform
does, including its documented errors (scripted with ``fail_next``). A request that breaks the
contract is answered with the platform's "invalid parameter" error and kept in ``violations``, so a
test can assert there were none. The tests and ``cdp demo`` use them; nothing here runs on AWS.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import threading
import time
import uuid
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

HEX64 = re.compile(r"^[0-9a-f]{64}$")
META_KEYS = {"EMAIL", "PHONE", "FN", "LN", "CT", "ST", "ZIP", "COUNTRY", "GEN", "DOBY", "DOBM", "DOBD",
             "FI", "MADID", "EXTERN_ID", "LOOKALIKE_VALUE"}
META_UNHASHED = {"MADID", "EXTERN_ID", "LOOKALIKE_VALUE"}
MAX_BATCH = 10_000


class _Server:
    """A threaded loopback server whose handler calls ``self.handle(method, path, headers, body)``."""

    def __init__(self) -> None:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def _any(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                status, answer, headers = owner._dispatch(self.command, self.path, dict(self.headers), body)
                data = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for name, value in headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)

            do_POST = do_DELETE = do_GET = _any

            def log_message(self, *args: Any) -> None:
                pass

        self.lock = threading.Lock()
        self.requests: list[dict[str, Any]] = []
        self.violations: list[str] = []
        self._scripted: deque[tuple[int, dict[str, Any], dict[str, str]]] = deque()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05},
                                       daemon=True, name=type(self).__name__)

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> _Server:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def __enter__(self) -> Any:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def fail_next(self, status: int, answer: dict[str, Any], headers: dict[str, str] | None = None,
                  times: int = 1) -> None:
        for _ in range(times):
            self._scripted.append((status, answer, headers or {}))

    def _dispatch(self, method: str, path: str, headers: dict[str, str], body: bytes
                  ) -> tuple[int, dict[str, Any], dict[str, str]]:
        with self.lock:
            self.requests.append({"method": method, "path": path, "headers": headers, "body": body})
            if self._scripted:
                return self._scripted.popleft()
            return self.handle(method, path, {k.lower(): v for k, v in headers.items()}, body)

    def handle(self, method: str, path: str, headers: dict[str, str], body: bytes
               ) -> tuple[int, dict[str, Any], dict[str, str]]:
        raise NotImplementedError


# ---------------------------------------------------------------- Meta


def meta_error(code: int, message: str, subcode: int | None = None, status: int = 400
               ) -> tuple[int, dict[str, Any]]:
    """A Graph API error answer (developers.facebook.com/docs/graph-api/guides/error-handling)."""
    error: dict[str, Any] = {"message": message, "type": "OAuthException", "code": code,
                             "fbtrace_id": uuid.uuid4().hex[:11]}
    if subcode is not None:
        error["error_subcode"] = subcode
    return status, {"error": error}


class MetaFake(_Server):
    """``POST|DELETE /{version}/{audience_id}/users`` with ``payload``, ``session`` and ``access_token``."""

    def __init__(self, access_token: str = "meta-token") -> None:
        super().__init__()
        self.access_token = access_token
        self.audiences: dict[str, set[tuple[str, ...]]] = {}
        self.sessions: dict[int, dict[str, Any]] = {}

    def members(self, audience_id: str) -> set[str]:
        """The EMAIL hashes in the audience."""
        return {row[0] for row in self.audiences.get(audience_id, set())}

    def _invalid(self, reason: str) -> tuple[int, dict[str, Any], dict[str, str]]:
        self.violations.append(reason)
        status, answer = meta_error(100, f"Invalid parameter: {reason}")
        return status, answer, {}

    def handle(self, method: str, path: str, headers: dict[str, str], body: bytes
               ) -> tuple[int, dict[str, Any], dict[str, str]]:
        match = re.fullmatch(r"/v\d+\.\d+/(\d+)/users", path)
        if not match or method not in ("POST", "DELETE"):
            return self._invalid(f"unknown path {method} {path}")
        if not headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
            return self._invalid("the body must be form-encoded")
        form = {k: v[0] for k, v in parse_qs(body.decode(), keep_blank_values=True).items()}
        if form.get("access_token") != self.access_token:
            status, answer = meta_error(190, "Invalid OAuth access token")
            self.violations.append("bad access token")
            return status, answer, {}
        try:
            payload = json.loads(form["payload"])
        except (KeyError, ValueError):
            return self._invalid("payload must be JSON")
        schema, data = payload.get("schema"), payload.get("data")
        if not isinstance(schema, list) or not schema or any(k not in META_KEYS for k in schema):
            return self._invalid(f"schema must list known keys, got {schema!r}")
        if len(set(schema)) != len(schema):
            return self._invalid("schema repeats a key")
        if not isinstance(data, list) or not data:
            return self._invalid("data must be a non-empty list")
        if len(data) > MAX_BATCH:
            return self._invalid(f"at most {MAX_BATCH} users per request, got {len(data)}")
        for row in data:
            if not isinstance(row, list) or len(row) != len(schema):
                return self._invalid("each data row must have one value per schema key")
            for key, value in zip(schema, row, strict=True):
                if key not in META_UNHASHED and value != "" and not HEX64.match(str(value)):
                    return self._invalid(f"{key} must be a SHA-256 hex digest, got {value!r}")
            if all(v == "" for v in row):
                return self._invalid("a row with no value")
        session_id = 0
        if "session" in form:
            try:
                session = json.loads(form["session"])
            except ValueError:
                return self._invalid("session must be JSON")
            required = {"session_id": int, "batch_seq": int, "last_batch_flag": bool, "estimated_num_total": int}
            for name, kind in required.items():
                if not isinstance(session.get(name), kind) or (kind is int and isinstance(session.get(name), bool)):
                    return self._invalid(f"session.{name} must be a {kind.__name__}")
            session_id = session["session_id"]
            seen = self.sessions.setdefault(session_id, {"last_seq": 0, "done": False, "received": 0})
            if seen["done"] and session["batch_seq"] > seen["last_seq"]:
                return self._invalid("a batch after the session's last batch")
            if session["batch_seq"] > seen["last_seq"] + 1 or session["batch_seq"] < 1:
                return self._invalid(f"batch_seq {session['batch_seq']} out of order")
            seen["last_seq"] = max(seen["last_seq"], session["batch_seq"])
            seen["done"] = seen["done"] or session["last_batch_flag"]
            seen["received"] += len(data)
        audience = self.audiences.setdefault(match.group(1), set())
        email_at = schema.index("EMAIL") if "EMAIL" in schema else None
        for row in data:
            if method == "POST":
                audience.add(tuple(row))
            elif email_at is not None:
                # A removal matches on any key; the fake matches on EMAIL (what the tests send).
                for kept in [r for r in audience if r[0] == row[email_at]]:
                    audience.discard(kept)
        return 200, {"audience_id": match.group(1), "session_id": str(session_id), "num_received": len(data),
                     "num_invalid_entries": 0, "invalid_entry_samples": {}}, {}


# ---------------------------------------------------------------- Google


def google_error(status: int, grpc_status: str, message: str) -> tuple[int, dict[str, Any]]:
    """A google.rpc.Status error answer (cloud.google.com/apis/design/errors)."""
    return status, {"error": {"code": status, "message": message, "status": grpc_status}}


class GoogleFake(_Server):
    """``POST /v1/audienceMembers:ingest`` and ``:remove`` of the Data Manager API, and ``POST /token``:
    Google's OAuth 2.0 token endpoint for the refresh-token grant (developers.google.com/identity/
    protocols/oauth2/web-server, "Refreshing an access token"): a form-encoded ``client_id``,
    ``client_secret``, ``refresh_token`` and ``grant_type=refresh_token``, answered with
    ``{"access_token", "expires_in", "scope", "token_type": "Bearer"}`` or an RFC 6749 error
    (``invalid_client`` 401, ``invalid_grant`` / ``unsupported_grant_type`` / ``invalid_request`` 400).
    ``expire_tokens`` makes every issued token invalid, as an expiry or a revocation does.
    """

    SCOPE = "https://www.googleapis.com/auth/datamanager"

    def __init__(self, access_token: str = "google-token", *, client_id: str | None = None,
                 client_secret: str | None = None, refresh_token: str | None = None) -> None:
        super().__init__()
        self.access_token = access_token
        self.client = (client_id, client_secret, refresh_token)
        self.tokens: set[str] = {access_token} if client_id is None else set()
        self.issued = 0
        self.lists: dict[str, set[str]] = {}
        self.consents: list[dict[str, str]] = []

    def expire_tokens(self) -> None:
        with self.lock:
            self.tokens.clear()

    def _token(self, headers: dict[str, str], body: bytes) -> tuple[int, dict[str, Any], dict[str, str]]:
        def error(status: int, code: str, description: str) -> tuple[int, dict[str, Any], dict[str, str]]:
            return status, {"error": code, "error_description": description}, {}

        if not headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
            self.violations.append("the token request must be form-encoded")
            return error(400, "invalid_request", "form-encoded body expected")
        form = {k: v[0] for k, v in parse_qs(body.decode(), keep_blank_values=True).items()}
        if form.get("grant_type") != "refresh_token":
            self.violations.append(f"grant_type {form.get('grant_type')!r}")
            return error(400, "unsupported_grant_type", "Invalid grant_type")
        client_id, client_secret, refresh_token = self.client
        if client_id is None or form.get("client_id") != client_id or form.get("client_secret") != client_secret:
            return error(401, "invalid_client", "The OAuth client was not found.")
        if form.get("refresh_token") != refresh_token:
            return error(400, "invalid_grant", "Token has been expired or revoked.")
        self.issued += 1
        token = f"ya29.fake-{self.issued}-{uuid.uuid4().hex[:8]}"
        self.tokens.add(token)
        return 200, {"access_token": token, "expires_in": 3599, "scope": self.SCOPE, "token_type": "Bearer"}, {}

    def members(self, user_list_id: str) -> set[str]:
        return set(self.lists.get(user_list_id, set()))

    def _invalid(self, reason: str) -> tuple[int, dict[str, Any], dict[str, str]]:
        self.violations.append(reason)
        status, answer = google_error(400, "INVALID_ARGUMENT", reason)
        return status, answer, {}

    def handle(self, method: str, path: str, headers: dict[str, str], body: bytes
               ) -> tuple[int, dict[str, Any], dict[str, str]]:
        if method == "POST" and path == "/token":
            return self._token(headers, body)
        if method != "POST" or path not in ("/v1/audienceMembers:ingest", "/v1/audienceMembers:remove"):
            return self._invalid(f"unknown method {method} {path}")
        bearer = headers.get("authorization", "")
        if not bearer.startswith("Bearer ") or bearer.removeprefix("Bearer ") not in self.tokens:
            if self.client[0] is None:  # a fixed token: a wrong one is the client's mistake
                self.violations.append("bad bearer token")
            status, answer = google_error(401, "UNAUTHENTICATED", "Request had invalid authentication credentials.")
            return status, answer, {}
        try:
            request = json.loads(body)
        except ValueError:
            return self._invalid("the body must be JSON")
        ingest = path.endswith(":ingest")
        allowed = {"destinations", "audienceMembers", "validateOnly", "encoding", "encryptionInfo"}
        if ingest:
            allowed |= {"consent", "termsOfService"}
        if set(request) - allowed:
            return self._invalid(f"unknown fields {sorted(set(request) - allowed)}")
        destinations = request.get("destinations")
        if not isinstance(destinations, list) or len(destinations) != 1:
            return self._invalid("one destination expected")
        destination = destinations[0]
        account = destination.get("operatingAccount") or {}
        if account.get("accountType") not in ("GOOGLE_ADS", "DISPLAY_VIDEO_ADVERTISER", "DISPLAY_VIDEO_PARTNER",
                                              "DATA_PARTNER") or not str(account.get("accountId", "")).isdigit():
            return self._invalid("operatingAccount needs accountType and a numeric accountId")
        list_id = destination.get("productDestinationId")
        if not isinstance(list_id, str) or not list_id:
            return self._invalid("productDestinationId is required")
        members = request.get("audienceMembers")
        if not isinstance(members, list) or not members:
            return self._invalid("audienceMembers is required")
        if len(members) > MAX_BATCH:
            return self._invalid(f"at most {MAX_BATCH} audienceMembers per request, got {len(members)}")
        if request.get("encoding") != "HEX":
            return self._invalid("encoding must be HEX for hex-encoded hashes")
        if ingest and (request.get("termsOfService") or {}).get("customerMatchTermsOfServiceStatus") != "ACCEPTED":
            return self._invalid("termsOfService.customerMatchTermsOfServiceStatus must be ACCEPTED")
        emails: list[str] = []
        for member in members:
            identifiers = ((member.get("userData") or {}).get("userIdentifiers"))
            if not isinstance(identifiers, list) or not 1 <= len(identifiers) <= 10:
                return self._invalid("userData.userIdentifiers must hold 1 to 10 identifiers")
            for identifier in identifiers:
                if len(identifier) != 1 or next(iter(identifier)) not in ("emailAddress", "phoneNumber", "address"):
                    return self._invalid(f"a user identifier has exactly one of emailAddress, phoneNumber, address: {identifier}")
                if "address" in identifier:
                    address = identifier["address"]
                    if not all(HEX64.match(str(address.get(k, ""))) for k in ("givenName", "familyName")):
                        return self._invalid("address.givenName and familyName must be hex SHA-256")
                    if not re.fullmatch(r"[A-Z]{2}", str(address.get("regionCode", ""))):
                        return self._invalid("address.regionCode must be a 2-letter code")
                elif not HEX64.match(str(next(iter(identifier.values())))):
                    return self._invalid("hashed identifiers must be hex SHA-256")
                if "emailAddress" in identifier:
                    emails.append(identifier["emailAddress"])
            consent = member.get("consent")
            if ingest:
                if not isinstance(consent, dict) or any(
                        consent.get(k) not in ("CONSENT_GRANTED", "CONSENT_DENIED")
                        for k in ("adUserData", "adPersonalization")):
                    return self._invalid("each member needs consent.adUserData and consent.adPersonalization")
                self.consents.append(consent)
            elif consent is not None:
                return self._invalid("consent is not a field of a removal")
        kept = self.lists.setdefault(list_id, set())
        if ingest:
            kept.update(emails)
        else:
            kept.difference_update(emails)
        return 200, {"requestId": str(uuid.uuid4())}, {}


# ---------------------------------------------------------------- webhooks


def verify_standard_webhook(secret: str, headers: dict[str, str], body: bytes, *, now: float | None = None,
                            tolerance_s: int = 300) -> bool:
    """The receiver's check, written from the Standard Webhooks spec (independent of our signer)."""
    msg_id, stamp, signatures = (headers.get("webhook-id"), headers.get("webhook-timestamp"),
                                 headers.get("webhook-signature"))
    if not (msg_id and stamp and signatures and stamp.isdigit()):
        return False
    if abs((now if now is not None else time.time()) - int(stamp)) > tolerance_s:
        return False
    key = base64.b64decode(secret.removeprefix("whsec_"))
    expected = base64.b64encode(hmac.new(key, f"{msg_id}.{stamp}.".encode() + body, hashlib.sha256).digest())
    return any(part.startswith("v1,") and hmac.compare_digest(part[3:].encode(), expected)
               for part in signatures.split(" "))


class WebhookReceiver(_Server):
    """An endpoint that verifies each message's signature and keeps each ``webhook-id`` once."""

    def __init__(self, secret: str) -> None:
        super().__init__()
        self.secret = secret
        self.messages: dict[str, dict[str, Any]] = {}
        self.deliveries = 0

    def handle(self, method: str, path: str, headers: dict[str, str], body: bytes
               ) -> tuple[int, dict[str, Any], dict[str, str]]:
        if method != "POST" or headers.get("content-type") != "application/json":
            self.violations.append(f"{method} {headers.get('content-type')}")
            return 400, {"error": "POST application/json expected"}, {}
        if not verify_standard_webhook(self.secret, headers, body):
            self.violations.append("bad signature")
            return 401, {"error": "bad signature"}, {}
        self.deliveries += 1
        self.messages.setdefault(headers["webhook-id"], json.loads(body))
        return 200, {}, {}
