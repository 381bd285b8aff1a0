"""Destination throughput: membership changes synced to each ad audience fake, and webhook posts.

Per destination, against the loopback fakes (which check every request as the platforms would):

* incremental sync: --changes entries through ``sync_changes`` (effect ledger in memory, batches of
  up to 10,000), members per second end to end (normalise, hash, claim, POST, mark);
* resync: the same members as one multi-batch session (recording what the audience holds);
* webhooks: --posts signed posts through ``deliver`` (one request per change).

    python bench/bench_destinations.py                      # 20,000 changes, 500 webhook posts
    python bench/bench_destinations.py --changes 50000 --posts 2000

The fakes run in this process, so the figures bound our side (hashing, JSON, HTTP on loopback), not
the platforms' own limits (Meta and Google rate-limit per account; see docs/architecture.md).
"""

from __future__ import annotations

import argparse
import base64
import json
import sys
import time
from typing import Any

from cdp.activation import InMemoryEffectLedger
from cdp.activation.audiences.google import GoogleAudience
from cdp.activation.audiences.holdings import InMemoryHoldings
from cdp.activation.audiences.meta import MetaAudience
from cdp.activation.audiences.sync import resync, sync_changes
from cdp.activation.destinations import (
    Delivery,
    DeliveryContext,
    InMemoryDestinationState,
    deliver,
    parse_destination,
)
from cdp.adapters.http import Urllib3Transport
from cdp.segments.membership import InMemoryMembershipStore, Member, MembershipChange
from cdp_infra.fakes import GoogleFake, MetaFake, WebhookReceiver

AT = "2025-01-01T00:00:00Z"


class Views:
    def __init__(self, n: int) -> None:
        self.profiles = {f"p{i}": {"profile_id": f"p{i}", "identifiers": {"email": [f"person{i}@example.com"],
                                                                       "phone": [f"+1555{i:07d}"]},
                                   "traits": {"first_name": "Ann", "last_name": "Lee", "country": "US",
                                              "postal_code": "94103"}, "consent": {"ads": True}}
                         for i in range(n)}

    def views(self, ids: list[str]) -> dict[str, Any]:
        return {i: self.profiles[i] for i in ids if i in self.profiles}

    def merged_into(self, ids: list[str]) -> dict[str, str]:
        return {}


def bench_audience(name: str, platform: Any, fake: Any, n: int) -> dict[str, Any]:
    membership = InMemoryMembershipStore()
    membership.apply("vip", [Member(f"p{i}", "r1", AT) for i in range(n)], [])
    views = Views(n)
    changes = [MembershipChange("vip", f"p{i}", "entered", "r1", AT) for i in range(n)]
    t0 = time.perf_counter()
    report = sync_changes(name, changes, platform=platform, profiles=views, membership=membership,
                          ledger=InMemoryEffectLedger())
    sync_s = time.perf_counter() - t0
    t1 = time.perf_counter()
    again = resync(["vip"], platform=platform, profiles=views, membership=membership, session_id=7,
                   holdings=InMemoryHoldings(), destination=name)
    resync_s = time.perf_counter() - t1
    assert len(report.added) == n and again.sent == n and not fake.violations, fake.violations[:3]
    return {"destination": name, "members": n, "requests": len(fake.requests),
            "sync_members_per_s": round(n / sync_s), "resync_members_per_s": round(n / resync_s)}


def bench_webhook(posts: int) -> dict[str, Any]:
    secret = "whsec_" + base64.b64encode(b"b" * 32).decode()
    with WebhookReceiver(secret) as receiver:
        destination = parse_destination(f"type: webhook\nsegments: [vip]\nsecret: s\nurl: {receiver.url}/h\n", "hook.yaml")

        class Targets:
            def webhook(self, d: Any) -> Any:
                from cdp.activation.webhooks import Webhook

                return Webhook(d.name, d.options["url"], secret)

            def audience(self, d: Any) -> Any:
                raise NotImplementedError

        membership = InMemoryMembershipStore()
        ctx = DeliveryContext(destinations={"hook": destination}, targets=Targets(), profiles=Views(0),
                              membership=membership, ledger=InMemoryEffectLedger(), queue=None,  # type: ignore[arg-type]
                              dead_letters=None, state=InMemoryDestinationState(),  # type: ignore[arg-type]
                              transport=Urllib3Transport(allow_local=True))
        items = [Delivery(MembershipChange("vip", f"p{i}", "entered", "r1", AT)) for i in range(posts)]
        t0 = time.perf_counter()
        deliver(items, ctx, now=time.time())
        seconds = time.perf_counter() - t0
        assert receiver.deliveries == posts and not receiver.violations
    return {"destination": "webhook", "posts": posts, "posts_per_s": round(posts / seconds)}


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--changes", type=int, default=20_000)
    parser.add_argument("--posts", type=int, default=500)
    args = parser.parse_args(argv)
    transport = Urllib3Transport(timeout_s=60)
    results = []
    with MetaFake() as meta:
        results.append(bench_audience("meta", MetaAudience("1", "meta-token", transport, base_url=meta.url), meta,
                                      args.changes))
    with GoogleFake() as google:
        results.append(bench_audience("google", GoogleAudience("1234567890", "9", "google-token", transport,
                                                               base_url=google.url), google, args.changes))
    results.append(bench_webhook(args.posts))
    for row in results:
        print(json.dumps(row))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
