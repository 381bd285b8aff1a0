"""Campaign email throughput against the SES send rate.

One process sends N campaign emails (render, MIME, ledger claim + mark, SES v2 SendEmail raw) to a
moto server on loopback with the DynamoDB effect ledger, twice: unpaced (what the code costs per
message) and paced at a MaxSendRate below that (the pacer must hold the rate, not exceed it).
Prints messages/second for each and the ratio to the configured rate. Then a scheduled campaign's
tick fanning FANOUT members out (membership Query, SendMessageBatch of 10 to the activation queue):
members/second, which bounds the audience one segment-function invocation (900 s) can fan out.
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


def fan_out(settings, *, n: int) -> float:  # type: ignore[no-untyped-def]
    from cdp.adapters.membership import DynamoMembershipStore
    from cdp.adapters.sqs import SqsActivationMessages
    from cdp.campaigns.definition import find_campaign, load_campaigns
    from cdp.campaigns.scheduled import run_scheduled_campaigns
    from cdp.segments.membership import Member

    root = Path(__file__).resolve().parents[1]
    digest = find_campaign(load_campaigns(root / "campaigns"), "weekly-digest")
    store = DynamoMembershipStore(settings)
    segment = digest.audience.segment  # type: ignore[union-attr]
    store.apply(segment, [Member(f"p{i:07d}", "r0", "2026-01-01T00:00:00Z") for i in range(n)], [])
    store.record_run(segment, "r0", {"run_id": "r0", "at": "2026-01-01T00:00:00.000Z"})
    t0 = time.perf_counter()
    tick = run_scheduled_campaigns([digest], store=store, enqueue=SqsActivationMessages(settings),
                                   run_id="bench-tick", now=datetime.now(UTC))
    seconds = time.perf_counter() - t0
    assert tick.queued == {digest.name: n}, tick
    return n / seconds


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
        fanned = fan_out(settings, n=FANOUT)
    finally:
        server.stop()
    print(f"campaign emails, one process, moto on loopback ({MESSAGES} messages)")
    print(f"  unpaced: {unpaced:8.1f} messages/s  (render + MIME + ledger claim/mark + SendEmail raw)")
    print(f"  paced at MaxSendRate {limit:.2f}/s: {paced:8.2f} messages/s  ({paced / limit:.0%} of the rate)")
    print(f"  SES quota {RATE:g}/s needs {max(1, int(-(-RATE // unpaced)))} concurrent sender(s) at this cost "
          f"(ActivateFunction may run 5)")
    print(f"  scheduled tick fan-out ({FANOUT:,} members): {fanned:8.0f} members/s queued "
          f"(~{fanned * 900:,.0f} members per 900 s segment invocation)")


if __name__ == "__main__":
    main()
