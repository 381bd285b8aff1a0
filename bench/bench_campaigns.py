"""Campaign email throughput against the SES send rate.

One process sends N campaign emails (render, MIME, ledger claim + mark, SES v2 SendEmail raw) to a
moto server on loopback with the DynamoDB effect ledger, twice: unpaced (what the code costs per
message) and paced at a MaxSendRate below that (the pacer must hold the rate, not exceed it).
Prints messages/second for each and the ratio to the configured rate. Then a scheduled campaign's
tick fanning FANOUT members out, a page of 500 at a time (membership Query, SendMessageBatch of 10 to
the activation queue, a claim per page): members/second, and the slowest page against the activation
function's timeout (any audience size: each page is one bounded piece of work).
"""

from __future__ import annotations

import logging
import os
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import boto3

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.bench_unify import free_port, stack_settings  # noqa: E402

MESSAGES = int(os.environ.get("BENCH_CAMPAIGN_MESSAGES", "300"))
RATE = float(os.environ.get("BENCH_SES_RATE", "14"))  # SES's default production quota is 14/s
FANOUT = int(os.environ.get("BENCH_FANOUT_MEMBERS", "2000"))


def fan_out(settings, *, n: int) -> tuple[float, float, int]:  # type: ignore[no-untyped-def]
    """The tick (first page) then every fan-out page as the activation function handles it (membership
    Query of a page, SendMessageBatch of 10, the page's claim): members/s, the slowest page's seconds
    and the number of pages."""
    from cdp.adapters.idempotency import DynamoEffectLedger
    from cdp.adapters.membership import DynamoMembershipStore
    from cdp.adapters.sqs import SqsActivationMessages
    from cdp.campaigns.definition import find_campaign, load_campaigns
    from cdp.campaigns.scheduled import FANOUT_TYPE, PAGE_ATTEMPTS, on_fanout_page, run_scheduled_campaigns
    from cdp.segments.membership import Member

    root = Path(__file__).resolve().parents[1]
    digest = find_campaign(load_campaigns(root / "campaigns"), "weekly-digest")
    store = DynamoMembershipStore(settings)
    segment = digest.audience.segment  # type: ignore[union-attr]
    store.apply(segment, [Member(f"p{i:07d}", "r0", "2026-01-01T00:00:00Z") for i in range(n)], [])
    store.record_run(segment, "r0", {"run_id": "r0", "at": "2026-01-01T00:00:00.000Z"})
    sqs, pages = SqsActivationMessages(settings), []

    def enqueue(bodies: list) -> None:  # every body goes to the queue; the pages are also handled here
        sqs(bodies)
        pages.extend(b for b in bodies if b["type"] == FANOUT_TYPE)

    def consume() -> None:
        """What the activation function does meanwhile, untimed: moto's SendMessageBatch slows down
        as its queue grows (x8 from 500 to 3,000 messages held), which SQS does not."""
        url = settings.activation_queue_url
        while got := sqs.client.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages"):
            sqs.client.delete_message_batch(QueueUrl=url, Entries=[
                {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(got)])

    ledger = DynamoEffectLedger(settings, max_attempts=PAGE_ATTEMPTS)
    t0 = time.perf_counter()
    tick = run_scheduled_campaigns([digest], store=store, enqueue=enqueue, run_id="bench-tick",
                                   now=datetime.now(UTC))
    queued, seconds, handled = tick.queued[digest.name], time.perf_counter() - t0, 1
    slowest = seconds
    while pages:
        consume()
        p0 = time.perf_counter()
        queued += int(on_fanout_page(pages.pop(0), campaigns=[digest], store=store, enqueue=enqueue,
                                     ledger=ledger).removeprefix("queued:"))
        took = time.perf_counter() - p0
        seconds, slowest, handled = seconds + took, max(slowest, took), handled + 1
    assert queued == n, (queued, n)
    return n / seconds, slowest, handled


def run(settings, *, n: int, rate: float | None, run_id: str) -> float:  # type: ignore[no-untyped-def]
    from cdp.adapters.idempotency import DynamoEffectLedger
    from cdp.adapters.sesv2 import Pacer, SesV2RawSender
    from cdp.campaigns.definition import find_campaign, load_campaigns
    from cdp.campaigns.eligibility import Recipient
    from cdp.campaigns.send import CampaignReport, EmailSetup, deliver

    root = Path(__file__).resolve().parents[1]
    campaign = find_campaign(load_campaigns(root / "campaigns"), "loyalty-launch")
    sender = SesV2RawSender(settings)
    sender._pacer = Pacer(rate if rate else 1e9)  # noqa: SLF001 - the bench fixes the rate it measures
    setup = EmailSetup(settings.email_sender, sender, "https://cdp.example/v1api", lambda: "bench-key")
    ledger, report, now = DynamoEffectLedger(settings), CampaignReport(), datetime.now(UTC)
    people = [Recipient(f"p{i}", f"person{i}@shopper.io", {}, {"first_name": f"P{i}"}) for i in range(n)]
    t0 = time.perf_counter()
    for person in people:
        deliver(campaign, person, run_id=run_id, now=now, ledger=ledger, setup=setup, report=report)
    seconds = time.perf_counter() - t0
    assert len(report.sent) == n, report
    return n / seconds


def main() -> None:
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    for key, value in {"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench",
                       "AWS_DEFAULT_REGION": "us-east-1"}.items():
        os.environ.setdefault(key, value)
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        settings = stack_settings(f"http://127.0.0.1:{port}")
        boto3.client("ses", endpoint_url=f"http://127.0.0.1:{port}").verify_email_identity(
            EmailAddress=settings.email_sender)
        unpaced = run(settings, n=MESSAGES, rate=None, run_id="unpaced")
        # The pacer is checked at a rate this machine can exceed: half of what it reached unpaced.
        limit = min(RATE, unpaced / 2)
        paced = run(settings, n=min(MESSAGES, int(limit * 20)), rate=limit, run_id="paced")
        fanned, slowest, pages = fan_out(settings, n=FANOUT)
    finally:
        server.stop()
    print(f"campaign emails, one process, moto on loopback ({MESSAGES} messages)")
    print(f"  unpaced: {unpaced:8.1f} messages/s  (render + MIME + ledger claim/mark + SendEmail raw)")
    print(f"  paced at MaxSendRate {limit:.2f}/s: {paced:8.2f} messages/s  ({paced / limit:.0%} of the rate)")
    print(f"  SES quota {RATE:g}/s needs {max(1, int(-(-RATE // unpaced)))} concurrent sender(s) at this cost "
          f"(ActivateFunction may run 5)")
    print(f"  scheduled fan-out ({FANOUT:,} members, {pages} pages of <= 500): {fanned:8.0f} members/s queued; "
          f"slowest page {slowest:.1f} s (the activation function's timeout is 60 s)")


if __name__ == "__main__":
    main()
