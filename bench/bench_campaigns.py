"""Campaign email throughput against the SES send rate.

One process sends N campaign emails (render, MIME, ledger claim + mark, SES v2 SendEmail raw) to a
moto server on loopback with the DynamoDB effect ledger, twice: unpaced (what the code costs per
message) and paced at a MaxSendRate below that (the pacer must hold the rate, not exceed it).
Prints messages/second for each and the ratio to the configured rate.
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
    finally:
        server.stop()
    print(f"campaign emails, one process, moto on loopback ({MESSAGES} messages)")
    print(f"  unpaced: {unpaced:8.1f} messages/s  (render + MIME + ledger claim/mark + SendEmail raw)")
    print(f"  paced at MaxSendRate {limit:.2f}/s: {paced:8.2f} messages/s  ({paced / limit:.0%} of the rate)")
    print(f"  SES quota {RATE:g}/s needs {max(1, int(-(-RATE // unpaced)))} concurrent sender(s) at this cost "
          f"(ActivateFunction may run 5)")


if __name__ == "__main__":
    main()
