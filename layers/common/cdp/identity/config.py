"""Configuration of identity resolution: identifier types, protection rules, profile policies.

Everything has a sensible default, so ``IdentityConfig()`` is a working configuration;
``IdentityConfig.from_dict`` reads the same shape from YAML/JSON.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from functools import cached_property
from pathlib import Path
from typing import Any

from cdp.errors import InvalidConfig

NORMALISERS = ("plain", "lower", "email", "phone")


@dataclass(frozen=True, slots=True)
class IdentifierSpec:
    """One identifier type and where events carry it (dotted paths into the event)."""

    type: str
    paths: tuple[str, ...]
    normaliser: str = "plain"

    def __post_init__(self) -> None:
        if not re.fullmatch(r"[a-z][a-z0-9_]{0,63}", self.type):
            raise InvalidConfig(f"identifier type {self.type!r} must be snake_case")
        if self.normaliser not in NORMALISERS:
            raise InvalidConfig(f"identifier type {self.type!r}: unknown normaliser {self.normaliser!r}")
        if not self.paths:
            raise InvalidConfig(f"identifier type {self.type!r} needs at least one path")


COMPUTED_KINDS = ("count", "sum", "first_time", "last_time", "last_value")


@dataclass(frozen=True, slots=True)
class ComputedTrait:
    """A trait computed from events: ``count`` / ``sum`` of a property / ``first_time`` / ``last_time``
    of an event, or ``last_value`` of a property. ``event`` None matches every event of ``type``."""

    name: str
    kind: str
    event: str | None = None
    property: str | None = None
    type: str = "track"

    def __post_init__(self) -> None:
        if self.kind not in COMPUTED_KINDS:
            raise InvalidConfig(
                f"computed trait {self.name!r}: kind must be one of {', '.join(COMPUTED_KINDS)}"
            )
        if self.kind in ("sum", "last_value") and not self.property:
            raise InvalidConfig(f"computed trait {self.name!r}: kind {self.kind} needs a property")

    def matches(self, event: Mapping[str, Any]) -> bool:
        if event.get("type") != self.type:
            return False
        if self.event is None:
            return True
        name = event.get("event") if self.type == "track" else event.get("name")
        return name == self.event


@dataclass(frozen=True, slots=True)
class LifecycleConfig:
    """Thresholds of the customer lifecycle (new visitor -> ... -> engaged customer / churned)."""

    purchase_events: tuple[str, ...] = ("Order Completed",)
    intent_events: tuple[str, ...] = ("Product Added", "Cart Viewed", "Checkout Started")
    # A visitor seen again this long after their first event is a returning visitor.
    returning_after_minutes: int = 30
    # Orders that make an engaged (repeat) customer.
    engaged_min_orders: int = 2
    # A customer without an order for this long is churned.
    churn_after_days: int = 90
    # Transitions kept per profile (oldest dropped first).
    history_limit: int = 50


DEFAULT_IDENTIFIERS: tuple[IdentifierSpec, ...] = (
    IdentifierSpec("user_id", ("userId",)),
    IdentifierSpec("email", ("traits.email", "context.traits.email"), "email"),
    IdentifierSpec("phone", ("traits.phone", "context.traits.phone"), "phone"),
    IdentifierSpec("anonymous_id", ("anonymousId",)),
)

# Values that many people share by accident: linking on them would glue strangers together.
DEFAULT_BLOCKED_VALUES: tuple[str, ...] = (
    r"",
    r"null",
    r"nil",
    r"none",
    r"undefined",
    r"nan",
    r"anonymous",
    r"unknown",
    r"n/?a",
    r"guest",
    r"test",
    r"-?0+",
    r"-1",
    r"\[object object\]",
)

DEFAULT_BLOCKED_BY_TYPE: Mapping[str, tuple[str, ...]] = {
    "email": (
        r"(test|testing|email|user|noreply|no-reply|donotreply|do-not-reply|example|null|none)@.*",
        r".*@(test\.com|mailinator\.com|localhost(\.localdomain)?|.*\.invalid|.*\.test)",
    ),
    "phone": (r".*(\d)\1{6,}.*", r"\+?1234567\d*"),
}


@dataclass(frozen=True)
class IdentityConfig:
    identifiers: tuple[IdentifierSpec, ...] = DEFAULT_IDENTIFIERS
    # Highest priority first. Types missing here rank after the listed ones, in declaration order.
    priority: tuple[str, ...] = ("user_id", "email", "phone", "anonymous_id")
    # Most identifiers of a type one profile may hold; a link that would exceed it is refused.
    limits: Mapping[str, int] = field(default_factory=lambda: {"user_id": 1})
    default_limit: int = 5
    blocked_values: tuple[str, ...] = DEFAULT_BLOCKED_VALUES
    blocked_by_type: Mapping[str, tuple[str, ...]] = field(
        default_factory=lambda: dict(DEFAULT_BLOCKED_BY_TYPE)
    )
    # Region for phone numbers written without a country code (None: such numbers are ignored).
    default_phone_region: str | None = None
    # How many applied messageIds a profile remembers to drop redeliveries (kept in the item).
    dedup_window: int = 200
    # Bounded optimistic-locking retries per batch before an event is reported as failed.
    max_attempts: int = 5
    # Per-trait policy: "latest" (default, latest event time wins) or "first" (earliest wins).
    trait_policies: Mapping[str, str] = field(default_factory=dict)
    computed_traits: tuple[ComputedTrait, ...] = ()
    lifecycle: LifecycleConfig = field(default_factory=LifecycleConfig)

    def __post_init__(self) -> None:
        seen = set()
        for spec in self.identifiers:
            if spec.type in seen:
                raise InvalidConfig(f"identifier type {spec.type!r} declared twice")
            seen.add(spec.type)
        for name in ("user_id", "anonymous_id"):
            if name not in seen:
                raise InvalidConfig(f"identifier type {name!r} is required")
        for trait, policy in self.trait_policies.items():
            if policy not in ("latest", "first"):
                raise InvalidConfig(f"trait {trait!r}: policy must be 'latest' or 'first'")
        names = [c.name for c in self.computed_traits]
        if len(names) != len(set(names)):
            raise InvalidConfig("computed trait names must be unique")
        if self.dedup_window < 1:
            raise InvalidConfig("dedup_window must be at least 1")
        for pattern in (*self.blocked_values, *(p for ps in self.blocked_by_type.values() for p in ps)):
            try:
                re.compile(pattern)
            except re.error as exc:
                raise InvalidConfig(f"blocked value pattern {pattern!r}: {exc}") from exc

    # ------------------------------------------------------------------ derived
    @cached_property
    def types(self) -> tuple[str, ...]:
        return tuple(spec.type for spec in self.identifiers)

    @cached_property
    def spec_by_type(self) -> dict[str, IdentifierSpec]:
        return {spec.type: spec for spec in self.identifiers}

    @cached_property
    def rank(self) -> dict[str, int]:
        """Priority rank of each type (0 is highest)."""
        ordered = [t for t in self.priority if t in self.spec_by_type]
        ordered += [t for t in self.types if t not in ordered and t != "anonymous_id"]
        if "anonymous_id" not in ordered:
            ordered.append("anonymous_id")
        return {t: i for i, t in enumerate(ordered)}

    def limit(self, identifier_type: str) -> int:
        return int(self.limits.get(identifier_type, self.default_limit))

    @cached_property
    def _blocked_generic(self) -> re.Pattern[str]:
        return re.compile("|".join(f"(?:{p})" for p in self.blocked_values) or r"(?!)", re.IGNORECASE)

    @cached_property
    def _blocked_typed(self) -> dict[str, re.Pattern[str]]:
        return {
            t: re.compile("|".join(f"(?:{p})" for p in patterns), re.IGNORECASE)
            for t, patterns in self.blocked_by_type.items()
            if patterns
        }

    def blocking_rule(self, identifier_type: str, value: str) -> str | None:
        """The rule that blocks ``value`` for ``identifier_type``, or None if it may link."""
        if self._blocked_generic.fullmatch(value.strip()):
            return "blocked_value"
        typed = self._blocked_typed.get(identifier_type)
        if typed is not None and typed.fullmatch(value):
            return f"blocked_{identifier_type}"
        return None

    # ------------------------------------------------------------------ loading
    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> IdentityConfig:
        """Build from a plain mapping (e.g. parsed YAML); unknown keys are an error."""
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise InvalidConfig(f"unknown identity settings: {sorted(unknown)}")
        values: dict[str, Any] = {}
        for key, raw in data.items():
            if key == "identifiers":
                values[key] = _identifier_specs(raw)
            elif key in ("priority", "blocked_values"):
                values[key] = tuple(str(v) for v in raw)
            elif key == "blocked_by_type":
                values[key] = {str(t): tuple(str(p) for p in ps) for t, ps in raw.items()}
            elif key in ("limits", "trait_policies"):
                values[key] = dict(raw)
            elif key == "computed_traits":
                values[key] = tuple(_computed_trait(item) for item in raw)
            elif key == "lifecycle":
                values[key] = _lifecycle(raw)
            else:
                values[key] = raw
        return cls(**values)

    def with_(self, **changes: Any) -> IdentityConfig:
        return replace(self, **changes)


def _identifier_specs(raw: Any) -> tuple[IdentifierSpec, ...]:
    """Custom types are added to the defaults; redeclaring a default type replaces it."""
    specs = {spec.type: spec for spec in DEFAULT_IDENTIFIERS}
    for item in raw:
        try:
            paths = item["paths"] if "paths" in item else [item["path"]]
            spec = IdentifierSpec(
                str(item["type"]), tuple(str(p) for p in paths), str(item.get("normaliser", "plain"))
            )
        except (KeyError, TypeError) as exc:
            raise InvalidConfig(f"identifier declaration {item!r} needs type and path(s)") from exc
        specs[spec.type] = spec
    return tuple(specs.values())


def _computed_trait(item: Any) -> ComputedTrait:
    try:
        return ComputedTrait(
            name=str(item["name"]),
            kind=str(item["kind"]),
            event=item.get("event"),
            property=item.get("property"),
            type=str(item.get("type", "track")),
        )
    except (KeyError, TypeError, AttributeError) as exc:
        raise InvalidConfig(f"computed trait {item!r} needs name and kind") from exc


def _lifecycle(raw: Any) -> LifecycleConfig:
    if not isinstance(raw, Mapping):
        raise InvalidConfig("lifecycle must be a mapping")
    known = {f.name for f in fields(LifecycleConfig)}
    unknown = set(raw) - known
    if unknown:
        raise InvalidConfig(f"unknown lifecycle settings: {sorted(unknown)}")
    values: dict[str, Any] = {k: tuple(v) if k.endswith("_events") else int(v) for k, v in raw.items()}
    return LifecycleConfig(**values)


def load_identity_config(path: str | Path) -> IdentityConfig:
    """The configuration in a YAML file; a missing file gives the defaults."""
    import yaml

    path = Path(path)
    if not path.exists():
        return IdentityConfig()
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise InvalidConfig(f"{path.name}: not valid YAML: {exc}") from exc
    if not isinstance(data, Mapping):
        raise InvalidConfig(f"{path.name}: the top level must be a mapping")
    try:
        return IdentityConfig.from_dict(data)
    except InvalidConfig as exc:
        raise InvalidConfig(f"{path.name}: {exc.reason}") from exc
