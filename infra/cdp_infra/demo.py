"""The main job: the whole pipeline on one machine, end to end, with a summary whose numbers agree.

Start the local stack, send a realistic dataset through the real HTTP endpoint, wait until
every consumer has drained, run the scheduled segment job and activation, then count what
each stage holds and check the counts against each other and against the dataset's ground truth
(who each generated person is). The checks are pure functions of the summary, so a test can feed
them a wrong result and see them fail.
"""

from __future__ import annotations

import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any, TextIO

from . import demo_destinations
from .client import SendResult, TrackingClient
from .dataset import Dataset, generate
from .local import LocalConfig, LocalPipeline
from .report_cli import demo_report


@dataclass
class DemoSummary:
    people: int = 0
    events_sent: int = 0
    events_accepted: int = 0
    events_rejected: int = 0
    rejected_by_reason: dict[str, int] = field(default_factory=dict)
    expected_rejections: dict[str, int] = field(default_factory=dict)
    quarantined: int = 0
    events_in_lake: int = 0
    profiles: int = 0
    expected_profiles: int = 0
    merged_profiles: int = 0
    # Over-merges, under-merges and missing or stray identifiers, against the dataset's people.
    identity_problems: list[str] = field(default_factory=list)
    segments: dict[str, dict[str, Any]] = field(default_factory=dict)
    segments_configured: list[str] = field(default_factory=list)
    segments_skipped: list[str] = field(default_factory=list)
    # Members of the segment the dataset can predict (repeat buyers) that should not be, or are missing.
    membership_problems: list[str] = field(default_factory=list)
    email_entries: int = 0
    emails_sent: int = 0
    # Per campaign: kind, owed (its audience), sent, skipped by reason, then SES's outcomes and the
    # opt-outs as the lake holds them (docs/activation.md).
    campaigns: dict[str, dict[str, Any]] = field(default_factory=dict)
    # Events the CDP itself wrote into the stream: SES outcomes (simulated here) and opt-outs.
    campaign_events: int = 0
    failure_destination: int = 0
    # The functions' business metrics as CloudWatch would sum them (name -> total).
    metrics: dict[str, float] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    # The report run at the end (run id, events, bytes scanned, seconds, where to open the dashboard).
    report: dict[str, Any] = field(default_factory=dict)
    # Ad audiences and webhooks (demo_destinations): per destination pushed, expected, requests, violations.
    destinations: dict[str, dict[str, int]] = field(default_factory=dict)
    # The demo's checkouts for the triggered campaign, by what must become of them (CHECKOUTS).
    checkouts: dict[str, int] = field(default_factory=dict)
    # One person erased at the end: status, what was removed per store, the verification, the time,
    # the person's distinct events in the dataset, the lake's events about them before (theirs and the
    # demo's email outcomes and unsubscribes about them), and what the lake lost.
    erasure: dict[str, Any] = field(default_factory=dict)
    checks: dict[str, bool] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return all(self.checks.values())

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "ok": self.ok}


class Progress:
    """Progress on a terminal: phase lines, and one live line redrawn with counts, rate and ETA.

    Silent when ``out`` is None or not a terminal (a pipe, a file, CI): the summary says it all.
    """

    def __init__(self, out: TextIO | None) -> None:
        self.out = out if out is not None and out.isatty() else None
        self.started = time.monotonic()
        self._live = False

    @property
    def enabled(self) -> bool:
        return self.out is not None

    def __call__(self, message: str) -> None:
        if self.out is not None:
            self._end_live()
            self.out.write(f"[{time.monotonic() - self.started:6.1f}s] {message}\n")
            self.out.flush()

    def live(self, message: str) -> None:
        """Redraw the current line (the next :meth:`__call__` or :meth:`done` ends it)."""
        if self.out is not None:
            self.out.write(f"\r\033[K[{time.monotonic() - self.started:6.1f}s] {message}")
            self.out.flush()
            self._live = True

    def done(self) -> None:
        self._end_live()

    def _end_live(self) -> None:
        if self.out is not None and self._live:
            self.out.write("\n")
            self._live = False


class Rate:
    """Items per second over the last few seconds, and the ETA of the rest at that rate."""

    def __init__(self, window_s: float = 5.0) -> None:
        self.window_s = window_s
        self.samples: list[tuple[float, int]] = []

    def add(self, done: int) -> float:
        now = time.monotonic()
        self.samples.append((now, done))
        while len(self.samples) > 2 and now - self.samples[0][0] > self.window_s:
            self.samples.pop(0)
        (t0, d0), (t1, d1) = self.samples[0], self.samples[-1]
        return (d1 - d0) / (t1 - t0) if t1 > t0 else 0.0

    @staticmethod
    def seconds_left(remaining: int, rate: float) -> float | None:
        if remaining <= 0:
            return 0.0
        return remaining / rate if rate > 0 else None

    @staticmethod
    def eta(remaining: int, rate: float) -> str:
        return _eta(Rate.seconds_left(remaining, rate))


