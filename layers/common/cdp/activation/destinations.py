"""Destinations as code (``config/destinations/*.yaml``) and the delivery of changes to them.

A destination names the segments it follows and where their changes go: a Meta Custom Audience, a
Google Customer Match list or a webhook. Each file is validated with file:line errors::

    name: meta-repeat-buyers        # unique; defaults to the file name
    type: meta_audience             # meta_audience | google_audience | webhook
    segments: [repeat-buyers]
    secret: meta-ads                # Secrets Manager: <stack>/destinations/meta-ads
    audience_id: "23851234567890"   # meta_audience
    # google_audience: account_id, user_list_id (and optionally account_type: GOOGLE_ADS)
    # webhook: url (https), changes: [entered, exited]; segments may be absent when only
    # triggered campaigns (``channel: webhook``) post to it

Delivery (the destinations queue, one consumer): a change from the segment publisher is fanned out
to every destination that follows its segment; each (destination, change) is then handled on its
own, so one failing destination never delays another. A failure is re-queued as a delivery for that
destination alone, after a jittered backoff (a delay over SQS's 15-minute maximum is carried as
``not_before`` and the message re-queued until then); a delivery that gives up or is refused for
good goes to the dead-letter store (``cdp webhooks replay``). A consent signal from unify
(:class:`Reconcile`) is fanned out to every ad audience, which then holds the person or not.
"""

from __future__ import annotations

import contextlib
import random
import re
import secrets
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

from cdp.activation import EffectLedger
from cdp.activation.audiences import AudiencePlatform
from cdp.activation.audiences.holdings import Holdings
from cdp.activation.audiences.sync import ProfileViews, SyncReport, audience_key, reconcile, sync_changes
from cdp.activation.trigger_posts import KIND as TRIGGER_POST
from cdp.activation.trigger_posts import TriggerPost
from cdp.activation.webhooks import WEBHOOK_SCHEDULE, HttpPoster, Webhook, backoff
from cdp.errors import CdpError, DestinationRefused, InvalidConfig, StoreError
from cdp.marked_yaml import load_marked
from cdp.segments.membership import MembershipChange, MembershipStore

KINDS = ("meta_audience", "google_audience", "webhook")
_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
_REQUIRED = {"meta_audience": ("audience_id",), "google_audience": ("account_id", "user_list_id"),
             "webhook": ("url",)}
_OPTIONAL = {"meta_audience": (), "google_audience": ("account_type",), "webhook": ("changes",)}
_COMMON = ("name", "type", "segments", "secret", "description")
#: Ad platforms: retried for about three hours, then dead-lettered (a resync repairs the audience).
AUDIENCE_SCHEDULE: tuple[int, ...] = (30, 120, 600, 1800, 3600, 7200)
#: SQS DelaySeconds is at most 15 minutes.
MAX_QUEUE_DELAY_S = 900


@dataclass(frozen=True, slots=True)
class Destination:
    name: str
    type: str
    segments: tuple[str, ...]
    secret: str
    options: Mapping[str, str] = field(default_factory=dict)
    changes: tuple[str, ...] = ("entered", "exited")
    source: str = ""
    # The line of each segment name in its file (for errors found after parsing).
    segment_lines: tuple[int, ...] = field(default=(), compare=False)

    def follows(self, change: MembershipChange) -> bool:
        return change.segment in self.segments and change.change.value in self.changes


