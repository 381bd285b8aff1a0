"""The main job: the whole pipeline on one machine, end to end, with a summary whose numbers agree.

Start the local stack, send a realistic dataset through the real HTTP endpoint, wait until
every consumer has drained, run the scheduled segment job and activation, then count what
each stage holds and check the counts against each other.
"""

from __future__ import annotations

import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Any, TextIO

from .client import TrackingClient
from .dataset import generate
from .local import LocalConfig, LocalPipeline


@dataclass
class DemoSummary:
    people: int = 0
    events_sent: int = 0
    events_accepted: int = 0
    events_rejected: int = 0
    quarantined: int = 0
    events_in_lake: int = 0
    profiles: int = 0
    merged_profiles: int = 0
    segments: dict[str, dict[str, Any]] = field(default_factory=dict)
    email_entries: int = 0
    emails_sent: int = 0
    failure_destination: int = 0
    # The functions' business metrics as CloudWatch would sum them (name -> total).
    metrics: dict[str, float] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    checks: dict[str, bool] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return all(self.checks.values())

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "ok": self.ok}


class Progress:
    def __init__(self, out: TextIO | None) -> None:
        self.out = out
        self.started = time.monotonic()

    def __call__(self, message: str) -> None:
        if self.out is not None:
            self.out.write(f"[{time.monotonic() - self.started:6.1f}s] {message}\n")
            self.out.flush()


def send_dataset(url: str, write_key: str, batches: list[list[dict[str, Any]]], *, workers: int = 4,
                 progress: Progress | None = None) -> tuple[int, int]:
    """Send every batch; returns (accepted, rejected) as the collector answered."""
    accepted = rejected = done = 0
    total = sum(len(b) for b in batches)
    chunks = [batches[i::workers] for i in range(workers)]

    def worker(mine: list[list[dict[str, Any]]]) -> list[tuple[int, int, int]]:
        client = TrackingClient(url, write_key)
        try:
            return [(r.accepted, r.rejected, len(b)) for b in mine for r in [client.batch(b)]]
        finally:
            client.close()

    with ThreadPoolExecutor(workers) as pool:
        for results in pool.map(worker, chunks):
            for a, r, n in results:
                accepted, rejected, done = accepted + a, rejected + r, done + n
            if progress:
                progress(f"sent {done:,}/{total:,} events")
    return accepted, rejected


def count_lake_events(pipeline: LocalPipeline) -> int:
    from cdp.adapters.engines import query_engine

    engine = query_engine(pipeline.settings)
    rows = engine.run("SELECT count(DISTINCT message_id) AS n FROM events").rows
    return int(rows[0]["n"])


def count_quarantined(pipeline: LocalPipeline) -> int:
    s3 = pipeline.client("s3")
    bucket = pipeline.settings.lake_bucket
    lines = 0
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix="quarantine/"):
        for obj in page.get("Contents", []):
            body = s3.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read()
            lines += sum(1 for line in body.splitlines() if line.strip())
    return lines


def count_profiles(pipeline: LocalPipeline) -> tuple[int, int]:
    from cdp.adapters.dynamo_profiles import DynamoIdentityStore

    live = merged = 0
    for profile in DynamoIdentityStore(pipeline.settings).scan_profiles():
        if profile.is_tombstone:
            merged += 1
        else:
            live += 1
    return live, merged


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


def run_demo(*, people: int = 1000, events: int = 20000, write_key: str = "demo-write-key",
             seed: int = 7, out: TextIO | None = sys.stderr, port: int = 0) -> DemoSummary:
    progress = Progress(out)
    summary = DemoSummary(people=people)
    progress("starting the local stack (moto server, resources from template.yaml, handlers)")
    t0 = time.monotonic()
    with LocalPipeline(LocalConfig(port=port, write_key=write_key, run_schedules=False)) as pipeline:
        progress(f"collector listening on {pipeline.url}")
        dataset = generate(people, events, seed=seed)
        summary.events_sent = dataset.events
        progress(f"generated {dataset.events:,} events from {people:,} people in {len(dataset.batches):,} batches")
        t1 = time.monotonic()
        summary.events_accepted, summary.events_rejected = send_dataset(
            pipeline.url, write_key, dataset.batches, progress=progress)
        summary.seconds["send"] = round(time.monotonic() - t1, 1)
        progress("waiting for unify and archive to drain the stream")
        t2 = time.monotonic()
        _wait(pipeline, progress)
        summary.seconds["drain"] = round(time.monotonic() - t2, 1)
        progress("running the scheduled segment job")
        t3 = time.monotonic()
        for report in pipeline.run_schedules("SegmentFunction"):
            for seg in report.get("segments", []):
                summary.segments[seg["segment"]] = {k: seg[k] for k in ("members", "entered", "exited",
                                                                         "bytes_scanned")}
            for name, reason in report.get("failures", {}).items():
                summary.segments[name] = {"error": reason}
        progress("waiting for activation to send")
        _wait(pipeline, progress)
        summary.seconds["segment_and_activate"] = round(time.monotonic() - t3, 1)
        summary.quarantined = count_quarantined(pipeline)
        summary.events_in_lake = count_lake_events(pipeline)
        summary.profiles, summary.merged_profiles = count_profiles(pipeline)
        summary.emails_sent = emails_sent(pipeline)
        summary.email_entries = email_entries(pipeline)
        summary.failure_destination = sum(p.sent_to_failure_destination for p in pipeline.kinesis_pollers)
        summary.metrics = pipeline.metrics.totals()
    summary.seconds["total"] = round(time.monotonic() - t0, 1)
    summary.checks = {
        "every event answered": summary.events_accepted + summary.events_rejected == summary.events_sent,
        "every rejected event quarantined": summary.quarantined == summary.events_rejected,
        "every accepted event is in the lake": summary.events_in_lake == summary.events_accepted,
        "profiles <= people": 0 < summary.profiles <= people,
        "emails sent = entries of segments with an email channel": summary.emails_sent == summary.email_entries,
        "no segment failed": all("error" not in s for s in summary.segments.values()),
        "metrics agree: events accepted": summary.metrics.get("EventsAccepted") == summary.events_accepted,
        "metrics agree: emails sent": summary.metrics.get("EmailsSent", 0) == summary.emails_sent,
        "nothing sent to the failure destination": summary.failure_destination == 0,
    }
    return summary


def _wait(pipeline: LocalPipeline, progress: Progress) -> None:
    last = -1
    deadline = time.monotonic() + 1800
    while not pipeline.idle or last < 0:
        processed = pipeline.stream_consumers_processed()
        total = sum(processed.values())
        if total != last:
            progress("processed " + ", ".join(f"{k}: {v:,}" for k, v in sorted(processed.items())))
            last = total
        if time.monotonic() > deadline:
            break
        time.sleep(1.0)
    pipeline.wait_drained(timeout_s=600)


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
        f"  unified profiles          {s.profiles:>10,}",
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
        "  metrics (as on CloudWatch; GET /v1/metrics under `cdp dev`):",
        *[f"    {name:<24}{value:>10,.0f}" for name, value in sorted(s.metrics.items()) if name != "ColdStart"],
        f"  time: send {s.seconds.get('send', 0)}s, drain {s.seconds.get('drain', 0)}s, "
        f"segment+activate {s.seconds.get('segment_and_activate', 0)}s, total {s.seconds.get('total', 0)}s",
        "",
        "checks:",
        *[f"  [{'ok' if passed else 'FAIL'}] {name}" for name, passed in s.checks.items()],
    ]
    return "\n".join(lines)