def _eta(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    return f"{seconds:.0f}s" if seconds < 120 else f"{seconds / 60:.0f}min"


@dataclass
class SendTally:
    accepted: int = 0
    rejected: int = 0
    reasons: Counter[str] = field(default_factory=Counter)  # rejected events by the collector's reason


def send_batches(url: str, write_key: str, batches: list[list[dict[str, Any]]], *, workers: int = 4,
                 progress: Progress | None = None) -> SendTally:
    """Send every batch; returns what the collector answered, rejections counted by reason."""
    tally = SendTally()
    total = sum(len(b) for b in batches)
    lock = threading.Lock()
    counts = {"done": 0}
    pending = iter(batches)

    def worker() -> None:
        client = TrackingClient(url, write_key)
        try:
            while True:
                with lock:
                    batch = next(pending, None)
                if batch is None:
                    return
                result = client.batch(batch)
                with lock:
                    tally.accepted += result.accepted
                    tally.rejected += result.rejected
                    tally.reasons.update(rejection_reasons(result))
                    counts["done"] += len(batch)
        finally:
            client.close()

    with ThreadPoolExecutor(workers) as pool:
        futures = [pool.submit(worker) for _ in range(workers)]
        rate = Rate()
        while not all(f.done() for f in futures):
            if progress is not None and progress.enabled:
                done = counts["done"]
                per_s = rate.add(done)
                progress.live(f"sending   {done:>9,}/{total:,} events  {per_s:>7,.0f}/s  "
                              f"ETA {Rate.eta(total - done, per_s)}")
            wait(futures, timeout=0.5)
        for future in futures:
            future.result()
    if progress is not None:
        progress(f"sent {counts['done']:,}/{total:,} events "
                 f"({tally.accepted:,} accepted, {tally.rejected:,} rejected)")
    return tally


def rejection_reasons(result: SendResult) -> list[str]:
    """The reason of each rejected event; a refused request (no per-event list) counts under its code."""
    listed = [str(r.get("reason")) for r in result.body.get("rejected") or []]
    if len(listed) == result.rejected:
        return listed
    return [str(result.body.get("reason", f"http_{result.status}"))] * result.rejected


def send_dataset(url: str, write_key: str, batches: list[list[dict[str, Any]]], *, workers: int = 4,
                 progress: Progress | None = None) -> tuple[int, int]:
    """Send every batch; returns (accepted, rejected) as the collector answered."""
    tally = send_batches(url, write_key, batches, workers=workers, progress=progress)
    return tally.accepted, tally.rejected


def count_lake_events(pipeline: LocalPipeline) -> int:
    from cdp.adapters.engines import query_engine

    engine = query_engine(pipeline.settings)
    rows = engine.run("SELECT count(DISTINCT message_id) AS n FROM events").rows
    return int(rows[0]["n"])


def count_lake_events_about(pipeline: LocalPipeline, identifiers: Iterable[str]) -> int:
    """Distinct events in the lake whose user id, anonymous id or email is one of ``identifiers``:
    the person's own events and those the demo wrote about them (email outcomes, unsubscribes)."""
    from cdp.adapters.engines import query_engine

    columns = {"user_id", "anonymous_id", "email"}
    terms = [f"{kind} = '{value.replace(chr(39), chr(39) * 2)}'"
             for kind, _, value in (i.partition(":") for i in sorted(identifiers)) if kind in columns]
    if not terms:
        return 0
    sql = f"SELECT count(DISTINCT message_id) AS n FROM events WHERE {' OR '.join(terms)}"
    return int(query_engine(pipeline.settings).run(sql).rows[0]["n"])


def count_quarantined(pipeline: LocalPipeline) -> int:
    s3 = pipeline.client("s3")
    bucket = pipeline.settings.lake_bucket
    lines = 0
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix="quarantine/"):
        for obj in page.get("Contents", []):
            body = s3.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read()
            lines += sum(1 for line in body.splitlines() if line.strip())
    return lines


def live_profiles(pipeline: LocalPipeline) -> dict[str, frozenset[str]]:
    """Each live profile's id and identifiers."""
    return profiles_scan(pipeline)[0]


def profiles_scan(pipeline: LocalPipeline) -> tuple[dict[str, frozenset[str]], int]:
    """One scan of the profiles: each live profile's identifiers, and how many were merged away."""
    from cdp.adapters.dynamo_profiles import DynamoIdentityStore

    live: dict[str, frozenset[str]] = {}
    merged = 0
    for p in DynamoIdentityStore(pipeline.settings).scan_profiles():
        if p.is_tombstone:
            merged += 1
        else:
            live[p.profile_id] = frozenset(p.identifiers)
    return live, merged


def identity_problems(expected: Iterable[frozenset[str]], profiles: Mapping[str, Iterable[str]], *,
                      ignore_unrelated: bool = False) -> list[str]:
    """How the live profiles differ from one profile per person holding exactly that person's identifiers.

    ``expected`` is each person's identifier set (the dataset's ground truth); empty when exact. Reports
    a profile holding two people's identifiers (over-merge), a person spread over two profiles
    (under-merge), an identifier no profile holds, and a profile with identifiers no person has
    (unless ``ignore_unrelated``, for a stack that also served other traffic).
    """
    owner: dict[str, int] = {}
    people = [frozenset(p) for p in expected]
    for person, identifiers in enumerate(people):
        for identifier in identifiers:
            owner[identifier] = person
    problems: list[str] = []
    holders: dict[int, set[str]] = {}
    held: set[str] = set()
    for profile_id, identifiers in sorted(profiles.items()):
        ids = set(identifiers)
        owners = sorted({owner[i] for i in ids if i in owner})
        strays = sorted(ids - owner.keys())
        if not owners and ignore_unrelated:
            continue
        if len(owners) > 1:
            problems.append(f"over-merge: profile {profile_id} holds identifiers of people {owners}")
        if strays:
            problems.append(f"profile {profile_id} holds identifiers no person has: {strays}")
        for person in owners:
            holders.setdefault(person, set()).add(profile_id)
        held |= ids
    for person, identifiers in enumerate(people):
        if len(holders.get(person, ())) > 1:
            problems.append(f"under-merge: person {person} is split over profiles {sorted(holders[person])}")
        missing = sorted(identifiers - held)
        if missing:
            problems.append(f"person {person}: no profile holds {missing}")
    return problems