def parse_destination(text: str, source_name: str = "<destination>") -> Destination:
    doc = load_marked(text, source_name, InvalidConfig)

    def fail(key: str | None, reason: str) -> InvalidConfig:
        line = getattr(doc, "child_lines", {}).get(key, getattr(doc, "line", 1)) if key else getattr(doc, "line", 1)
        where = f"{key}: " if key else ""
        return InvalidConfig(f"{source_name}:{line}: {where}{reason}", file=source_name, line=line, field=key)

    if not isinstance(doc, dict):
        raise InvalidConfig(f"{source_name}:1: a destination must be a mapping with name, type and segments",
                            file=source_name, line=1)
    kind = doc.get("type")
    if kind not in KINDS:
        raise fail("type" if "type" in doc else None, f"must be one of {', '.join(KINDS)} (got {kind!r})")
    allowed = _COMMON + _REQUIRED[kind] + _OPTIONAL[kind]
    for key in doc:
        if key not in allowed:
            raise fail(key, f"unknown field for a {kind} (allowed: {', '.join(allowed)})")
    default_name = Path(source_name).stem if not source_name.startswith("<") else None
    name = doc.get("name", default_name)
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise fail("name", f"must be lower-case letters, digits, '-' or '_', got {name!r}")
    # A webhook may serve triggered campaigns only (``channel: webhook`` names it): no segments then.
    absent = kind == "webhook" and "segments" not in doc
    segments = [] if absent else doc.get("segments")
    if not isinstance(segments, list) or (not segments and not absent) or not all(
            isinstance(s, str) and s for s in segments):
        raise fail("segments", "must be a non-empty list of segment names")
    secret = doc.get("secret")
    if not isinstance(secret, str) or not _NAME_RE.match(secret):
        raise fail("secret", "must name the destination's secret (lower-case letters, digits, '-' or '_')")
    options: dict[str, str] = {}
    for key in _REQUIRED[kind]:
        value = doc.get(key)
        if not isinstance(value, str | int) or isinstance(value, bool) or not str(value).strip():
            raise fail(key if key in doc else None, f"{key}: is required for a {kind}" if key not in doc
                       else "must be a string")
        options[key] = str(value).strip()
    if kind == "google_audience":
        options["account_type"] = str(doc.get("account_type", "GOOGLE_ADS"))
    changes: tuple[str, ...] = ("entered", "exited")
    if kind == "webhook":
        url = options["url"]
        if not (url.startswith("https://") or url.startswith("http://127.0.0.1")):
            raise fail("url", "must be an https:// URL (http://127.0.0.1 is allowed for local runs only)")
        raw = doc.get("changes", list(changes))
        if not isinstance(raw, list) or not raw or any(c not in ("entered", "exited") for c in raw):
            raise fail("changes", "must be a list of 'entered' and/or 'exited'")
        changes = tuple(raw)
    elif (kind == "meta_audience" and not options["audience_id"].isdigit()) or (
            kind == "google_audience" and not options["account_id"].replace("-", "").isdigit()):
        key = "audience_id" if kind == "meta_audience" else "account_id"
        raise fail(key, "must be the platform's numeric id")
    lines = getattr(segments, "child_lines", {})
    return Destination(name=name, type=kind, segments=tuple(segments), secret=secret, options=options,
                       changes=changes, source=source_name,
                       segment_lines=tuple(lines.get(i, 1) for i in range(len(segments))))


def load_destinations(directory: str | Path | Sequence[str | Path], *,
                      segments: Iterable[str] | None = None) -> dict[str, Destination]:
    """Every ``*.yaml`` under ``directory`` (or each of several) by name; a missing directory is no
    destinations.

    With ``segments`` (the defined segment names), a destination naming an unknown segment fails.
    """
    bases = [Path(directory)] if isinstance(directory, str | Path) else [Path(d) for d in directory]
    known = set(segments) if segments is not None else None
    found: dict[str, Destination] = {}
    files = [p for base in bases if base.is_dir()
             for p in sorted(p for p in base.rglob("*") if p.suffix in (".yaml", ".yml") and p.is_file())]
    for path in files:
        text = path.read_text(encoding="utf-8")
        destination = parse_destination(text, str(path))
        if destination.name in found:
            raise InvalidConfig(f"{path}:1: name: {destination.name!r} is already defined in "
                                f"{found[destination.name].source}", file=str(path), line=1)
        if known is not None:
            for index, segment in enumerate(destination.segments):
                if segment not in known:
                    line = destination.segment_lines[index] if index < len(destination.segment_lines) else 1
                    raise InvalidConfig(f"{path}:{line}: segments: no segment named {segment!r}",
                                        file=str(path), line=line)
        found[destination.name] = destination
    return found


# ---------------------------------------------------------------- delivery


@dataclass(frozen=True, slots=True)
class Delivery:
    """One unit of work on the destinations queue: a change, for every destination or one of them."""

    change: MembershipChange
    destination: str | None = None
    attempt: int = 0  # failed attempts so far
    not_before: float = 0.0
    reason: str = ""

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {**self.change.to_dict()}
        if self.destination is not None:
            data.update(destination=self.destination, attempt=self.attempt, not_before=self.not_before)
        if self.reason:
            data["reason"] = self.reason
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Delivery:
        destination = data.get("destination")
        return cls(change=MembershipChange.from_dict(data),
                   destination=str(destination) if destination is not None else None,
                   attempt=int(data.get("attempt", 0)), not_before=float(data.get("not_before", 0.0)),
                   reason=str(data.get("reason", "")))


