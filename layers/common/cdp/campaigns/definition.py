"""Campaigns as code: one YAML file per campaign under ``campaigns/``, read with precise errors.

A campaign says who gets a message (its kind), on which channel, with which template, under which
consent purpose, how often a person may get it (frequency cap) and when not (quiet hours)::

    name: lapsed-winback
    kind: automated                    # automated | triggered | adhoc
    channel: email                     # a key of cdp.campaigns.channels.CHANNELS
    consent: email                     # the purpose a person must not have denied
    audience: {segment: lapsed-buyers, when: entry}        # automated / adhoc
    # trigger: {event: Checkout Started, where: [{property: currency, eq: EUR}],
    #           delay_minutes: 60, unless: [Order Completed]}   # triggered
    template:
      subject: "We miss you, {{ first_name }}"
      text: "Hi {{ first_name }}, ..."
      html: "<p>Hi {{ first_name }}, ...</p>"   # optional: the text, escaped, in paragraphs
      fallbacks: {first_name: there}             # optional: value of a missing trait
    frequency_cap: {max: 1, days: 7}    # optional (default 1 per 1 day)
    quiet_hours: {start: "21:00", end: "08:00", timezone: UTC}   # optional
    conversion: {event: Order Completed, within_days: 7}          # optional

A triggered campaign may post to a webhook instead of sending an email (``channel: webhook``, no
template; :mod:`cdp.activation.trigger_posts`)::

    channel: webhook
    webhook: {destination: crm-checkouts, properties: [currency, value]}

Every error raises :class:`cdp.errors.InvalidCampaign` as ``file:line: field: reason``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import time
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cdp.errors import InvalidCampaign
from cdp.marked_yaml import Ctx, load_marked

Kind = Literal["automated", "triggered", "adhoc"]
KINDS: tuple[str, ...] = ("automated", "triggered", "adhoc")
#: Channels a campaign may name; each has a sender in cdp.campaigns.channels (``email`` today).
CHANNELS: tuple[str, ...] = ("email", "webhook", "audience")
_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
_VAR_RE = re.compile(r"{{\s*([A-Za-z_][A-Za-z0-9_]*)")
_CLOCK_RE = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")
_FILTER_OPS = ("eq", "ne", "in", "gt", "gte", "lt", "lte")
#: Longest wait a trigger may declare (7 days): the delayed message hops through the queue.
MAX_DELAY_MINUTES = 7 * 24 * 60


@dataclass(frozen=True, slots=True)
class Template:
    subject: str
    text: str
    html: str | None = None
    fallbacks: dict[str, str] = field(default_factory=dict)

    def variables(self) -> frozenset[str]:
        return frozenset(_VAR_RE.findall(self.subject + self.text + (self.html or "")))


@dataclass(frozen=True, slots=True)
class FrequencyCap:
    max: int = 1
    days: int = 1


@dataclass(frozen=True, slots=True)
class QuietHours:
    start: time
    end: time
    timezone: str = "UTC"  # used when the person has no valid ``timezone`` trait

    def quiet_at(self, local: time) -> bool:
        if self.start <= self.end:
            return self.start <= local < self.end
        return local >= self.start or local < self.end  # over midnight


@dataclass(frozen=True, slots=True)
class PropertyFilter:
    property: str
    op: str
    value: Any


@dataclass(frozen=True, slots=True)
class Trigger:
    event: str
    where: tuple[PropertyFilter, ...] = ()
    delay_minutes: int = 0
    unless: tuple[str, ...] = ()  # events that, seen since the trigger, cancel the message

    def matches(self, event: Mapping[str, Any]) -> bool:
        if event.get("type") != "track" or event.get("event") != self.event:
            return False
        found = event.get("properties")
        properties: dict[str, Any] = found if isinstance(found, dict) else {}
        return all(_compare(f.op, properties.get(f.property), f.value) for f in self.where)


@dataclass(frozen=True, slots=True)
class Audience:
    segment: str
    when: Literal["entry", "schedule", "once"] = "entry"
    schedule: str | None = None


@dataclass(frozen=True, slots=True)
class Conversion:
    event: str
    within_days: int


@dataclass(frozen=True, slots=True)
class WebhookTarget:
    destination: str  # a ``type: webhook`` destination (config/destinations/)
    properties: tuple[str, ...] = ()  # event properties copied into the payload (never personal data)


#: A webhook campaign has no template: nothing is rendered for it.
NO_TEMPLATE = Template(subject="", text="")


@dataclass(frozen=True, slots=True)
class Campaign:
    name: str
    kind: Kind
    channel: str
    consent: str
    template: Template
    audience: Audience | None = None
    trigger: Trigger | None = None
    frequency_cap: FrequencyCap = field(default_factory=FrequencyCap)
    quiet_hours: QuietHours | None = None
    conversion: Conversion | None = None
    description: str = ""
    source: str = ""
    webhook: WebhookTarget | None = None  # channel webhook: where the trigger is posted


def _compare(op: str, actual: Any, expected: Any) -> bool:
    if op == "eq":
        return bool(actual == expected)
    if op == "ne":
        return bool(actual != expected)
    if op == "in":
        return actual in expected
    if not isinstance(actual, int | float) or isinstance(actual, bool):
        return False
    return {"gt": actual > expected, "gte": actual >= expected, "lt": actual < expected,
            "lte": actual <= expected}[op]


# ---------------------------------------------------------------- parsing

_TOP_KEYS = ("name", "description", "kind", "channel", "consent", "audience", "trigger", "template",
             "frequency_cap", "quiet_hours", "conversion", "webhook")


def parse_campaign(text: str, source_name: str = "<campaign>") -> Campaign:
    """Parse one campaign file; raise InvalidCampaign naming file, line and field on any problem."""
    doc = load_marked(text, source_name, InvalidCampaign)
    root = Ctx.root(source_name, doc, InvalidCampaign)
    if not isinstance(doc, dict):
        raise root.fail("a campaign must be a mapping with name, kind, channel, consent and template")
    _reject_unknown(doc, _TOP_KEYS, root)
    default_name = Path(source_name).stem if not source_name.startswith("<") else None
    name = doc.get("name", default_name)
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise root.child(doc, "name").fail(f"must be lower-case letters, digits, '-' or '_', got {name!r}")
    kind = _required(doc, "kind", root)
    if kind not in KINDS:
        raise root.child(doc, "kind").fail(f"must be one of {', '.join(KINDS)}, got {kind!r}")
    channel = _required(doc, "channel", root)
    if channel not in CHANNELS:
        raise root.child(doc, "channel").fail(f"must be one of {', '.join(CHANNELS)}, got {channel!r}")
    consent = _required(doc, "consent", root)
    if not isinstance(consent, str) or not consent.strip():
        raise root.child(doc, "consent").fail("must name a consent purpose such as 'email' or 'marketing'")
    audience = trigger = None
    if kind == "triggered":
        if "audience" in doc:
            raise root.child(doc, "audience").fail("a triggered campaign has a trigger, not an audience")
        trigger = _trigger(_required(doc, "trigger", root), root.child(doc, "trigger"))
    else:
        if "trigger" in doc:
            raise root.child(doc, "trigger").fail(f"an {kind} campaign has an audience, not a trigger")
        audience = _audience(_required(doc, "audience", root), root.child(doc, "audience"), kind)
    webhook = None
    if channel == "webhook":
        if kind != "triggered":
            raise root.child(doc, "channel").fail(
                "webhook is a channel of triggered campaigns; segment changes reach webhooks through "
                "config/destinations/")
        if "template" in doc:
            raise root.child(doc, "template").fail("a webhook campaign posts the trigger: no template")
        webhook = _webhook(_required(doc, "webhook", root), root.child(doc, "webhook"))
    elif "webhook" in doc:
        raise root.child(doc, "webhook").fail("only with channel: webhook")
    return Campaign(
        name=name, kind=kind, channel=channel, consent=consent.strip().lower(), webhook=webhook,
        template=NO_TEMPLATE if webhook else _template(_required(doc, "template", root), root.child(doc, "template")),
        audience=audience, trigger=trigger,
        frequency_cap=_cap(doc["frequency_cap"], root.child(doc, "frequency_cap")) if "frequency_cap" in doc
        else FrequencyCap(),
        quiet_hours=_quiet(doc["quiet_hours"], root.child(doc, "quiet_hours")) if "quiet_hours" in doc else None,
        conversion=_conversion(doc["conversion"], root.child(doc, "conversion")) if "conversion" in doc else None,
        description=str(doc.get("description", "")), source=source_name)


def load_campaigns(directory: str | Path) -> list[Campaign]:
    """Every ``*.yaml`` campaign under ``directory`` (sorted by name); names are unique. None if absent."""
    base = Path(directory)
    if not base.is_dir():
        return []
    seen: dict[str, str] = {}
    found = []
    for path in sorted(p for p in base.rglob("*") if p.suffix in (".yaml", ".yml") and p.is_file()):
        campaign = parse_campaign(path.read_text(encoding="utf-8"), str(path))
        if campaign.name in seen:
            raise InvalidCampaign(f"{path}:1: name: campaign {campaign.name!r} is already defined in "
                                  f"{seen[campaign.name]}", file=str(path), line=1, field="name")
        seen[campaign.name] = str(path)
        found.append(campaign)
    return sorted(found, key=lambda c: c.name)


def check_segments(campaigns: Iterable[Campaign], segments: Iterable[str]) -> None:
    """Raise InvalidCampaign for an audience naming a segment that is not defined."""
    known = set(segments)
    for campaign in campaigns:
        if campaign.audience and campaign.audience.segment not in known:
            raise InvalidCampaign(f"{campaign.source}:1: audience.segment: no segment named "
                                  f"{campaign.audience.segment!r}", file=campaign.source, line=1,
                                  field="audience.segment")


def check_unless(campaigns: Iterable[Campaign], computed_traits: Iterable[Any]) -> None:
    """Raise InvalidCampaign for an ``unless`` event no ``last_time`` computed trait keeps.

    When the wait ends, whether the event happened since the trigger is read from that trait on the
    profile (config/identity.yaml), which unify keeps for every event, in any order, across merges.
    """
    keeps = {t.event for t in computed_traits if t.kind == "last_time" and t.type == "track"}
    for campaign in campaigns:
        for event in campaign.trigger.unless if campaign.trigger else ():
            if event not in keeps:
                raise InvalidCampaign(
                    f"{campaign.source}:1: trigger.unless: {event!r} needs a computed trait "
                    f"{{kind: last_time, event: {event}}} in config/identity.yaml (the check when the wait "
                    f"ends reads it from the profile)", file=campaign.source, line=1, field="trigger.unless")


def find_campaign(campaigns: Iterable[Campaign], name: str) -> Campaign:
    for campaign in campaigns:
        if campaign.name == name:
            return campaign
    raise InvalidCampaign(f"no campaign named {name!r}", field="name")


def _required(doc: dict, key: str, ctx: Ctx) -> Any:
    if key not in doc:
        raise ctx.fail(f"{key}: is required")
    return doc[key]


def _reject_unknown(mapping: dict, allowed: Iterable[str], ctx: Ctx) -> None:
    allowed = tuple(allowed)
    for key in mapping:
        if key not in allowed:
            raise ctx.child(mapping, key).fail(f"unknown field; expected one of {', '.join(allowed)}")


def _mapping(node: Any, ctx: Ctx, allowed: Iterable[str]) -> dict:
    if not isinstance(node, dict):
        raise ctx.fail("must be a mapping")
    _reject_unknown(node, allowed, ctx)
    return node


def _text(node: dict, key: str, ctx: Ctx, *, required: bool = True) -> str | None:
    if key not in node:
        if required:
            raise ctx.fail(f"{key}: is required")
        return None
    value = node[key]
    if not isinstance(value, str) or not value.strip():
        raise ctx.child(node, key).fail("must be a non-empty string")
    return value


def _positive(node: dict, key: str, ctx: Ctx, default: int, *, zero: bool = False, most: int | None = None) -> int:
    value = node.get(key, default)
    if not isinstance(value, int) or isinstance(value, bool) or value < (0 if zero else 1) \
            or (most is not None and value > most):
        bound = f" and at most {most}" if most is not None else ""
        raise ctx.child(node, key).fail(f"must be a whole number {'>= 0' if zero else '>= 1'}{bound}, got {value!r}")
    return value


def _template(node: Any, ctx: Ctx) -> Template:
    node = _mapping(node, ctx, ("subject", "text", "html", "fallbacks"))
    fallbacks = node.get("fallbacks", {})
    if not isinstance(fallbacks, dict) or not all(isinstance(v, str) and v for v in fallbacks.values()):
        raise ctx.child(node, "fallbacks").fail("must map trait names to non-empty text")
    template = Template(subject=str(_text(node, "subject", ctx)), text=str(_text(node, "text", ctx)),
                        html=_text(node, "html", ctx, required=False), fallbacks=dict(fallbacks))
    from cdp.campaigns.render import check_source

    for key in ("subject", "text", "html"):
        problem = check_source(node[key]) if key in node else None
        if problem:
            raise ctx.child(node, key).fail(problem)
    return template


def _audience(node: Any, ctx: Ctx, kind: str) -> Audience:
    node = _mapping(node, ctx, ("segment", "when", "schedule"))
    segment = str(_text(node, "segment", ctx))
    if kind == "adhoc":
        if "when" in node or "schedule" in node:
            raise ctx.fail("an adhoc campaign is sent once, by `cdp campaigns send`: no when or schedule")
        return Audience(segment=segment, when="once")
    when = node.get("when", "entry")
    if when not in ("entry", "schedule"):
        raise ctx.child(node, "when").fail(f"must be 'entry' or 'schedule', got {when!r}")
    schedule = None
    if when == "schedule":
        from cdp.segments.schedule import ScheduleError, validate_schedule

        schedule = _text(node, "schedule", ctx)
        try:
            validate_schedule(str(schedule))
        except ScheduleError as exc:
            raise ctx.child(node, "schedule").fail(str(exc)) from exc
    elif "schedule" in node:
        raise ctx.child(node, "schedule").fail("only with when: schedule")
    return Audience(segment=segment, when=when, schedule=schedule)


def _trigger(node: Any, ctx: Ctx) -> Trigger:
    node = _mapping(node, ctx, ("event", "where", "delay_minutes", "unless"))
    where_node = node.get("where", [])
    if not isinstance(where_node, list):
        raise ctx.child(node, "where").fail("must be a list of {property: NAME, <op>: VALUE}")
    filters = []
    for i, item in enumerate(where_node):
        item_ctx = ctx.child(node, "where").child(where_node, i)
        item = _mapping(item, item_ctx, ("property", *_FILTER_OPS))
        ops = [op for op in _FILTER_OPS if op in item]
        if len(ops) != 1:
            raise item_ctx.fail(f"needs a property and exactly one of {', '.join(_FILTER_OPS)}")
        if ops[0] == "in" and not isinstance(item[ops[0]], list):
            raise item_ctx.child(item, "in").fail("must be a list")
        filters.append(PropertyFilter(str(_text(item, "property", item_ctx)), ops[0], item[ops[0]]))
    unless = node.get("unless", [])
    if not isinstance(unless, list) or not all(isinstance(e, str) and e for e in unless):
        raise ctx.child(node, "unless").fail("must be a list of event names")
    return Trigger(event=str(_text(node, "event", ctx)), where=tuple(filters),
                   delay_minutes=_positive(node, "delay_minutes", ctx, 0, zero=True, most=MAX_DELAY_MINUTES),
                   unless=tuple(unless))


def _webhook(node: Any, ctx: Ctx) -> WebhookTarget:
    from cdp.activation.trigger_posts import MAX_PROPERTIES, personal_words

    node = _mapping(node, ctx, ("destination", "properties"))
    destination = str(_text(node, "destination", ctx))
    if not _NAME_RE.match(destination):
        raise ctx.child(node, "destination").fail(f"must name a webhook destination, got {destination!r}")
    names = node.get("properties", [])
    if not isinstance(names, list) or len(names) > MAX_PROPERTIES or not all(
            isinstance(n, str) and n for n in names):
        raise ctx.child(node, "properties").fail(f"must be a list of at most {MAX_PROPERTIES} event property names")
    for i, name in enumerate(names):
        words = personal_words(name)
        if words:
            raise ctx.child(node, "properties").child(names, i).fail(
                f"{name!r} looks like personal data ({', '.join(sorted(words))}): a webhook carries the "
                "profile id and non-personal event properties only")
    return WebhookTarget(destination=destination, properties=tuple(names))


def check_destinations(campaigns: Iterable[Campaign], destinations: Mapping[str, Any]) -> None:
    """Raise InvalidCampaign for a webhook campaign naming no ``type: webhook`` destination."""
    for campaign in campaigns:
        if campaign.webhook is None:
            continue
        found = destinations.get(campaign.webhook.destination)
        if found is None or getattr(found, "type", None) != "webhook":
            raise InvalidCampaign(
                f"{campaign.source}:1: webhook.destination: no webhook destination named "
                f"{campaign.webhook.destination!r} (config/destinations/)", file=campaign.source, line=1,
                field="webhook.destination")


def _cap(node: Any, ctx: Ctx) -> FrequencyCap:
    node = _mapping(node, ctx, ("max", "days"))
    return FrequencyCap(max=_positive(node, "max", ctx, 1), days=_positive(node, "days", ctx, 1, most=366))


def _clock(node: dict, key: str, ctx: Ctx) -> time:
    value = node.get(key)
    match = _CLOCK_RE.match(value) if isinstance(value, str) else None
    if not match:
        raise (ctx.child(node, key) if key in node else ctx).fail(f"{key}: must be a time 'HH:MM', got {value!r}")
    return time(int(match.group(1)), int(match.group(2)))


def _quiet(node: Any, ctx: Ctx) -> QuietHours:
    node = _mapping(node, ctx, ("start", "end", "timezone"))
    zone = node.get("timezone", "UTC")
    if not valid_timezone(zone):
        raise ctx.child(node, "timezone").fail(f"not an IANA time zone: {zone!r}")
    start, end = _clock(node, "start", ctx), _clock(node, "end", ctx)
    if start == end:
        raise ctx.fail("start and end are the same time")
    return QuietHours(start=start, end=end, timezone=zone)


def _conversion(node: Any, ctx: Ctx) -> Conversion:
    node = _mapping(node, ctx, ("event", "within_days"))
    return Conversion(event=str(_text(node, "event", ctx)),
                      within_days=_positive(node, "within_days", ctx, 7, most=90))


def valid_timezone(zone: Any) -> bool:
    if not isinstance(zone, str) or not zone or len(zone) > 64:
        return False
    try:
        ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True