def owners_of(expected: Iterable[frozenset[str]], profiles: Mapping[str, Iterable[str]]) -> dict[str, int]:
    """Profile id -> the index of the one person whose identifiers it holds (over-merged profiles left out)."""
    owner = {identifier: person for person, ids in enumerate(expected) for identifier in ids}
    found: dict[str, int] = {}
    for profile_id, identifiers in profiles.items():
        people = {owner[i] for i in identifiers if i in owner}
        if len(people) == 1:
            found[profile_id] = people.pop()
    return found


REPEAT_BUYERS = "repeat-buyers"


def expected_repeat_buyers(dataset: Dataset, *, ran_from: datetime, ran_until: datetime) -> tuple[set[int], set[int]]:
    """(must, may): the people the repeat-buyers segment must hold, and may hold, if it ran at some moment
    between ``ran_from`` and ``ran_until``; its window and count come from its definition file."""
    from cdp.segments.catalog import all_segments, find_segment
    from cdp.segments.definition import BehaviourCondition

    from .template import REPO_ROOT

    condition = find_segment(all_segments(REPO_ROOT / "segments"), REPEAT_BUYERS).condition
    minimums = [int(p.value) for p in getattr(condition, "predicates", ()) if p.op == "gte"]
    if not (isinstance(condition, BehaviourCondition) and condition.measure == "count" and len(minimums) == 1):
        raise ValueError(f"{REPEAT_BUYERS} is no longer 'at least N orders within D days': update the demo")
    minimum = minimums[0]
    window = timedelta(days=condition.within_days)
    # An order leaves the window as the run time moves on: the later the run, the fewer orders count.
    must = dataset.buyers(min_orders=minimum, after=ran_until - window)
    may = dataset.buyers(min_orders=minimum, after=ran_from - window)
    return must, may


def membership_problems(segment: str, members: Iterable[str], owners: Mapping[str, int], *,
                        must: set[int], may: set[int]) -> list[str]:
    """How a segment's members differ from the people the ground truth says it must (and may) hold."""
    problems: list[str] = []
    held: set[int] = set()
    for profile_id in sorted(members):
        person = owners.get(profile_id)
        if person is None:
            problems.append(f"{segment}: member {profile_id} is no one person's profile")
        elif person not in may:
            problems.append(f"{segment}: person {person} is a member but should not be")
        else:
            held.add(person)
    problems += [f"{segment}: person {p} should be a member but is not" for p in sorted(must - held)]
    return problems


def segment_members(pipeline: LocalPipeline, segment: str) -> set[str]:
    from cdp.adapters.membership import DynamoMembershipStore

    return set(DynamoMembershipStore(pipeline.settings).members(segment))


def count_profiles(pipeline: LocalPipeline) -> tuple[int, int]:
    live, merged = profiles_scan(pipeline)
    return len(live), merged


def email_entries(pipeline: LocalPipeline) -> int:
    """Members of the segments that have an email channel (each entry owes exactly one email)."""
    from cdp.activation import load_email_templates
    from cdp.adapters.membership import DynamoMembershipStore

    from .template import REPO_ROOT

    store = DynamoMembershipStore(pipeline.settings)
    templates = load_email_templates(REPO_ROOT / "config" / "activation.yaml")
    return sum(len(store.members(segment)) for segment in templates)


def emails_sent(pipeline: LocalPipeline) -> int:
    return int(pipeline.client("ses").get_send_quota()["SentLast24Hours"])


AUTOMATED, ADHOC, TRIGGERED, SCHEDULED = "new-customer-welcome", "loyalty-launch", "checkout-reminder", "weekly-digest"
#: The simulated mailbox provider bounces every BOUNCE_EVERY-th message for good.
BOUNCE_EVERY = 10


def campaign_messages(pipeline: LocalPipeline, campaign: str) -> list[tuple[dict[str, Any], Any]]:
    """The raw emails SES holds for ``campaign`` (its X-CDP-Campaign header), in send order, each
    with its parsed message. Read from the emulator: its SES keeps them in the emulator's process."""
    found = []
    for message in pipeline.raw_emails():
        parsed = _parsed_email(message["raw_data"])
        if parsed["X-CDP-Campaign"] == campaign:
            found.append((message, parsed))
    return found


@lru_cache(maxsize=16384)
def _parsed_email(raw: str) -> Any:
    """One raw email parsed (read-only): the demo reads SES's messages after every campaign, and
    parsing each of them every time was most of its campaigns phase."""
    import email
    from email import policy

    return email.message_from_string(raw, policy=policy.default)


def campaign_emails_sent(pipeline: LocalPipeline) -> int:
    """Campaign emails SES holds (each carries X-CDP-Campaign); the rest are per-segment emails."""
    return sum(1 for m in pipeline.raw_emails() if _parsed_email(m["raw_data"])["X-CDP-Campaign"])


#: The demo's checkouts, by what must become of their reminder: sent (no order since; these people never
#: order), cancelled by an order half an hour later, still waiting (started 10 minutes ago: an hour's
#: wait is a one-time schedule), and too old to act on (three days ago).
CHECKOUTS = {"remind": 12, "ordered": 8, "waiting": 5, "stale": 5}


#: Zones 8 to 9 hours apart: at any time, in one of them it is between 08:00 and 21:00.
AWAKE_ZONES = ("UTC", "Asia/Tokyo", "America/Los_Angeles")