@dataclass(frozen=True, slots=True)
class Reconcile:
    """A person's ``ads`` (or ``marketing``) consent may have changed: make every ad audience hold
    them or not, from their current membership and consent (unify sends it; see
    :func:`cdp.activation.audiences.sync.reconcile`). Idempotent, so a repeated signal is harmless."""

    profile_id: str
    at: str = ""
    destination: str | None = None
    attempt: int = 0
    not_before: float = 0.0
    reason: str = ""

    KIND = "reconcile"

    @property
    def dedupe_key(self) -> str:
        return f"reconcile|{self.profile_id}"

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"kind": self.KIND, "profile_id": self.profile_id, "at": self.at}
        if self.destination is not None:
            data.update(destination=self.destination, attempt=self.attempt, not_before=self.not_before)
        if self.reason:
            data["reason"] = self.reason
        return data


def parse_delivery(data: Mapping[str, Any]) -> Delivery | Reconcile | TriggerPost:
    """A destinations-queue message: a membership change (or its re-try), a consent signal, or a
    triggered campaign's post to its webhook (:class:`TriggerPost`)."""
    if data.get("kind") == TRIGGER_POST:
        return TriggerPost.from_dict(data)
    if data.get("kind") == Reconcile.KIND:
        profile_id = data["profile_id"]
        if not isinstance(profile_id, str) or not profile_id:
            raise ValueError("a reconcile message needs a profile_id")
        destination = data.get("destination")
        return Reconcile(profile_id, str(data.get("at", "")),
                         str(destination) if destination is not None else None, int(data.get("attempt", 0)),
                         float(data.get("not_before", 0.0)), str(data.get("reason", "")))
    return Delivery.from_dict(data)


class DeliveryQueue(Protocol):
    def send(self, items: Sequence[tuple[Delivery | Reconcile, int]]) -> None:
        """Queue each delivery after its delay in seconds (at most 900)."""
        ...


class DeadLetters(Protocol):
    def put(self, items: Sequence[Delivery | Reconcile]) -> None: ...


class DestinationState(Protocol):
    def disabled(self, name: str) -> str | None:
        """Why the destination is switched off, or None."""
        ...

    def disable(self, name: str, reason: str) -> None: ...

    def enable(self, name: str) -> None: ...


class InMemoryDestinationState:
    def __init__(self) -> None:
        self.off: dict[str, str] = {}

    def disabled(self, name: str) -> str | None:
        return self.off.get(name)

    def disable(self, name: str, reason: str) -> None:
        self.off[name] = reason

    def enable(self, name: str) -> None:
        self.off.pop(name, None)


@dataclass
class DestinationReport:
    pushed: int = 0  # audience adds + removes, webhook posts accepted
    added: int = 0
    removed: int = 0
    posted: int = 0
    duplicates: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    retried: int = 0
    dead: dict[str, int] = field(default_factory=dict)

    def skip(self, reason: str, n: int = 1) -> None:
        self.skipped[reason] = self.skipped.get(reason, 0) + n

    def died(self, reason: str, n: int = 1) -> None:
        self.dead[reason] = self.dead.get(reason, 0) + n


@dataclass
class DeliveryReport:
    by_destination: dict[str, DestinationReport] = field(default_factory=dict)
    deferred: int = 0
    # Input items (their index in ``deliver``'s items) not done, with why: reported as the batch's
    # item failures, so SQS delivers their messages again and the rest of the batch is deleted.
    failed: dict[int, str] = field(default_factory=dict)

    def of(self, name: str) -> DestinationReport:
        return self.by_destination.setdefault(name, DestinationReport())


class Targets(Protocol):
    """Builds the client of a destination (reads its secret); cached by the caller's adapter."""

    def audience(self, destination: Destination) -> AudiencePlatform: ...

    def webhook(self, destination: Destination) -> Webhook: ...


