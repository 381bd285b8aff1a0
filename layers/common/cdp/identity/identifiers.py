"""Identifiers: ``<type>:<value>`` strings, their normalisation, and extraction from events."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import phonenumbers

from cdp.errors import InvalidIdentifier
from cdp.identity.config import IdentityConfig

_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")


def normalise_value(normaliser: str, raw: Any, *, phone_region: str | None = None) -> str | None:
    """The canonical form of ``raw`` under ``normaliser``, or None if it cannot be an identifier."""
    if raw is None or isinstance(raw, bool | dict | list):
        return None
    if isinstance(raw, float):
        if not raw.is_integer():
            return None
        raw = int(raw)
    text = str(raw).strip()
    if not text:
        return None
    if normaliser == "email":
        text = text.lower()
        return text if _EMAIL.fullmatch(text) else None
    if normaliser == "phone":
        return _e164(text, phone_region)
    if normaliser == "lower":
        return text.lower()
    return text


def _e164(text: str, region: str | None) -> str | None:
    try:
        number = phonenumbers.parse(text, None if text.startswith("+") else region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_possible_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def make_identifier(identifier_type: str, raw: Any, config: IdentityConfig) -> str | None:
    spec = config.spec_by_type.get(identifier_type)
    if spec is None:
        return None
    value = normalise_value(spec.normaliser, raw, phone_region=config.default_phone_region)
    return None if value is None else f"{identifier_type}:{value}"


def split_identifier(identifier: str) -> tuple[str, str]:
    identifier_type, _, value = identifier.partition(":")
    return identifier_type, value


def parse_identifier(text: str, config: IdentityConfig) -> str:
    """Validate and normalise ``type:value`` (e.g. ``email: Alice@Example.com ``).

    Raises :class:`InvalidIdentifier` when the type is unknown or the value cannot be normalised.
    """
    if not isinstance(text, str) or ":" not in text:
        raise InvalidIdentifier("identifier must look like <type>:<value>", identifier=str(text))
    identifier_type, raw = text.split(":", 1)
    identifier_type = identifier_type.strip()
    if identifier_type not in config.spec_by_type:
        raise InvalidIdentifier(
            f"unknown identifier type {identifier_type!r}", identifier=text, known=list(config.types)
        )
    identifier = make_identifier(identifier_type, raw, config)
    if identifier is None:
        raise InvalidIdentifier(f"not a valid {identifier_type}", identifier=text)
    return identifier


def dotted_value(node: Any, dotted: str) -> Any:
    """The value at ``a.b.c`` in nested mappings, or None where the path leaves them."""
    for part in dotted.split("."):
        if not isinstance(node, Mapping):
            return None
        node = node.get(part)
    return node


@dataclass(frozen=True, slots=True)
class Extracted:
    """What one event says about identity."""

    identifiers: tuple[str, ...]  # normalised, allowed, highest priority first
    blocked: tuple[tuple[str, str], ...]  # (identifier, rule) refused by merge protection
    alias_of: str | None = None  # raw previousId of an alias event


def extract(event: Mapping[str, Any], config: IdentityConfig) -> Extracted:
    """The identifiers ``event`` carries, normalised; blocked values are set apart, not dropped silently.

    A ``group`` event's ``traits`` describe the group, so they never identify the person.
    """
    found: list[str] = []
    blocked: list[tuple[str, str]] = []
    is_group = event.get("type") == "group"
    for spec in config.identifiers:
        for dotted in spec.paths:
            if is_group and dotted.startswith("traits."):
                continue
            raw = dotted_value(event, dotted)
            if raw is None:
                continue
            value = normalise_value(spec.normaliser, raw, phone_region=config.default_phone_region)
            if value is None:
                if isinstance(raw, str | int | float) and not isinstance(raw, bool):
                    rule = config.blocking_rule(spec.type, str(raw))
                    if rule is not None:
                        blocked.append((f"{spec.type}:{str(raw).strip()}", rule))
                continue
            identifier = f"{spec.type}:{value}"
            rule = config.blocking_rule(spec.type, value)
            if rule is not None:
                if (identifier, rule) not in blocked:
                    blocked.append((identifier, rule))
            elif identifier not in found:
                found.append(identifier)
    alias_of = None
    if event.get("type") == "alias":
        alias_of = normalise_value("plain", event.get("previousId"))
        if alias_of is not None and config.blocking_rule("anonymous_id", alias_of) is not None:
            blocked.append((f"anonymous_id:{alias_of}", "blocked_value"))
            alias_of = None
    rank = config.rank
    found.sort(key=lambda ident: (rank.get(split_identifier(ident)[0], len(rank)), ident))
    return Extracted(tuple(found), tuple(blocked), alias_of)


def alias_candidates(previous_id: str) -> tuple[str, str]:
    """An alias's previousId is a user_id or an anonymous_id; the index tells which (user_id first)."""
    return f"user_id:{previous_id}", f"anonymous_id:{previous_id}"


def by_type(identifiers: list[str] | tuple[str, ...] | set[str]) -> dict[str, list[str]]:
    """``{"email": ["a@x.io"], "user_id": ["42"]}`` with values sorted."""
    grouped: dict[str, list[str]] = {}
    for identifier in identifiers:
        identifier_type, value = split_identifier(identifier)
        grouped.setdefault(identifier_type, []).append(value)
    return {t: sorted(vs) for t, vs in sorted(grouped.items())}