def awake_zone(now: datetime) -> str:
    """A time zone where ``now`` and the next hour are outside checkout-reminder's quiet hours
    (22:00-07:00), so the reminders the demo owes are decided during its run, whenever it runs."""
    from zoneinfo import ZoneInfo

    for zone in AWAKE_ZONES:
        if 8 <= now.astimezone(ZoneInfo(zone)).hour < 21:
            return zone
    raise AssertionError("no zone awake")  # the zones cover the day


def checkout_events(dataset: Dataset, now: datetime) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """``Checkout Started`` (and some ``Order Completed``) for identified people, as one batch.

    The reminder's wait (checkout-reminder: 60 minutes) cannot pass during a demo run, so most
    checkouts happened three hours ago: their wait is over when they arrive and the reminder is
    decided at once; the orders are in the same batch, so unify has applied them when it decides.
    Quiet hours are read in the person's ``timezone`` trait: each person to remind says first (an
    identify) that they live where it is daytime now, else a run at night would defer their
    reminders to the morning (and one just before 07:00 UTC would wait up to 15 minutes for them).
    """
    import uuid

    from cdp.times import format_time

    nobuy = [p for p in dataset.persons if p.identified and not p.orders]
    others = [p for p in dataset.persons if p.identified and p.orders]
    groups = {"remind": nobuy[:CHECKOUTS["remind"]], "ordered": others[:CHECKOUTS["ordered"]],
              "waiting": nobuy[CHECKOUTS["remind"]:CHECKOUTS["remind"] + CHECKOUTS["waiting"]],
              "stale": others[CHECKOUTS["ordered"]:CHECKOUTS["ordered"] + CHECKOUTS["stale"]]}
    started = {"remind": now - timedelta(hours=3), "ordered": now - timedelta(hours=3),
               "waiting": now - timedelta(minutes=10), "stale": now - timedelta(days=3)}
    zone = awake_zone(now)
    events: list[dict[str, Any]] = []
    for group, people in groups.items():
        for person in people:
            user = next(i.split(":", 1)[1] for i in person.identifiers if i.startswith("user_id:"))
            base = {"type": "track", "userId": user}
            if group == "remind":  # decided during the run, in the person's zone
                events.append({"type": "identify", "userId": user, "messageId": str(uuid.uuid4()),
                               "timestamp": format_time(started[group]), "traits": {"timezone": zone}})
            events.append({**base, "messageId": str(uuid.uuid4()), "event": "Checkout Started",
                           "timestamp": format_time(started[group]), "properties": {"value": 42, "currency": "USD"}})
            if group == "ordered":
                events.append({**base, "messageId": str(uuid.uuid4()), "event": "Order Completed",
                               "timestamp": format_time(started[group] + timedelta(minutes=30)),
                               "properties": {"order_id": f"demo-{person.index}", "revenue": 42, "currency": "USD"}})
    return events, {group: len(people) for group, people in groups.items()}


def run_checkouts(pipeline: LocalPipeline, dataset: Dataset, summary: DemoSummary, write_key: str,
                  progress: Progress) -> dict[str, int]:
    events, groups = checkout_events(dataset, datetime.now(UTC))
    progress(f"checkouts: {len(events)} events ({groups}) for the triggered campaign {TRIGGERED}")
    tally = send_batches(pipeline.url, write_key, [events])
    summary.events_sent += len(events)
    summary.events_accepted += tally.accepted
    summary.events_rejected += tally.rejected
    return groups


def campaign_outcomes(pipeline: LocalPipeline, campaign: str) -> dict[str, int]:
    """What the activation function decided for ``campaign`` (CampaignMessages metric), by outcome."""
    prefix = f"CampaignMessages{{campaign={campaign},outcome="
    return {k[len(prefix):].rstrip("}"): int(v)
            for k, v in pipeline.metrics.snapshot().get("ActivateFunction", {}).items() if k.startswith(prefix)}