@dataclass
class DeliveryContext:
    destinations: Mapping[str, Destination]
    targets: Targets
    profiles: ProfileViews
    membership: MembershipStore
    ledger: EffectLedger
    queue: DeliveryQueue
    dead_letters: DeadLetters
    state: DestinationState
    transport: HttpPoster
    rand: Callable[[], float] = random.random
    # Past this (``clock`` seconds), webhooks not yet posted are re-queued at once instead: a batch of
    # slow endpoints must not run into the function's timeout (which would repeat the whole batch).
    deadline: float | None = None
    clock: Callable[[], float] = time.monotonic
    # What each ad audience holds (the keys sent per person); None: not recorded (older tests).
    holdings: Holdings | None = None
    # Each backoff step cut to this many seconds (Settings.destination_retry_max_delay_seconds);
    # None: the schedules as they are.
    max_retry_delay: float | None = None


def webhook_key(destination: str, change: MembershipChange) -> str:
    return f"wh#{destination}#{change.dedupe_key}"


def expand(items: Iterable[Delivery | Reconcile], destinations: Mapping[str, Destination]) -> list[Any]:
    """Changes from the publisher, one delivery per destination that follows them; a consent signal,
    one per ad audience."""
    out: list[Any] = []
    for item in items:
        if item.destination is not None:
            out.append(item)
        elif isinstance(item, Reconcile):
            out.extend(replace(item, destination=d.name) for d in destinations.values() if d.type != "webhook")
        else:
            out.extend(Delivery(item.change, d.name) for d in destinations.values() if d.follows(item.change))
    return out


def deliver(items: Sequence[Delivery | Reconcile], ctx: DeliveryContext, *, now: float,
            report: DeliveryReport | None = None) -> DeliveryReport:
    """Hand every delivery to its destination; failures are re-queued or dead-lettered, never raised.

    An item whose work could not be finished or recorded (a destination's store calls failed, or its
    retry or dead letter could not be written) is listed in ``report.failed`` by its index; the
    others are done. Items are independent: a failed one does not hold back those after it (the
    queue promises no order, and each change is checked against current membership before it is sent).
    """
    report = report if report is not None else DeliveryReport()
    later: list[tuple[Any, int]] = []
    dead: list[Any] = []
    # What each queued retry or dead letter owes to the input items it came from.
    later_from: list[int] = []
    dead_from: list[int] = []
    by_destination: dict[str, list[tuple[int, Any]]] = {}
    for index, source in enumerate(items):
        for item in expand([source], ctx.destinations):
            assert item.destination is not None
            if item.destination not in ctx.destinations:
                report.of(item.destination).skip("unknown_destination")
                continue
            if isinstance(item, TriggerPost) and ctx.destinations[item.destination].type != "webhook":
                report.of(item.destination).skip("not_a_webhook")
                continue
            if item.not_before > now:
                later.append((item, int(min(MAX_QUEUE_DELAY_S, max(1, item.not_before - now)))))
                later_from.append(index)
                report.deferred += 1
                continue
            by_destination.setdefault(item.destination, []).append((index, item))
    for name, pairs in by_destination.items():
        destination = ctx.destinations[name]
        mine = report.of(name)
        batch = [item for _, item in pairs]
        sources = [index for index, _ in pairs]
        n_later, n_dead = len(later), len(dead)
        failed: list[tuple[Delivery, str]] = []  # webhooks: the changes not done, one by one
        try:
            signals: list[Any] = [i for i in batch if isinstance(i, Reconcile)]
            if signals:
                _reconcile_people(destination, signals, ctx, now, mine, later, dead)
                batch = [i for i in batch if not isinstance(i, Reconcile)]
            if batch and destination.type == "webhook":
                _deliver_webhooks(destination, batch, ctx, now, mine, later, dead, failed)
            elif batch:
                _deliver_audience(destination, batch, ctx, now, mine, later, dead)
        except Exception as exc:  # noqa: BLE001 - the batch's edge: any failure is this group's alone
            # Retries already queued by this group are dropped: its items come back whole.
            del later[n_later:], dead[n_dead:]
            for index in sources:
                report.failed.setdefault(index, f"{name}: {type(exc).__name__}: {exc}")
            continue
        for index, why in zip(_origins(failed, pairs), (why for _, why in failed), strict=True):
            report.failed.setdefault(index, f"{name}: {why}")
        later_from += _origins(later[n_later:], pairs)
        dead_from += _origins(dead[n_dead:], pairs)
    if later:
        try:
            ctx.queue.send(later)
        except Exception as exc:  # noqa: BLE001 - not recorded: the items' messages must come back
            report.failed.update((i, f"re-queue: {type(exc).__name__}: {exc}") for i in later_from)
    if dead:
        try:
            ctx.dead_letters.put(dead)
        except Exception as exc:  # noqa: BLE001
            report.failed.update((i, f"dead letter: {type(exc).__name__}: {exc}") for i in dead_from)
    return report


