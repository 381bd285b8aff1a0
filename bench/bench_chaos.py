"""The fault run: the demo dataset through the local stack while faults are injected at random (seeded),
then every effect counted against the generator's ground truth. Figures, and a non-zero exit if any
effect was lost or doubled.

``python bench/bench_chaos.py [--people N --events N --seed S]`` (``make chaos ARGS=...``); under
``make bench`` the size comes from BENCH_PEOPLE / BENCH_EVENTS. The faults: ``cdp_infra.chaos``.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from cdp_infra import demo_destinations
from cdp_infra.chaos import ChaosConfig, FaultInjector
from cdp_infra.dataset import generate
from cdp_infra.demo import (
    REPEAT_BUYERS,
    Progress,
    expected_repeat_buyers,
    identity_problems,
    membership_problems,
    owners_of,
    segment_members,
    send_batches,
)
from cdp_infra.local import LocalConfig, LocalPipeline

WRITE_KEY = "chaos-write-key"
# Locally a failed SQS message is visible again after 1 s instead of the queue's 180 s: the claim's
# hold (300 s on AWS, 1.7 visibility timeouts: a dead holder's claim is taken over at the third
# receive of five) shrinks in proportion, for every function that claims and each of its execution
# environments. No attempt outlives it unseen: a queue's one poller delivers its messages one batch
# at a time (so does a redelivery here) and receives with the queue's full visibility timeout.
CLAIM_HOLD_S = 2
# Deliveries to the ad audiences and webhooks wait out a backoff (SQS DelaySeconds) of up to 10 minutes
# between attempts on AWS (the schedules run for hours); here each step is cut to this, through the
# stack's environment as the template's DestinationRetryMaxDelaySeconds would: the same number of
# attempts, no longer than a few visibility timeouts (and longer than the claim hold, so a retry of a
# change whose claim a crash left finds it expired).
RETRY_MAX_DELAY_S = 3
SEGMENT_ATTEMPTS = 3  # an asynchronous invocation: the first try and EventBridge's two retries


@dataclass
class ChaosFigures:
    seed: int = 0
    people: int = 0
    events_sent: int = 0
    events_accepted: int = 0
    events_rejected: int = 0
    expected_rejected: int = 0
    lake_distinct: int = 0
    lake_rows: int = 0
    profiles: int = 0
    expected_profiles: int = 0
    identity_problems: list[str] = field(default_factory=list)
    # Where the identity index points each identifier no live profile holds (a diagnosis, not a check).
    identity_trace: list[str] = field(default_factory=list)
    # Profiles whose event_count is not the number of their person's valid events (lost or doubled updates).
    event_count_problems: list[str] = field(default_factory=list)
    membership_problems: list[str] = field(default_factory=list)
    segment_runs_failed: int = 0
    email_entries: int = 0
    emails_sent: int = 0
    entries_without_email: list[str] = field(default_factory=list)
    entries_emailed_twice: list[str] = field(default_factory=list)
    emails_to_no_entry: list[str] = field(default_factory=list)
    # What each failure destination held after the fault run's drain (replayed), and after the replay.
    needed_replay: dict[str, int] = field(default_factory=dict)
    failure_destinations: dict[str, int] = field(default_factory=dict)
    # A kept item the project's replay tools could not put back (e.g. neither in the stream nor kept).
    replay_problems: list[str] = field(default_factory=list)
    # Ad audiences and the webhook (the demo's fakes): per destination pushed, expected, requests, violations.
    destinations: dict[str, dict[str, int]] = field(default_factory=dict)
    # Webhook entries with no message, or announced under two entry runs (doubled), or for no member.
    webhook_problems: list[str] = field(default_factory=list)
    # What the failure destinations hold (first messages, shortened): which function, which change.
    kept: list[str] = field(default_factory=list)
    failures_retried: int = 0  # failure records of retried deliveries (each retry applied them: see the checks)
    faults: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0

    def checks(self) -> dict[str, bool]:
        return {
            "every event answered, the broken ones rejected":
                self.events_accepted + self.events_rejected == self.events_sent
                and self.events_rejected == self.expected_rejected,
            "no event lost from the lake": self.lake_distinct == self.events_accepted,
            "one profile per person, exactly that person's identifiers":
                self.profiles == self.expected_profiles and not self.identity_problems,
            "each profile counted each of its events once": not self.event_count_problems,
            "repeat buyers = the ground truth": not self.membership_problems and not self.segment_runs_failed,
            "one email per segment entry": not (self.entries_without_email or self.entries_emailed_twice
                                                or self.emails_to_no_entry)
                                          and self.emails_sent == self.email_entries,
            "each audience holds exactly its consenting members, one webhook per entry":
                all(d["pushed"] == d["expected"] and not d["violations"] for d in self.destinations.values())
                and not self.webhook_problems,
            "every kept item replayed, nothing left in a failure destination":
                not any(self.failure_destinations.values()) and not self.replay_problems,
            "faults were injected": sum(n for kind, n in self.faults.items() if "not injected" not in kind) > 0,
        }

    @property
    def ok(self) -> bool:
        return all(self.checks().values())


def queue_depth(pipeline: LocalPipeline, logical_id: str) -> int:
    assert pipeline.stack is not None
    attrs = pipeline.client("sqs").get_queue_attributes(
        QueueUrl=pipeline.stack.attrs[logical_id]["QueueUrl"],
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"])["Attributes"]
    return int(attrs["ApproximateNumberOfMessages"]) + int(attrs["ApproximateNumberOfMessagesNotVisible"])


def peek(pipeline: LocalPipeline, logical_id: str, n: int = 3) -> list[str]:
    """Up to ``n`` message bodies of a queue, left in it."""
    assert pipeline.stack is not None
    out = pipeline.client("sqs").receive_message(QueueUrl=pipeline.stack.attrs[logical_id]["QueueUrl"],
                                                 MaxNumberOfMessages=n, VisibilityTimeout=0)
    return [str(m["Body"]) for m in out.get("Messages", [])]


def failure_records(pipeline: LocalPipeline) -> tuple[int, int]:
    """(final, retried) records under failures/: final ones have no delivery left (kept until replayed);
    the others were kept while the mapping retried them."""
    import json

    from cdp.failures import FailedRecord

    s3, bucket = pipeline.client("s3"), pipeline.settings.lake_bucket
    final = retried = 0
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix="failures/"):
        for obj in page.get("Contents", []):
            body = s3.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read().decode("utf-8")
            record = FailedRecord.from_dict(json.loads(body.split("\n", 1)[0]))
            final, retried = (final + 1, retried) if record.final else (final, retried + 1)
    return final, retried


def lake_counts(pipeline: LocalPipeline) -> tuple[int, int]:
    from cdp.adapters.engines import query_engine

    # The feedback function's ``Email Sent`` events (SES Send events) are the stack's, not the dataset's.
    row = query_engine(pipeline.settings).run(
        "SELECT count(DISTINCT message_id) AS distinct_ids, count(*) AS n FROM events "
        "WHERE event IS NULL OR event <> 'Email Sent'").rows[0]
    return int(row["distinct_ids"]), int(row["n"])


def claims(pipeline: LocalPipeline, segment: str, profile_id: str) -> str:
    """The ledger's claims on the entry's emails (``email#<segment>#<profile>#<run>``), as a diagnosis."""
    found = []
    for page in pipeline.client("dynamodb").get_paginator("scan").paginate(TableName=pipeline.settings.idempotency_table):
        for item in page.get("Items", []):
            if item["id"]["S"].startswith(f"email#{segment}#{profile_id}#"):
                found.append(f"{item['id']['S']}: {item.get('state', {}).get('S')}, "
                             f"attempts {item.get('attempts', {}).get('N')}")
    return f" (claims: {'; '.join(found) or 'none'})"


def email_check(figures: ChaosFigures, pipeline: LocalPipeline, sends: list[tuple[str, str, str]]) -> None:
    """Each entry of a segment with an email channel owes exactly one email to its member's address."""
    from cdp.activation import ProfileContacts, load_email_templates
    from cdp.adapters.dynamo_profiles import DynamoIdentityStore
    from cdp.adapters.membership import DynamoMembershipStore
    from cdp_infra.template import REPO_ROOT

    store = DynamoMembershipStore(pipeline.settings)
    contacts = ProfileContacts(DynamoIdentityStore(pipeline.settings))
    owed: Counter[tuple[str, str]] = Counter()
    owner: dict[tuple[str, str], str] = {}
    for segment in load_email_templates(REPO_ROOT / "config" / "activation.yaml"):
        members = sorted(store.members(segment))
        found = contacts.contacts(members)
        for profile_id in members:
            contact = found.get(profile_id)
            if contact is None or not contact.email or not contact.email_consent:
                continue  # owes nothing: activation skips it on purpose
            owed[(segment, contact.email)] += 1
            owner[(segment, contact.email)] = profile_id
    # Per-segment emails carry a ``segment`` tag; campaign emails (capped, so owed by no entry) do not.
    sent = Counter((segment, to) for to, segment, _run in sends if segment)
    figures.email_entries = sum(owed.values())
    figures.emails_sent = sum(sent.values())
    figures.entries_without_email = sorted(f"{s} {to}{claims(pipeline, s, owner[(s, to)])}"
                                           for (s, to), n in owed.items() if sent[(s, to)] < n)
    runs: dict[tuple[str, str], list[str]] = {}
    for to, segment, run in sends:
        if segment:
            runs.setdefault((segment, to), []).append(run)
    figures.entries_emailed_twice = sorted(f"{s} {to} x{sent[(s, to)]} (runs {', '.join(runs[(s, to)])})"
                                           for (s, to), n in owed.items() if sent[(s, to)] > n)
    figures.emails_to_no_entry = sorted(f"{s} {to}" for (s, to) in sent if (s, to) not in owed)


def run_chaos(*, people: int, events: int, seed: int, dataset_seed: int = 7, config: ChaosConfig | None = None,
              progress: Progress | None = None) -> ChaosFigures:
    progress = progress or Progress(None)
    config = config or ChaosConfig(seed=seed)
    figures = ChaosFigures(seed=config.seed, people=people)
    t0 = time.monotonic()
    dataset = generate(people, events, seed=dataset_seed)
    figures.events_sent, figures.expected_rejected = dataset.events, dataset.invalid
    figures.expected_profiles = len(dataset.expected_profiles)
    # SES's Send events confirm the ledger claims of accepted emails (the send -> mark_sent window is injected).
    # The stream's functions in this process: the injector patches the AWS SDK here.
    local = LocalConfig(write_key=WRITE_KEY, run_schedules=False, ses_send_events=config.crash_after_send,
                        stream_functions_in_processes=False,
                        environment={"EFFECT_CLAIM_HOLD_SECONDS": str(CLAIM_HOLD_S),
                                     "DESTINATION_RETRY_MAX_DELAY_SECONDS": str(RETRY_MAX_DELAY_S)})
    with LocalPipeline(local) as pipeline, \
            FaultInjector(config) as injector:
        # The template's log level is set with the stack; the crashes' error lines would drown the figures.
        os.environ["POWERTOOLS_LOG_LEVEL"] = os.environ["LOG_LEVEL"] = "CRITICAL"
        fakes = demo_destinations.start(pipeline)
        for function in pipeline.functions.values():
            sources = {e["Type"] for e in function.spec.events.values()}
            injector.attach(function, redeliver=bool(sources & {"Kinesis", "SQS"}))
        injector.start_restarts([*pipeline.kinesis_pollers, *pipeline.sqs_pollers])
        progress(f"sending {dataset.events:,} events from {people:,} people; faults seeded with {config.seed}")
        tally = send_batches(pipeline.url, WRITE_KEY, dataset.batches, progress=progress)
        figures.events_accepted, figures.events_rejected = tally.accepted, tally.rejected
        progress("draining the stream")
        pipeline.wait_drained(timeout_s=1800, report=progress)
        progress("running the segment job (retried as EventBridge retries an asynchronous invocation)")
        ran_from = at = datetime.now(UTC).replace(microsecond=0)
        for attempt in range(SEGMENT_ATTEMPTS):
            try:
                reports = pipeline.run_schedules("SegmentFunction", at=at)
            except Exception as exc:
                progress(f"segment job attempt {attempt + 1} failed: {exc}")
                continue
            figures.segment_runs_failed = sum(len(r.get("failures", {})) for r in reports)
            break
        else:
            figures.segment_runs_failed = 1
        ran_until = datetime.now(UTC)
        progress("draining activation")
        pipeline.wait_drained(timeout_s=1800, report=progress)
        injector.stop_restarts()
        pipeline.wait_drained(timeout_s=1800, report=progress)
        figures.needed_replay = failure_depths(pipeline)
        figures.kept = [f"  {name}: {body[:160]}" for name in ("UnifyFailureQueue", "ActivationDeadLetterQueue",
                                                                    "DestinationDeadLetterQueue")
                        for body in peek(pipeline, name)]
        figures.faults = dict(sorted(injector.counts.items()))
        if any(figures.needed_replay.values()) or figures.segment_runs_failed:
            progress(f"replaying what the failure destinations hold: {figures.needed_replay}")
            injector.calm()  # an operator replays once the cause is fixed
            if operator_replay(figures, pipeline):
                ran_until = datetime.now(UTC)  # the segment job ran again
            pipeline.wait_drained(timeout_s=1800, report=progress)
        if pipeline.ses_events is not None:  # the last Send events' outcome events, applied before counting
            pipeline.ses_events.publish_new()
            pipeline.wait_drained(timeout_s=1800, report=progress)
        progress("counting")
        figures.failure_destinations = failure_depths(pipeline)
        figures.lake_distinct, figures.lake_rows = lake_counts(pipeline)
        profile_check(figures, pipeline, dataset, ran_from=ran_from, ran_until=ran_until)
        email_check(figures, pipeline, injector.sends)
        destination_check(figures, pipeline, fakes)
        fakes.stop()
        figures.failures_retried = failure_records(pipeline)[1]
    figures.seconds = round(time.monotonic() - t0, 1)
    return figures


FAILURE_QUEUES = {"unify/archive on-failure queue": "UnifyFailureQueue",
                  "activation dead-letter queue": "ActivationDeadLetterQueue",
                  "schedule failure queue": "ScheduleFailureQueue",
                  "destination dead-letter queue": "DestinationDeadLetterQueue"}


def failure_depths(pipeline: LocalPipeline) -> dict[str, int]:
    depths = {name: queue_depth(pipeline, logical_id) for name, logical_id in FAILURE_QUEUES.items()}
    depths["lake failures/ (final)"] = failure_records(pipeline)[0]
    return depths


def operator_replay(figures: ChaosFigures, pipeline: LocalPipeline) -> bool:
    """What docs/operations.md's runbooks say to do with each failure destination, with the project's
    own tools: ``cdp failures replay``, a redrive of the activation DLQ, the segment job run again,
    ``cdp webhooks replay``. Effects are idempotent by design, so a replay of something partly done
    repeats nothing; what it cannot put back is a problem. True when the segment job ran again."""
    from cdp.adapters.destinations import SqsDeadLetters, SqsDeliveryQueue
    from cdp.adapters.failures import KinesisRangeReader, S3FailureStore, SqsFailureQueue
    from cdp.adapters.kinesis import KinesisSink
    from cdp.failures import replay_failures
    from cdp_infra.collect_cli import suppression_check
    from cdp_infra.destinations_cli import replay_dead_letters

    s, need = pipeline.settings, figures.needed_replay
    if need["unify/archive on-failure queue"] or need["lake failures/ (final)"]:  # cdp failures replay
        report = replay_failures(S3FailureStore(s), SqsFailureQueue(s), KinesisRangeReader(s), KinesisSink(s),
                                 suppressed=suppression_check(s))
        figures.replay_problems += [f"failures: {p.shard_id}:{p.start}..{p.end} neither in the stream nor kept"
                                    for p in report.unrecoverable]
    if need["activation dead-letter queue"]:
        moved = redrive(pipeline, "ActivationDeadLetterQueue", "ActivationQueue")
        if moved < need["activation dead-letter queue"]:
            figures.replay_problems.append(f"activation DLQ: {moved} of {need['activation dead-letter queue']} moved")
    rerun = bool(need["schedule failure queue"] or figures.segment_runs_failed)
    if rerun:
        # The runbook: invoke the segment function again (time = now), then delete the messages.
        try:
            reports = pipeline.run_schedules("SegmentFunction", at=datetime.now(UTC).replace(microsecond=0))
            figures.segment_runs_failed = sum(len(r.get("failures", {})) for r in reports)
        except Exception as exc:
            figures.replay_problems.append(f"segment job run again: {exc}")
        else:
            redrive(pipeline, "ScheduleFailureQueue", None)
    if need["destination dead-letter queue"]:  # cdp webhooks replay
        replay_dead_letters(SqsDeadLetters(s), SqsDeliveryQueue(s))
    return rerun


def redrive(pipeline: LocalPipeline, source: str, target: str | None) -> int:
    """What ``aws sqs start-message-move-task`` does (the emulator lacks it): every message of ``source``
    sent to ``target`` with its body and attributes, then deleted (``target`` None: only deleted)."""
    assert pipeline.stack is not None
    sqs, attrs = pipeline.client("sqs"), pipeline.stack.attrs
    moved = 0
    while True:
        got = sqs.receive_message(QueueUrl=attrs[source]["QueueUrl"], MaxNumberOfMessages=10, VisibilityTimeout=60,
                                  MessageAttributeNames=["All"]).get("Messages", [])
        if not got:
            return moved
        for m in got:
            if target is not None:
                extra = {"MessageAttributes": m["MessageAttributes"]} if m.get("MessageAttributes") else {}
                sqs.send_message(QueueUrl=attrs[target]["QueueUrl"], MessageBody=m["Body"], **extra)
            sqs.delete_message(QueueUrl=attrs[source]["QueueUrl"], ReceiptHandle=m["ReceiptHandle"])
            moved += 1


def destination_check(figures: ChaosFigures, pipeline: LocalPipeline, fakes: Any) -> None:
    """Audiences hold their segments' consenting members (adds and removes are idempotent at the
    platform, so the set is the effect); the webhook has one message id per entry (at-least-once
    deliveries of one id are one effect; an entry announced under two runs is a doubled one)."""
    from cdp.adapters.membership import DynamoMembershipStore

    membership = DynamoMembershipStore(pipeline.settings)
    segments: dict[str, dict[str, int]] = {}
    for name, destination in fakes.destinations.items():
        if destination.type != "webhook":
            continue
        ids: dict[tuple[str, str, str], set[str]] = {}  # (change, segment, profile) -> message ids
        for message_id, body in fakes.fakes[name].messages.items():
            data = body.get("data") or {}
            ids.setdefault((data.get("change"), data.get("segment"), data.get("profile_id")), set()).add(message_id)
        for segment in destination.segments:
            members = set(membership.members(segment))
            segments[segment] = {"entered": len(members)}
            figures.webhook_problems += [f"{name}: {segment} {pid} entered, no message" for pid in sorted(members)
                                         if not ids.get(("entered", segment, pid))]
            figures.webhook_problems += [f"{name}: {s} {pid} entered, not a member" for (c, s, pid) in ids
                                         if c == "entered" and s == segment and pid not in members
                                         and ("exited", s, pid) not in ids]
        figures.webhook_problems += [f"{name}: {c} {s} {pid} announced {len(m)} times"
                                     for (c, s, pid), m in ids.items() if len(m) > 1]
    figures.destinations = demo_destinations.summarise(pipeline, fakes, segments)


def trace_missing(store: Any, expected: list[frozenset[str]], profiles: dict[str, frozenset[str]]) -> list[str]:
    """Where the index points each identifier no live profile holds, and what is there."""
    held = set().union(*profiles.values()) if profiles else set()
    missing = sorted({i for ids in expected for i in ids} - held)
    lines, pointers = [], store.get_pointers(missing)
    for identifier, profile_id in sorted(pointers.items()):
        chain, seen = [profile_id], store.get_profiles([profile_id]).get(profile_id)
        while seen is not None and seen.merged_into and len(chain) < 8:
            chain.append(seen.merged_into)
            seen = store.get_profiles([seen.merged_into]).get(seen.merged_into)
        state = ("absent" if seen is None else "tombstone" if seen.is_tombstone
                 else f"live, {seen.event_count} events, holds it: {identifier in seen.identifiers}")
        lines.append(f"  {identifier} -> {' -> '.join(chain)}: {state}")
    lines += [f"  {identifier}: no index entry" for identifier in missing if identifier not in pointers]
    return lines


def _recipients(message: dict[str, Any]) -> list[str]:
    from cdp_infra.pollers import send_notification

    return list(send_notification(message)["mail"]["destination"])


def _emails(profile: Any) -> set[str]:
    return {i[len("email:"):].lower() for i in profile.identifiers if str(i).startswith("email:")}


def profile_check(figures: ChaosFigures, pipeline: LocalPipeline, dataset: Any, *, ran_from: datetime,
                  ran_until: datetime) -> None:
    from cdp.adapters.dynamo_profiles import DynamoIdentityStore

    live = [p for p in DynamoIdentityStore(pipeline.settings).scan_profiles() if not p.is_tombstone]
    profiles = {p.profile_id: frozenset(p.identifiers) for p in live}
    figures.profiles = len(live)
    figures.identity_problems = identity_problems(dataset.expected_profiles, profiles)
    figures.identity_trace = trace_missing(DynamoIdentityStore(pipeline.settings), dataset.expected_profiles, profiles)
    people = [p for p in dataset.persons if p.identifiers]
    sent_to: Counter[str] = Counter()
    if pipeline.ses_events is not None:
        for message in pipeline.raw_emails():
            if message.get("configuration_set") == pipeline.ses_events.configuration_set:
                sent_to.update(str(to).strip().lower() for to in _recipients(message))
    owners = owners_of([p.identifiers for p in people], profiles)
    for profile in live:
        index = owners.get(profile.profile_id)
        if index is None:
            continue
        # Plus one ``Email Sent`` event per email SES accepted for the person (the feedback function's).
        want = len(people[index].message_ids) + sum(sent_to.get(address, 0) for address in _emails(profile))
        if profile.event_count != want:
            figures.event_count_problems.append(
                f"profile {profile.profile_id}: {profile.event_count} events counted, person sent {want}")
    must, may = expected_repeat_buyers(dataset, ran_from=ran_from, ran_until=ran_until)
    by_index = {i: p.index for i, p in enumerate(people)}
    figures.membership_problems = membership_problems(
        REPEAT_BUYERS, segment_members(pipeline, REPEAT_BUYERS),
        {pid: by_index[i] for pid, i in owners.items()}, must=must, may=may)


def format_figures(f: ChaosFigures) -> str:
    lines = [
        "",
        f"Fault run — seed {f.seed}, {f.people:,} people, {f.events_sent:,} events ({f.seconds}s)",
        f"  events sent               {f.events_sent:>8,}",
        f"    accepted                {f.events_accepted:>8,}",
        f"    rejected                {f.events_rejected:>8,}   (dataset's broken events: {f.expected_rejected:,})",
        f"  lake: distinct events     {f.lake_distinct:>8,}",
        f"        rows                {f.lake_rows:>8,}   (redelivered rows, read once through DISTINCT: "
        f"{f.lake_rows - f.lake_distinct:,})",
        f"  profiles                  {f.profiles:>8,}   (ground truth {f.expected_profiles:,}; "
        f"identity problems {len(f.identity_problems)}, event counts off {len(f.event_count_problems)})",
        f"  repeat-buyers problems    {len(f.membership_problems):>8,}   (failed segment runs {f.segment_runs_failed})",
        f"  email entries             {f.email_entries:>8,}",
        f"  emails sent (SES)         {f.emails_sent:>8,}   (entries missing one {len(f.entries_without_email)}, "
        f"emailed twice {len(f.entries_emailed_twice)}, to no entry {len(f.emails_to_no_entry)})",
        f"  {'failure destinations':<34}{'kept':>6}{'left':>8}   (kept: replayed by the runbooks' tools; left: after it)",
        *[f"    {name:<32}{f.needed_replay.get(name, 0):>6,}{n:>8,}" for name, n in f.failure_destinations.items()],
        f"    (failures/ records of deliveries retried and then applied: {f.failures_retried:,})",
        "  destinations (the demo's fakes):",
        *[f"  {line.strip()}" for line in demo_destinations.format_lines(f.destinations)],
        "  faults injected:",
        *[f"    {kind:<40}{n:>6,}" for kind, n in f.faults.items()],
        "",
        "checks:",
        *[f"  [{'ok' if passed else 'FAIL'}] {name}" for name, passed in f.checks().items()],
    ]
    for problems in (f.kept, f.replay_problems, f.identity_problems, f.identity_trace, f.event_count_problems, f.membership_problems,
                     f.entries_without_email, f.entries_emailed_twice, f.emails_to_no_entry, f.webhook_problems):
        lines += [f"  - {p}" for p in problems[:10]]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--people", type=int, default=int(os.environ.get("BENCH_PEOPLE", "1000")))
    parser.add_argument("--events", type=int, default=int(os.environ.get("BENCH_EVENTS", "20000")))
    parser.add_argument("--seed", type=int, default=1, help="seeds the faults (the dataset keeps the demo's)")
    parser.add_argument("--quiet", action="store_true")
    defaults = ChaosConfig()
    for name in ("crash_rate", "throttle_rate", "duplicate_rate", "reorder_rate", "restart_every_s"):
        parser.add_argument(f"--{name.replace('_', '-')}", type=float, default=getattr(defaults, name))
    args = parser.parse_args(argv)
    config = ChaosConfig(seed=args.seed, crash_rate=args.crash_rate, throttle_rate=args.throttle_rate,
                         duplicate_rate=args.duplicate_rate, reorder_rate=args.reorder_rate,
                         restart_every_s=args.restart_every_s)
    # Crashes are the point: the stack's own error logs for them would drown the figures.
    logging.basicConfig(level=logging.CRITICAL)
    for name in ("cdp", "werkzeug"):
        logging.getLogger(name).setLevel(logging.CRITICAL)
    figures = run_chaos(people=args.people, events=args.events, seed=args.seed, config=config,
                        progress=Progress(None if args.quiet else sys.stderr))
    print(format_figures(figures))
    return 0 if figures.ok else 1


if __name__ == "__main__":
    sys.exit(main())