def run_campaigns(pipeline: LocalPipeline, summary: DemoSummary, progress: Progress,
                  queued: Mapping[str, int] | None = None) -> None:
    """The automated campaigns have sent on segment entry and on the segment job's tick, the triggered one
    on its checkouts (``queued``:
    messages the tick put on the queue, per scheduled campaign); send the ad-hoc one (dry run, confirm,
    retry), then play the mailbox provider: SES events for every message, one one-click unsubscribe each."""
    import json
    import urllib.request

    from cdp.campaigns.definition import find_campaign, load_campaigns
    from cdp.campaigns.eligibility import load_policy
    from cdp.times import format_time

    from .campaigns_cli import send_adhoc
    from .template import REPO_ROOT

    campaigns = load_campaigns(REPO_ROOT / "campaigns")
    policy = load_policy(REPO_ROOT / "config" / "activation.yaml")
    now = datetime.now(UTC)
    auto = find_campaign(campaigns, AUTOMATED)
    activate = pipeline.metrics.snapshot().get("ActivateFunction", {})
    skipped = {k: v for k, v in campaign_outcomes(pipeline, AUTOMATED).items() if k not in ("sent", "duplicate")}
    # Every entry published for the segment (real-time or scheduled) owes one decision: send or skip.
    entries = sum(int(v) for metrics in pipeline.metrics.snapshot().values() for k, v in metrics.items()
                  if k == f"SegmentEntries{{segment={auto.audience.segment}}}")
    summary.campaigns[AUTOMATED] = {"kind": auto.kind, "owed": entries,
                                    "sent": len(campaign_messages(pipeline, AUTOMATED)), "skipped": skipped}
    scheduled = find_campaign(campaigns, SCHEDULED)
    summary.campaigns[SCHEDULED] = {
        "kind": f"{scheduled.kind}, {scheduled.audience.schedule}", "owed": (queued or {}).get(SCHEDULED, 0),
        "sent": len(campaign_messages(pipeline, SCHEDULED)),
        "skipped": {k: v for k, v in campaign_outcomes(pipeline, SCHEDULED).items() if k not in ("sent", "duplicate")}}
    adhoc = find_campaign(campaigns, ADHOC)
    progress(f"ad-hoc campaign {ADHOC}: dry run, then send, then the same send again (a retry)")
    plan = send_adhoc(pipeline.settings, adhoc, run="demo", confirm=False, test_to=[], policy=policy, now=now)
    first = send_adhoc(pipeline.settings, adhoc, run="demo", confirm=True, test_to=[], policy=policy, now=now)
    again = send_adhoc(pipeline.settings, adhoc, run="demo", confirm=True, test_to=[], policy=policy, now=now)
    summary.campaigns[ADHOC] = {"kind": adhoc.kind, "owed": plan["would_send"] + sum(plan["skipped"].values()),
                                "dry_run_would_send": plan["would_send"], "sent": first["sent"],
                                "skipped": first["skipped"], "retry_sent": again["sent"]}
    unify = pipeline.metrics.snapshot().get("UnifyFunction", {})
    assert pipeline.one_time is not None
    waiting = [s for s in pipeline.one_time.pending() if TRIGGERED in s["Target"].get("Input", "")]
    summary.campaigns[TRIGGERED] = {"kind": "triggered", "owed": int(unify.get("CampaignTriggers", 0)),
                                    "sent": len(campaign_messages(pipeline, TRIGGERED)),
                                    "skipped": _by_reason(activate, "TriggeredSkipped"), "waiting": len(waiting),
                                    "stale": int(unify.get("CampaignTriggersStale", 0))}

    progress("simulated mailbox provider: SES events for every campaign email, one unsubscribe per campaign")
    events = 0
    for name in (AUTOMATED, SCHEDULED, ADHOC, TRIGGERED):
        records = []
        messages = campaign_messages(pipeline, name)
        for i, (message, parsed) in enumerate(messages):
            to = str(parsed["To"])
            # The tags the message was sent with (SES publishes them), its ledger key among them:
            # the Send event confirms the claim (already sent here: a no-op).
            tags = {k: [v] for k, v in (message.get("tags") or {}).items()} or {
                "campaign": [name], "run": ["demo"], "purpose": ["email"]}
            mail = {"messageId": message["id"], "destination": [to], "timestamp": format_time(now), "tags": tags}
            records.append({"eventType": "Send", "mail": mail, "send": {}})
            if i % BOUNCE_EVERY == BOUNCE_EVERY - 1:
                records.append({"eventType": "Bounce", "mail": mail, "bounce": {
                    "bounceType": "Permanent", "bouncedRecipients": [{"emailAddress": to}]}})
            else:
                records.append({"eventType": "Delivery", "mail": mail, "delivery": {"recipients": [to]}})
        for start in range(0, len(records), 50):
            sns = {"Records": [{"EventSource": "aws:sns", "Sns": {"Message": json.dumps(r)}}
                               for r in records[start:start + 50]]}
            events += sum(pipeline.functions["FeedbackFunction"].invoke(sns)["outcomes"].values())
        events += sum(1 for i in range(len(messages)) if i % BOUNCE_EVERY == BOUNCE_EVERY - 1)  # suppressions
        delivered = [parsed for i, (_m, parsed) in enumerate(messages) if i % BOUNCE_EVERY != BOUNCE_EVERY - 1]
        summary.campaigns[name]["unsubscribes_clicked"] = 0
        if delivered:
            url = str(delivered[0]["List-Unsubscribe"]).strip("<>")
            request = urllib.request.Request(url, data=b"List-Unsubscribe=One-Click", method="POST")
            with urllib.request.urlopen(request, timeout=30) as answer:
                if answer.status == 200:
                    summary.campaigns[name]["unsubscribes_clicked"] = 1
                    events += 1
    summary.campaign_events = events


def campaign_results_into(pipeline: LocalPipeline, summary: DemoSummary) -> None:
    """What the lake says of each campaign (``cdp campaigns stats``)."""
    from cdp.adapters.engines import query_engine
    from cdp.campaigns.definition import load_campaigns
    from cdp.campaigns.results import campaign_results

    from .template import REPO_ROOT

    chosen = [c for c in load_campaigns(REPO_ROOT / "campaigns") if c.name in (AUTOMATED, SCHEDULED, ADHOC, TRIGGERED)]
    since = (datetime.now(UTC) - timedelta(days=1)).date().isoformat()
    for result in campaign_results(query_engine(pipeline.settings), chosen, since=since):
        row = result.to_dict()
        summary.campaigns[result.campaign].update(
            {k: row[k] for k in ("delivered", "bounced", "unsubscribed", "conversions")} | {"sent_in_lake": row["sent"]})