def _origins(made: Sequence[Any], pairs: Sequence[tuple[int, Any]]) -> list[int]:
    """The input index of each retry or dead letter a destination's group produced (same change)."""
    by_change = {_key(item): index for index, item in pairs}
    return [by_change[_key(entry[0] if isinstance(entry, tuple) else entry)] for entry in made]


def _key(item: Any) -> str:
    change = getattr(item, "change", item)  # a Reconcile is its own key
    return str(change.dedupe_key)


def _retry(item: Any, schedule: tuple[int, ...], ctx: DeliveryContext, now: float, action: str,
           retry_after: float | None, report: DestinationReport, later: list[tuple[Any, int]],
           dead: list[Any]) -> None:
    attempt = item.attempt + 1
    delay = backoff(attempt, schedule, retry_after=retry_after, rand=ctx.rand, max_step=ctx.max_retry_delay)
    if delay is None:
        dead.append(replace(item, attempt=attempt, not_before=0.0, reason=f"gave_up:{action}"))
        report.died("gave_up")
        return
    report.retried += 1
    later.append((replace(item, attempt=attempt, not_before=now + delay, reason=action),
                  int(min(MAX_QUEUE_DELAY_S, max(1, delay)))))


def _reconcile_people(destination: Destination, signals: list[Reconcile], ctx: DeliveryContext, now: float,
                      report: DestinationReport, later: list[tuple[Any, int]], dead: list[Any]) -> None:
    """Consent signals for one ad audience: each person added or removed as they now should be."""
    if ctx.holdings is None:
        report.skip("no_holdings", len(signals))
        return
    try:
        platform = ctx.targets.audience(destination)
        done = reconcile(destination.name, destination.segments, [s.profile_id for s in signals],
                         platform=platform, profiles=ctx.profiles, membership=ctx.membership,
                         holdings=ctx.holdings, session_id=secrets.randbits(60),
                         # Holdings are written before an add: one that failed is recorded but
                         # maybe not applied, so a wanted person is always sent (a no-op if held).
                         resend=True)
    except InvalidConfig as exc:
        dead.extend(replace(i, reason=f"refused:{exc.code}") for i in signals)
        report.died("refused", len(signals))
        return
    except DestinationRefused as exc:
        if exc.action == "abort":
            dead.extend(replace(i, attempt=i.attempt + 1, reason=f"refused:{exc.details.get('code')}") for i in signals)
            report.died("refused", len(signals))
            return
        for item in signals:
            _retry(item, AUDIENCE_SCHEDULE, ctx, now, exc.action, exc.retry_after, report, later, dead)
        return
    except StoreError as exc:
        if not exc.retryable:
            dead.extend(replace(i, reason="no_credentials") for i in signals)
            report.died("no_credentials", len(signals))
            return
        for item in signals:
            _retry(item, AUDIENCE_SCHEDULE, ctx, now, "retry", None, report, later, dead)
        return
    report.added += done.sent
    report.removed += done.removed
    report.pushed += done.sent + done.removed
    for reason, n in done.skipped.items():
        report.skip(reason, n)


def _deliver_audience(destination: Destination, batch: list[Delivery], ctx: DeliveryContext, now: float,
                      report: DestinationReport, later: list[tuple[Delivery, int]], dead: list[Delivery]) -> None:
    by_key = {item.change.dedupe_key: item for item in batch}
    try:
        platform = ctx.targets.audience(destination)
        sync = sync_changes(destination.name, [i.change for i in batch], platform=platform,
                            profiles=ctx.profiles, membership=ctx.membership, ledger=ctx.ledger,
                            report=SyncReport(), holdings=ctx.holdings)
    except InvalidConfig as exc:  # a malformed secret: nothing will go until it is fixed
        dead.extend(Delivery(i.change, i.destination, i.attempt, 0.0, f"refused:{exc.code}") for i in batch)
        report.died("refused", len(batch))
        return
    except StoreError as exc:  # the secret or the profiles could not be read
        if not exc.retryable:  # e.g. no such secret: dead-lettered at once, replayed once it exists
            dead.extend(Delivery(i.change, i.destination, i.attempt, 0.0, "no_credentials") for i in batch)
            report.died("no_credentials", len(batch))
            return
        for item in batch:
            _retry(item, AUDIENCE_SCHEDULE, ctx, now, "retry", None, report, later, dead)
        return
    report.added += len(sync.added)
    report.removed += len(sync.removed)
    report.pushed += len(sync.added) + len(sync.removed)
    report.duplicates += len(sync.duplicates)
    for reason in sync.skipped.values():
        report.skip(reason)
    for item in batch:
        code = sync.failed.get(audience_key(destination.name, item.change))
        if code is not None:
            dead.append(Delivery(item.change, item.destination, item.attempt + 1, 0.0, f"refused:{code}"))
            report.died("refused")
    for change in sync.retry:
        _retry(by_key[change.dedupe_key], AUDIENCE_SCHEDULE, ctx, now, sync.retry_action or "retry",
               sync.retry_after, report, later, dead)


