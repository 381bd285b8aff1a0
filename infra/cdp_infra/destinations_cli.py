"""``cdp destinations validate|list``, ``cdp audiences resync NAME``, ``cdp webhooks replay|enable|secret``.

They talk to the stack named by the environment, as the handlers do (``--stack NAME`` or the running
``cdp dev``); the destinations are those of ``config/destinations/`` (and, on the local stack, the
demo's ``examples/destinations/``). ``validate`` checks both folders.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import sys
from pathlib import Path
from typing import Any

from .template import DESTINATIONS_DIR, EXAMPLE_DESTINATIONS, REPO_ROOT, destination_dirs

SEGMENTS_DIR = REPO_ROOT / "segments"


def add_parser(sub: Any) -> None:
    dest = sub.add_parser("destinations", help="ad audiences and webhooks as code (config/destinations/)")
    d_sub = dest.add_subparsers(dest="destinations_command", required=True)
    validate = d_sub.add_parser("validate", help="check every destination file (file:line errors)")
    validate.add_argument("--dir", type=Path, action="append",
                          help=f"a folder to check (default: {DESTINATIONS_DIR.relative_to(REPO_ROOT)} and "
                               f"{EXAMPLE_DESTINATIONS.relative_to(REPO_ROOT)})")
    validate.set_defaults(func=cmd_validate)
    listing = d_sub.add_parser("list", help="the destinations and the segments they follow")
    listing.add_argument("--dir", type=Path, action="append")
    listing.set_defaults(func=cmd_list)

    audiences = sub.add_parser("audiences", help="ad audiences (Meta Custom Audiences, Google Customer Match)")
    a_sub = audiences.add_subparsers(dest="audiences_command", required=True)
    resync = a_sub.add_parser("resync", help="rebuild an audience: current members with ads consent added, "
                                             "everyone else it holds removed")
    resync.add_argument("name", help="the destination's name")
    resync.add_argument("--dir", type=Path, action="append")
    resync.set_defaults(func=cmd_resync)

    hooks = sub.add_parser("webhooks", help="webhooks (and every destination's dead letters)")
    w_sub = hooks.add_subparsers(dest="webhooks_command", required=True)
    replay = w_sub.add_parser("replay", help="put dead-lettered deliveries back on the destinations queue")
    replay.add_argument("--destination", help="only this destination's")
    replay.add_argument("--dry-run", action="store_true", help="only count them")
    replay.set_defaults(func=cmd_replay)
    enable = w_sub.add_parser("enable", help="switch a webhook disabled by 410 Gone back on")
    enable.add_argument("name")
    enable.set_defaults(func=cmd_enable)
    secret = w_sub.add_parser("secret", help="print a new whsec_ signing secret")
    secret.set_defaults(func=cmd_secret)


def _settings() -> Any:
    from dataclasses import replace

    from cdp.settings import Settings

    settings = Settings.from_env()
    if not settings.destination_secret_prefix and os.environ.get("CDP_STACK"):
        settings = replace(settings, destination_secret_prefix=f"{os.environ['CDP_STACK']}/destinations/")
    return settings


def _load(directories: list[Path] | None) -> dict[str, Any]:
    from cdp.activation.destinations import load_destinations
    from cdp.segments.definition import load_segments

    names = [d.name for d in load_segments(SEGMENTS_DIR)] if SEGMENTS_DIR.is_dir() else None
    return load_destinations(directories or destination_dirs(), segments=names)


def cmd_validate(args: argparse.Namespace) -> int:
    from cdp.errors import InvalidConfig, InvalidSegment

    try:
        found = _load(args.dir or [DESTINATIONS_DIR, EXAMPLE_DESTINATIONS])
    except (InvalidConfig, InvalidSegment) as exc:
        print(f"cdp: {exc}", file=sys.stderr)
        return 1
    print(f"{len(found)} destination(s) valid")
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    for d in _load(args.dir).values():
        print(f"{d.name:28} {d.type:16} {', '.join(d.segments)}")
    return 0


def cmd_resync(args: argparse.Namespace) -> int:
    from cdp.activation.audiences.sync import StoreProfileViews, resync
    from cdp.adapters.destinations import DynamoAudienceHoldings, SecretTargets
    from cdp.adapters.dynamo_profiles import DynamoIdentityStore
    from cdp.adapters.membership import DynamoMembershipStore

    destination = _load(args.dir).get(args.name)
    if destination is None or destination.type == "webhook":
        print(f"cdp: no ad audience named {args.name!r}", file=sys.stderr)
        return 2
    settings = _settings()
    report = resync(list(destination.segments), platform=SecretTargets(settings).audience(destination),
                    profiles=StoreProfileViews(DynamoIdentityStore(settings)),
                    membership=DynamoMembershipStore(settings), session_id=secrets.randbits(62),
                    holdings=DynamoAudienceHoldings(settings), destination=destination.name)
    print(json.dumps({"destination": destination.name, "members": report.members, "sent": report.sent,
                      "removed": report.removed, "replaced": report.replaced, "batches": report.batches,
                      "skipped": report.skipped}))
    return 0


def cmd_replay(args: argparse.Namespace) -> int:
    from cdp.adapters.destinations import SqsDeadLetters, SqsDeliveryQueue

    settings = _settings()
    counts = replay_dead_letters(SqsDeadLetters(settings), SqsDeliveryQueue(settings),
                                 destination=args.destination, dry_run=args.dry_run)
    print(json.dumps({"replayed" if not args.dry_run else "would_replay": sum(counts.values()), "by_reason": counts}))
    return 0


def replay_dead_letters(letters: Any, queue: Any, *, destination: str | None = None,
                        dry_run: bool = False) -> dict[str, int]:
    """Every dead-lettered delivery (of one destination) back on the destinations queue; counts by reason."""
    from dataclasses import replace

    counts: dict[str, int] = {}
    for delivery, receipt in letters.drain():
        if destination and delivery.destination != destination:
            continue  # left hidden for 5 minutes, then visible again in the store
        counts[delivery.reason or "?"] = counts.get(delivery.reason or "?", 0) + 1
        if dry_run:
            continue
        # A fresh schedule; the effect ledger still dedupes what was delivered before.
        queue.send([(replace(delivery, attempt=0, not_before=0.0, reason=""), 0)])
        letters.delete(receipt)
    return counts


def cmd_enable(args: argparse.Namespace) -> int:
    from cdp.adapters.destinations import DynamoDestinationState

    DynamoDestinationState(_settings()).enable(args.name)
    print(f"{args.name} enabled")
    return 0


def cmd_secret(args: argparse.Namespace) -> int:
    from cdp.activation.webhooks import new_secret

    print(new_secret())
    return 0