def run_demo(*, people: int = 1000, events: int = 20000, write_key: str = "demo-write-key",
             seed: int = 7, out: TextIO | None = sys.stderr, port: int = 0) -> DemoSummary:
    progress = Progress(out)
    summary = DemoSummary(people=people)
    progress("starting the local stack (AWS emulator, resources from template.yaml, handlers)")
    t0 = time.monotonic()
    # The lake on local disk (LAKE_ROOT): the segment job reads it without a request per file.
    with tempfile.TemporaryDirectory(prefix="cdp-lake-") as lake_dir, \
            LocalPipeline(LocalConfig(port=port, write_key=write_key, run_schedules=False,
                                      lake_dir=lake_dir)) as pipeline:
        progress(f"collector listening on {pipeline.url}")
        fakes = demo_destinations.start(pipeline)
        dataset = generate(people, events, seed=seed)
        expect(summary, dataset)
        progress(f"generated {dataset.events:,} events from {people:,} people in {len(dataset.batches):,} batches")
        t1 = time.monotonic()
        tally = send_batches(pipeline.url, write_key, dataset.batches, progress=progress)
        summary.events_accepted, summary.events_rejected = tally.accepted, tally.rejected
        summary.rejected_by_reason = dict(tally.reasons)
        summary.seconds["send"] = round(time.monotonic() - t1, 1)
        progress("waiting for unify and archive to drain the stream")
        t2 = time.monotonic()
        _wait(pipeline, progress, summary.events_accepted)
        summary.seconds["drain"] = round(time.monotonic() - t2, 1)
        progress("running the scheduled segment job")
        t3 = time.monotonic()
        ran_from = datetime.now(UTC)
        tick_at = datetime.now(UTC)
        reports = _segment_job(pipeline, progress, tick_at)
        ran_until = datetime.now(UTC)
        for report in reports:
            for seg in report.get("segments", []):
                summary.segments[seg["segment"]] = {k: seg[k] for k in ("members", "entered", "exited",
                                                                         "bytes_scanned")}
            for name, reason in report.get("failures", {}).items():
                summary.segments[name] = {"error": reason}
            summary.segments_skipped += report.get("skipped", [])
        progress("waiting for activation to send")
        _wait(pipeline, progress, summary.events_accepted)
        # EventBridge retrying the tick (same event, same run id): the scheduled campaign sends nobody twice.
        # Before the checkouts, whose orders change the segment the retry would fan out to again.
        progress(f"the same tick again, as a retry: {SCHEDULED} must send nobody a second message")
        _segment_job(pipeline, progress, tick_at)
        _wait(pipeline, progress, summary.events_accepted)
        summary.checkouts = run_checkouts(pipeline, dataset, summary, write_key, progress)
        _wait(pipeline, progress, summary.events_accepted)
        summary.seconds["segment_and_activate"] = round(time.monotonic() - t3, 1)
        t4 = time.monotonic()
        run_campaigns(pipeline, summary, progress,
                      queued={k: v for r in reports for k, v in r.get("campaigns", {}).get("queued", {}).items()})
        recipients = [str(parsed["To"]) for _m, parsed in campaign_messages(pipeline, SCHEDULED)]
        summary.campaigns[SCHEDULED]["retry_sent"] = len(recipients) - len(set(recipients))  # second messages
        _wait(pipeline, progress, summary.events_accepted)
        campaign_results_into(pipeline, summary)
        summary.seconds["campaigns"] = round(time.monotonic() - t4, 1)
        summary.quarantined = count_quarantined(pipeline)
        summary.events_in_lake = count_lake_events(pipeline)
        profiles, summary.merged_profiles = profiles_scan(pipeline)
        summary.profiles = len(profiles)
        summary.identity_problems = identity_problems(dataset.expected_profiles, profiles)
        must, may = expected_repeat_buyers(dataset, ran_from=ran_from, ran_until=ran_until)
        summary.membership_problems = membership_problems(
            REPEAT_BUYERS, segment_members(pipeline, REPEAT_BUYERS), owners_of(dataset.expected_profiles, profiles),
            must=must, may=may)
        summary.emails_sent = emails_sent(pipeline)
        summary.email_entries = email_entries(pipeline)
        summary.failure_destination = sum(p.sent_to_failure_destination for p in pipeline.kinesis_pollers)
        summary.metrics = pipeline.metrics.totals()
        summary.report = demo_report(pipeline, progress)
        summary.destinations = demo_destinations.summarise(pipeline, fakes, summary.segments)
        # The fakes keep answering through the erasure: it takes the person out of each ad audience.
        summary.erasure = demo_erasure(pipeline, dataset, write_key, progress)
        fakes.stop()
    summary.seconds["total"] = round(time.monotonic() - t0, 1)
    summary.checks = evaluate(summary)
    return summary


def expect(summary: DemoSummary, dataset: Dataset) -> None:
    """Record in ``summary`` what the dataset's ground truth says the pipeline must produce."""
    summary.people = dataset.people
    summary.events_sent = dataset.events
    summary.expected_rejections = dataset.expected_rejections
    summary.expected_profiles = len(dataset.expected_profiles)
    summary.segments_configured = configured_segments()


def configured_segments() -> list[str]:
    from cdp.segments.catalog import all_segments

    from .template import REPO_ROOT

    return sorted(d.name for d in all_segments(REPO_ROOT / "segments"))


