"""A small HTTP transport on urllib3 (already in the layer through botocore) for the destinations.

The ad platforms' SDKs do not fit the layer (docs/architecture.md, "Destinations"): the clients in
``cdp.activation.audiences`` and ``cdp.activation.webhooks`` build their requests themselves and call
this transport, which tests replace by loopback fakes.

``check_host`` guards webhook URLs against SSRF: the host is resolved once, every address must be
public (not private, loopback, link-local, multicast or reserved) unless ``allow_local``, and the
connection goes to the address that was checked (the TLS name stays the URL's host), so a DNS answer
that changes between the check and the connect cannot reach an internal address.
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import urllib3

from cdp.errors import DestinationRefused, UnsafeEndpoint


@dataclass(frozen=True, slots=True)
class HttpResponse:
    status: int
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)


def check_url(url: str, *, allow_local: bool) -> tuple[str, str, int]:
    """``(scheme, host, port)`` of a URL that may be called; raises :class:`UnsafeEndpoint`."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if not host:
        raise UnsafeEndpoint("the URL has no host", url=url)
    if parts.username or parts.password:
        raise UnsafeEndpoint("credentials in the URL are refused", url=url)
    if parts.scheme == "https":
        return "https", host, parts.port or 443
    if parts.scheme == "http" and allow_local and host in ("127.0.0.1", "localhost", "::1"):
        return "http", host, parts.port or 80
    raise UnsafeEndpoint("only https URLs are allowed (http only to 127.0.0.1 when running locally)", url=url)


def check_host(host: str, port: int, *, allow_local: bool,
               resolve: object = socket.getaddrinfo) -> str:
    """The address to connect to, after checking every address ``host`` resolves to."""
    try:
        infos = resolve(host, port, type=socket.SOCK_STREAM)  # type: ignore[operator]
    except OSError as exc:
        raise DestinationRefused("cannot resolve the endpoint's host", action="retry", host=host) from exc
    addresses = [str(info[4][0]) for info in infos]
    if not addresses:
        raise DestinationRefused("the endpoint's host has no address", action="retry", host=host)
    for address in addresses:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
        if allow_local and ip.is_loopback:
            continue
        if not ip.is_global or ip.is_multicast or ip.is_reserved:
            raise UnsafeEndpoint("the endpoint resolves to a non-public address", host=host, address=address)
    return addresses[0]


class Urllib3Transport:
    """``request(method, url, headers, body)`` -> :class:`HttpResponse`; never follows redirects.

    A connection or read failure raises ``DestinationRefused(action="retry")`` (the request may or may
    not have reached the server: callers rely on the other side being idempotent or deduping).
    """

    def __init__(self, *, timeout_s: float = 10.0, pin_public: bool = False, allow_local: bool = False,
                 resolve: object = socket.getaddrinfo) -> None:
        self.timeout = urllib3.Timeout(connect=min(timeout_s, 5.0), read=timeout_s)
        self.pin_public = pin_public
        self.allow_local = allow_local
        self.resolve = resolve
        self._pools: dict[tuple[str, str, int], urllib3.HTTPConnectionPool] = {}

    def _pool(self, url: str) -> urllib3.HTTPConnectionPool:
        scheme, host, port = check_url(url, allow_local=self.allow_local) if self.pin_public else (
            urlsplit(url).scheme, urlsplit(url).hostname or "", urlsplit(url).port or (443 if urlsplit(url).scheme == "https" else 80))
        address = check_host(host, port, allow_local=self.allow_local, resolve=self.resolve) if self.pin_public else host
        key = (scheme, host, port)
        pool = self._pools.get(key)
        if pool is None or (self.pin_public and pool.host != address):
            if scheme == "https":
                pool = urllib3.HTTPSConnectionPool(address, port, timeout=self.timeout, retries=False,
                                                   server_hostname=host, assert_hostname=host)
            else:
                pool = urllib3.HTTPConnectionPool(address, port, timeout=self.timeout, retries=False)
            self._pools[key] = pool
        return pool

    def request(self, method: str, url: str, *, headers: dict[str, str], body: bytes) -> HttpResponse:
        parts = urlsplit(url)
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        pool = self._pool(url)
        host_header = parts.netloc.rsplit("@", 1)[-1]
        try:
            response = pool.urlopen(method, path or "/", body=body, headers={"Host": host_header, **headers},
                                    redirect=False, retries=False, preload_content=True)
        except urllib3.exceptions.HTTPError as exc:
            raise DestinationRefused("the endpoint could not be reached", action="retry",
                                     error=type(exc).__name__) from exc
        return HttpResponse(status=response.status, body=response.data or b"",
                            headers={k.lower(): v for k, v in response.headers.items()})