def _deliver_webhooks(destination: Destination, batch: list[Delivery], ctx: DeliveryContext, now: float,
                      report: DestinationReport, later: list[tuple[Delivery, int]], dead: list[Delivery],
                      failed: list[tuple[Delivery, str]] | None = None) -> None:
    off = ctx.state.disabled(destination.name)
    if off is not None:
        dead.extend(replace(i, not_before=0.0, reason="disabled") for i in batch)
        report.died("disabled", len(batch))
        return
    try:
        hook = ctx.targets.webhook(destination)
    except InvalidConfig as exc:  # a malformed secret or an unsafe URL: nothing will ever go
        dead.extend(replace(i, not_before=0.0, reason=f"refused:{exc.code}") for i in batch)
        report.died("refused", len(batch))
        return
    except StoreError as exc:
        if not exc.retryable:
            dead.extend(replace(i, not_before=0.0, reason="no_credentials") for i in batch)
            report.died("no_credentials", len(batch))
            return
        for item in batch:
            _retry(item, WEBHOOK_SCHEDULE, ctx, now, "retry", None, report, later, dead)
        return
    for index, item in enumerate(batch):
        if ctx.deadline is not None and ctx.clock() > ctx.deadline:
            later.extend((i, 0) for i in batch[index:])  # same attempt: not a failure
            report.skip("deferred", len(batch) - index)
            return
        try:
            if _post_webhook(destination, hook, item, batch[index:], ctx, now, report, later, dead):
                return  # the destination is switched off: the rest was dead-lettered
        except Exception as exc:  # noqa: BLE001 - this change alone is not done; the next ones go on
            if failed is None:
                raise
            failed.append((item, f"{type(exc).__name__}: {exc}"))


def _post_webhook(destination: Destination, hook: Webhook, item: Delivery, rest: list[Delivery],
                  ctx: DeliveryContext, now: float, report: DestinationReport,
                  later: list[tuple[Delivery, int]], dead: list[Delivery]) -> bool:
    """Claim, post and record one change (or trigger post); True when the destination was switched off (410)."""
    if isinstance(item, TriggerPost):
        key = f"wh#{destination.name}#{item.dedupe_key}"
        why = _trigger_post_refused(item, ctx)
        if why:  # consent withdrawn (or the person erased) since the campaign decided: nothing posted
            report.skip(why)
            return False
    else:
        key = webhook_key(destination.name, item.change)
    # A failed claim raises: this change alone comes back with SQS's redelivery (a batch item
    # failure), not with the webhook's schedule, whose second step is already 5 minutes.
    claim = ctx.ledger.claim(key)
    if claim == "pending":
        _retry(item, WEBHOOK_SCHEDULE, ctx, now, "in_flight", None, report, later, dead)
        return False
    if claim != "acquired":
        report.duplicates += 1
        return False
    try:
        msg_id = hook.post(item if isinstance(item, TriggerPost) else item.change, ctx.transport, now=int(now))
    except DestinationRefused as exc:
        if exc.action in ("retry", "slow_down"):
            ctx.ledger.release(key)  # the receiver dedupes on webhook-id: a repeat is harmless
            _retry(item, WEBHOOK_SCHEDULE, ctx, now, exc.action, exc.retry_after, report, later, dead)
            return False
        if exc.action == "disable":
            ctx.ledger.release(key)
            ctx.state.disable(destination.name, f"410 Gone at {int(now)}")
            dead.extend(replace(i, not_before=0.0, reason="disabled") for i in rest)
            report.died("disabled", len(rest))
            return True
        ctx.ledger.mark_failed(key, str(exc.details.get("status")))
        dead.append(replace(item, attempt=item.attempt + 1, not_before=0.0,
                            reason=f"refused:{exc.details.get('status')}"))
        report.died("refused")
        return False
    except InvalidConfig as exc:  # the host resolves to a private address (SSRF): never posted
        ctx.ledger.mark_failed(key, exc.code)
        dead.append(replace(item, attempt=item.attempt + 1, not_before=0.0, reason=f"refused:{exc.code}"))
        report.died("refused")
        return False
    except CdpError:
        ctx.ledger.release(key)
        _retry(item, WEBHOOK_SCHEDULE, ctx, now, "retry", None, report, later, dead)
        return False
    # Posted even if the mark is lost: a redelivery posts again with the same webhook-id (deduped).
    with contextlib.suppress(StoreError):
        ctx.ledger.mark_sent(key, msg_id)
    report.posted += 1
    report.pushed += 1
    return False