def evaluate(s: DemoSummary) -> dict[str, bool]:
    """The demo's consistency checks: each compares what the pipeline holds to the ground truth or to
    the stage before it, exactly."""
    return {
        "every event answered": s.events_accepted + s.events_rejected == s.events_sent,
        "rejected = the dataset's broken events, by reason": s.rejected_by_reason == s.expected_rejections,
        "every rejected event quarantined": s.quarantined == s.events_rejected,
        "every accepted event is in the lake": s.events_in_lake == s.events_accepted + s.campaign_events,
        "one profile per person, holding exactly that person's identifiers":
            s.profiles == s.expected_profiles and not s.identity_problems,
        "repeat buyers = the dataset's people with enough recent orders": not s.membership_problems,
        "emails sent = entries of segments with an email channel + campaign sends":
            s.emails_sent == s.email_entries + _campaign_sent(s),
        "campaign sent + skipped (+ still waiting) = its audience, per campaign":
            all(c["sent"] + sum(c["skipped"].values()) + c.get("waiting", 0) == c["owed"] for c in _ran(s)),
        "checkout reminders: cancelled by a later order, waiting, too old, each exactly the demo's checkouts":
            _triggered_as_planned(s),
        "a retried ad-hoc send or scheduled tick sends nobody twice": all(c.get("retry_sent", 0) == 0 for c in _ran(s)),
        "SES outcomes in the lake = messages sent, per campaign":
            all(c.get("sent_in_lake") == c["sent"] == c.get("delivered", 0) + c.get("bounced", 0) for c in _ran(s)),
        "every one-click unsubscribe is in the lake":
            all(c.get("unsubscribed") == c.get("unsubscribes_clicked") for c in _ran(s)),
        "every configured segment ran and none failed":
            set(s.segments_configured) <= set(s.segments) and not s.segments_skipped
            and all("error" not in seg for seg in s.segments.values()),
        "metrics agree: events accepted": s.metrics.get("EventsAccepted") == s.events_accepted,
        # Ad-hoc campaigns are sent by the CLI, not by a function: they have no metric.
        "metrics agree: emails sent":
            s.metrics.get("EmailsSent", 0) + _campaign_sent(s, kind="adhoc") == s.emails_sent,
        "nothing sent to the failure destination": s.failure_destination == 0,
        "each ad audience and webhook holds exactly its consenting members, within the contract":
            all(d["pushed"] == d["expected"] and d["violations"] == 0 for d in s.destinations.values()),
        "one person erased: 0 records remain, the lake lost exactly the events about them":
            s.erasure.get("status") == "done" and s.erasure.get("remaining") == 0
            and s.erasure.get("lake_events_about", -1) >= s.erasure.get("person_events", 0) > 0
            and s.erasure.get("lake_events_removed") == s.erasure.get("lake_events_about"),
    }


def _triggered_as_planned(s: DemoSummary) -> bool:
    ran, n = [c for c in _ran(s) if c["kind"] == "triggered"], s.checkouts
    return bool(ran and n) and all(
        c["owed"] == n["remind"] + n["ordered"] + n["waiting"] and c["skipped"].get("cancelled_unless", 0) == n["ordered"]
        and c.get("waiting") == n["waiting"] and c.get("stale") == n["stale"] for c in ran)


def _by_reason(metrics: Mapping[str, float], name: str) -> dict[str, int]:
    """``name{reason=...}`` metrics by reason, duplicates left out (a redelivery, not a decision)."""
    return {k.split("reason=", 1)[1].rstrip("}"): int(v) for k, v in metrics.items()
            if k.startswith(f"{name}{{") and not k.endswith("reason=duplicate}")}


def _ran(s: DemoSummary) -> list[dict[str, Any]]:
    return [c for c in s.campaigns.values() if "not_run" not in c]


def _campaign_sent(s: DemoSummary, kind: str | None = None) -> int:
    return sum(int(c["sent"]) for c in _ran(s) if kind is None or c["kind"] == kind)


def demo_erasure(pipeline: LocalPipeline, dataset: Dataset, write_key: str, progress: Progress) -> dict[str, Any]:
    """Erase the identified person with the most events through the privacy API, wait for the job,
    and report what it removed, its verification, how long it took and what the lake lost."""
    import json

    person = max((p for p in dataset.persons if p.identified), key=lambda p: len(p.message_ids))
    email = next(i for i in sorted(person.identifiers) if i.startswith("email:"))
    progress(f"erasing one person ({len(person.message_ids)} events, {len(person.identifiers)} identifiers)")
    before = count_lake_events(pipeline)
    about = count_lake_events_about(pipeline, person.identifiers)
    client = TrackingClient(pipeline.url, write_key)
    headers = {"Authorization": f"Bearer {pipeline.admin_token}", "Content-Type": "application/json"}
    started = time.monotonic()
    status, _, body = client.request("POST", "/v1/privacy/requests",
                                     json.dumps({"kind": "erase", "identifier": email}).encode(), headers=headers)
    if status != 200:
        client.close()
        return {"error": body.decode("utf-8", "replace")}
    request_id = json.loads(body)["request_id"]
    view: dict[str, Any] = {}
    while time.monotonic() - started < 600:
        pipeline.wait_drained(timeout_s=600)
        _, _, body = client.request("GET", f"/v1/privacy/requests/{request_id}", headers=headers)
        view = json.loads(body)
        if view.get("status") in ("done", "failed"):
            break
        time.sleep(0.5)
    client.close()
    result = view.get("result") or {}
    return {"request_id": request_id, "status": view.get("status"), "seconds": round(time.monotonic() - started, 1),
            "removed": result.get("removed", {}), "remaining": result.get("remaining"),
            "stores_checked": result.get("stores_checked", 0), "person_events": len(person.message_ids),
            "lake_events_about": about, "lake_events_removed": before - count_lake_events(pipeline)}


