"""Data minimisation at collection: what the collector keeps of an IP address, and traits it drops.

Configured per stack (template Parameters ``CollectIpMode`` and ``CollectDropTraits``, the hash key
generated into the secret ``IpHashKeySecret``; docs/privacy.md has the trade-offs):

* ``keep`` — the address as received (the default: geolocation and fraud checks need it);
* ``truncate`` — IPv4 to its /24 (``203.0.113.0``), IPv6 to its /48 (``2001:db8:1::``);
* ``hash`` — a keyed hash (HMAC-SHA256 with the stack's key, 16 bytes in hex): the same address
  gives the same value, so sessions can still be told apart, but without the key it cannot be
  reversed by trying the 2^32 IPv4 addresses.

Named traits are removed from ``traits`` and ``context.traits`` before the event reaches the
stream, so they never reach the lake nor a profile. Imported under the collector: standard library
only, and per event at most a few dictionary look-ups.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from cdp.errors import InvalidConfig

IP_MODES = ("keep", "truncate", "hash")
IPV4_PREFIX = 24
IPV6_PREFIX = 48


@dataclass(frozen=True, slots=True)
class Minimiser:
    ip_mode: str = "keep"
    ip_hash_key: bytes = b""
    drop_traits: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        if self.ip_mode not in IP_MODES:
            raise InvalidConfig(f"CollectIpMode must be one of {', '.join(IP_MODES)}, got {self.ip_mode!r}")
        if self.ip_mode == "hash" and len(self.ip_hash_key) < 16:
            raise InvalidConfig("CollectIpMode hash needs a hash key of at least 16 characters (IpHashKeySecret)")

    @property
    def active(self) -> bool:
        return self.ip_mode != "keep" or bool(self.drop_traits)

    def ip(self, address: str | None) -> str | None:
        """What is kept of ``address``; a value that is no IP address is dropped unless kept as is."""
        if address is None or self.ip_mode == "keep":
            return address
        return _minimised_ip(self.ip_mode, self.ip_hash_key, address)

    def event(self, event: dict[str, Any]) -> None:
        """Apply the options to one event, in place (its ``context`` and ``traits`` are its own copies)."""
        context = event.get("context")
        if isinstance(context, dict):
            if self.ip_mode != "keep" and "ip" in context:
                ip = context["ip"]
                minimised = self.ip(ip) if isinstance(ip, str) else None
                if minimised is None:
                    del context["ip"]
                else:
                    context["ip"] = minimised
            if self.drop_traits and isinstance(context.get("traits"), dict):
                context["traits"] = _without(context["traits"], self.drop_traits)
        if self.drop_traits and isinstance(event.get("traits"), dict):
            event["traits"] = _without(event["traits"], self.drop_traits)


NO_MINIMISATION = Minimiser()


def minimiser_from_settings(ip_mode: str, ip_hash_key: str, drop_traits: str | Iterable[str]) -> Minimiser:
    """A :class:`Minimiser` from the settings' text (``drop_traits`` comma-separated)."""
    names = drop_traits.split(",") if isinstance(drop_traits, str) else drop_traits
    return Minimiser(ip_mode=(ip_mode or "keep").strip().lower(), ip_hash_key=ip_hash_key.encode("utf-8"),
                     drop_traits=frozenset(n.strip() for n in names if n.strip()))


def truncate_ip(address: str) -> str | None:
    """IPv4 to its /24, IPv6 to its /48 (an IPv4-mapped IPv6 address as IPv4); None if no address."""
    try:
        ip = ipaddress.ip_address(address.strip())
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    prefix = IPV4_PREFIX if ip.version == 4 else IPV6_PREFIX
    return str(ipaddress.ip_network(f"{ip}/{prefix}", strict=False).network_address)


def hash_ip(address: str, key: bytes) -> str | None:
    try:
        ip = ipaddress.ip_address(address.strip())
    except ValueError:
        return None
    return hmac.new(key, ip.packed, hashlib.sha256).hexdigest()[:32]


@functools.lru_cache(maxsize=256)
def _minimised_ip(mode: str, key: bytes, address: str) -> str | None:
    # A batch's events share the request's address: one computation per address.
    return truncate_ip(address) if mode == "truncate" else hash_ip(address, key)


def _without(traits: dict[str, Any], names: frozenset[str]) -> dict[str, Any]:
    if names.isdisjoint(traits):
        return traits
    return {k: v for k, v in traits.items() if k not in names}