def _trigger_post_refused(item: TriggerPost, ctx: DeliveryContext) -> str | None:
    """Why a trigger post may not go now: the person gone, or the campaign's purpose denied since."""
    from cdp.privacy.consent import may_contact

    view = ctx.profiles.views([item.profile_id]).get(item.profile_id)
    if view is None:
        return "no_profile"
    return None if may_contact(view, item.purpose) else "no_consent"


def remove_from_audiences(profile: Mapping[str, Any], destinations: Mapping[str, Destination],
                          targets: Targets) -> list[str]:
    """Erasure: take one person out of every ad audience before the profile is deleted.

    For the erase job (its ``ErasureNotice``): returns the destinations asked. Webhooks are not told.
    Raises :class:`DestinationRefused` or :class:`StoreError` (the job retries the erasure).
    """
    from cdp.activation.audiences.sync import remove_person

    asked = []
    for destination in destinations.values():
        if destination.type != "webhook" and remove_person(profile, [targets.audience(destination)]):
            asked.append(destination.name)
    return asked


@dataclass
class AudienceErasureNotice:
    """The erase job's :class:`cdp.privacy.erase.ErasureNotice` for ad audiences (GDPR Art. 19).

    Takes the person out of every ad audience destination with :func:`remove_from_audiences`, from
    their live profiles (read before the job deletes them; the person's identifiers alone when they
    are gone). Removal is idempotent, so a resumed job may call it again. A destination without
    usable credentials (no secret, a malformed one) is reported, not fatal: the erasure goes on and
    the record says which audiences could not be told; a transient failure raises (the job retries).
    """

    destinations: Mapping[str, Destination]
    targets: Targets
    profiles: ProfileViews
    name: str = "ad_audiences"
    # With the holdings, the keys each audience was sent are removed too, then their records deleted.
    holdings: Holdings | None = None

    def notify(self, request_id: str, person: Any) -> dict[str, Any]:
        views = list(self.profiles.views(sorted(person.profile_ids)).values()) or [_view_of(person)]
        asked: set[str] = set()
        not_told: dict[str, str] = {}
        for destination in self.destinations.values():
            if destination.type == "webhook":
                continue
            try:
                for view in views:
                    asked.update(remove_from_audiences(view, {destination.name: destination}, self.targets))
                if self.holdings is not None:
                    ids = sorted(person.profile_ids)
                    held = self.holdings.held(destination.name, ids)
                    sent = [h for members in held.values() for h in members]
                    if sent:
                        platform = self.targets.audience(destination)
                        for start in range(0, len(sent), platform.max_batch):
                            platform.send("remove", sent[start:start + platform.max_batch])
                        asked.add(destination.name)
                    self.holdings.put(destination.name, [(pid, []) for pid in held])
            except InvalidConfig as exc:
                not_told[destination.name] = f"refused:{exc.code}"
            except StoreError as exc:
                if exc.retryable:
                    raise
                not_told[destination.name] = "no_credentials"
        return {"asked": sorted(asked), "not_told": not_told}


def _view_of(person: Any) -> dict[str, Any]:
    """A profile view holding only the person's identifiers (their profiles are already gone)."""
    by_type: dict[str, list[str]] = {}
    for identifier in person.identifiers:
        kind, _, value = str(identifier).partition(":")
        by_type.setdefault(kind, []).append(value)
    return {"profile_id": (list(person.profile_ids) or [""])[0], "identifiers": by_type, "traits": {}}
