"""A small HTTP client for the tracking API, as an SDK would use it (keep-alive, retries)."""

from __future__ import annotations

import base64
import http.client
import json
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from cdp.times import format_time


@dataclass
class SendResult:
    status: int
    accepted: int
    rejected: int
    body: dict[str, Any]


class TrackingClient:
    def __init__(self, base_url: str, write_key: str, *, timeout: float = 60.0, max_attempts: int = 8) -> None:
        url = urlsplit(base_url)
        self.host, self.port = url.hostname or "127.0.0.1", url.port or 80
        self.prefix = url.path.rstrip("/")
        self.auth = "Basic " + base64.b64encode(f"{write_key}:".encode()).decode()
        self.timeout = timeout
        self.max_attempts = max_attempts
        self._conn: http.client.HTTPConnection | None = None

    def _connection(self) -> http.client.HTTPConnection:
        if self._conn is None:
            self._conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
        return self._conn

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def request(self, method: str, path: str, body: bytes | None = None,
                headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
        for attempt in range(2):
            conn = self._connection()
            try:
                conn.request(method, self.prefix + path, body=body, headers=headers or {})
                response = conn.getresponse()
                return response.status, dict(response.getheaders()), response.read()
            except (ConnectionError, http.client.HTTPException):
                self.close()
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def batch(self, events: list[dict[str, Any]]) -> SendResult:
        """POST /v1/batch, retrying 429 and 5xx as SDKs do (honouring Retry-After)."""
        payload = json.dumps({"batch": events, "sentAt": format_time(datetime.now(UTC))}).encode()
        headers = {"Content-Type": "application/json", "Authorization": self.auth}
        status, resp_headers, raw = 0, {}, b""
        for attempt in range(self.max_attempts):
            status, resp_headers, raw = self.request("POST", "/v1/batch", payload, headers)
            if status != 429 and status < 500:
                break
            time.sleep(float(resp_headers.get("Retry-After") or 0.2 * 2 ** attempt))
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            body = {"raw": raw.decode("utf-8", "replace")}
        if status == 200:
            rejected = len(body.get("rejected") or [])
            return SendResult(status, int(body.get("accepted", len(events) - rejected)), rejected, body)
        return SendResult(status, 0, len(events), body)