def _segment_job(pipeline: LocalPipeline, progress: Progress, at: datetime | None = None) -> list[Any]:
    """Fire the segment job's schedule once; on a terminal, show how long it has run."""
    with ThreadPoolExecutor(1) as pool:
        job = pool.submit(pipeline.run_schedules, "SegmentFunction", at)
        started = time.monotonic()
        while not wait([job], timeout=0.5).done:
            progress.live(f"segment job running  {time.monotonic() - started:5.1f}s")
        progress.done()
        return job.result()


def _wait(pipeline: LocalPipeline, progress: Progress, expected: int) -> None:
    """Wait until the pipeline is drained, showing each consumer's lag, its rate and an ETA."""
    deadline = time.monotonic() + 1800
    rates: dict[str, Rate] = {}
    while not pipeline.idle and time.monotonic() < deadline:
        if progress.enabled:
            parts: list[str] = []
            etas: list[float | None] = []
            for name, done in sorted(pipeline.stream_consumers_processed().items()):
                lag = max(expected - done, 0)
                per_s = rates.setdefault(name, Rate()).add(done)
                parts.append(f"{name.removesuffix('Function').lower()} lag {lag:,} ({per_s:,.0f}/s)")
                etas.append(Rate.seconds_left(lag, per_s))
            for poller in pipeline.sqs_pollers:
                name = poller.function.spec.logical_id.removesuffix("Function").lower()
                per_s = rates.setdefault(name, Rate()).add(poller.processed)
                parts.append(f"{name} {poller.processed:,} done ({per_s:,.0f}/s)")
            slowest = None if not etas or None in etas else max(e for e in etas if e is not None)
            progress.live("draining  " + ", ".join(parts) + f"  ETA {_eta(slowest)}")
        time.sleep(0.5)
    progress.done()
    pipeline.wait_drained(timeout_s=600)


def format_erasure(e: dict[str, Any]) -> list[str]:
    if "error" in e or not e:
        return [f"  erasure: FAILED {e.get('error', 'not run')}"]
    removed = e.get("removed", {})
    return [
        f"  erasure of one person ({e['person_events']:,} events; {e.get('lake_events_about', 0):,} in the lake "
        f"about them, {e.get('lake_events_removed', 0):,} removed): {e['status']} in {e['seconds']}s, request "
        f"{e['request_id']}",
        "    removed " + ", ".join(f"{k} {v:,}" for k, v in sorted(removed.items()) if v),
        f"    verification: {e['remaining']} records remain in {e['stores_checked']} stores",
    ]


def _campaign_lines(s: DemoSummary) -> list[str]:
    lines = []
    for name, c in s.campaigns.items():
        if "not_run" in c:
            lines.append(f"  campaign {name:<22} ({c['kind']}) not run: {c['not_run']}")
            continue
        skipped = ", ".join(f"{reason} {n}" for reason, n in sorted(c["skipped"].items())) or "none"
        lines.append(f"  campaign {name:<22} ({c['kind']}) sent {c['sent']:,} of {c['owed']:,}; skipped: {skipped}; "
                     f"delivered {c.get('delivered', 0):,}, bounced {c.get('bounced', 0):,}, "
                     f"unsubscribed {c.get('unsubscribed', 0):,}"
                     + (f"; retried send sent {c['retry_sent']}" if "retry_sent" in c else "")
                     + (f"; waiting {c['waiting']}, too old {c['stale']}" if "waiting" in c else ""))
    return lines


def format_summary(s: DemoSummary) -> str:
    lines = [
        "",
        "CDP demo — the whole pipeline on the local stack",
        f"  people generated          {s.people:>10,}",
        f"  events sent               {s.events_sent:>10,}",
        f"    accepted                {s.events_accepted:>10,}",
        f"    rejected (4xx, reason)  {s.events_rejected:>10,}",
        f"    quarantined             {s.quarantined:>10,}",
        f"  events in the lake        {s.events_in_lake:>10,}",
        f"  unified profiles          {s.profiles:>10,}   (expected {s.expected_profiles:,})",
        f"    merged away             {s.merged_profiles:>10,}",
    ]
    for name, seg in s.segments.items():
        if "error" in seg:
            lines.append(f"  segment {name:<26} FAILED: {seg['error']}")
        else:
            lines.append(f"  segment {name:<26} {seg['members']:>6,} members "
                         f"({seg['entered']:,} entered, {seg['bytes_scanned']:,} bytes scanned)")
    lines += [
        f"  entries to email          {s.email_entries:>10,}",
        f"  emails sent (SES)         {s.emails_sent:>10,}",
        *demo_destinations.format_lines(s.destinations),
        *_campaign_lines(s),
        "  metrics (as on CloudWatch; GET /v1/metrics under `cdp dev`):",
        *[f"    {name:<24}{value:>10,.0f}" for name, value in sorted(s.metrics.items()) if name != "ColdStart"],
        f"  time: send {s.seconds.get('send', 0)}s, drain {s.seconds.get('drain', 0)}s, "
        f"segment+activate {s.seconds.get('segment_and_activate', 0)}s, "
        f"campaigns {s.seconds.get('campaigns', 0)}s, total {s.seconds.get('total', 0)}s",
        f"  report: {s.report.get('events', 0):,} events in {s.report.get('seconds')}s, "
        f"{s.report.get('bytes_scanned', 0):,} bytes scanned; open {s.report.get('open') or s.report.get('error')}",
        *format_erasure(s.erasure),
        "",
        "checks:",
        *[f"  [{'ok' if passed else 'FAIL'}] {name}" for name, passed in s.checks.items()],
        *[f"  identity: {problem}" for problem in s.identity_problems[:20]],
        *[f"  segment: {problem}" for problem in s.membership_problems[:20]],
    ]
    return "\n".join(lines)
