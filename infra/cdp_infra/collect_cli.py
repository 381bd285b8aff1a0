"""``cdp sources create|list|disable`` and ``cdp quarantine list|replay``.

They talk to the stack named by the functions' environment (``SOURCES_TABLE``, ``LAKE_BUCKET``,
``EVENTS_STREAM``; ``AWS_ENDPOINT_URL`` for a local emulator), as the handlers do.
"""

from __future__ import annotations

import argparse
import base64
import json
import sys
from typing import Any


def add_parser(sub: Any) -> None:
    sources = sub.add_parser("sources", help="sources and their write keys")
    sources_sub = sources.add_subparsers(dest="sources_command", required=True)
    create = sources_sub.add_parser("create", help="create a source and print its new write key (shown once)")
    create.add_argument("name")
    create.set_defaults(func=cmd_sources_create)
    listing = sources_sub.add_parser("list", help="list sources (write keys are stored hashed, never shown)")
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(func=cmd_sources_list)
    disable = sources_sub.add_parser("disable", help="disable every write key of a source")
    disable.add_argument("source_id")
    disable.set_defaults(func=cmd_sources_disable)

    quarantine = sub.add_parser("quarantine", help="events the collector refused from known sources")
    q_sub = quarantine.add_subparsers(dest="quarantine_command", required=True)
    q_list = q_sub.add_parser("list", help="show quarantined events, oldest first")
    _filters(q_list)
    q_list.add_argument("--reason", help="only this reason code")
    q_list.add_argument("--limit", type=int, default=100)
    q_list.add_argument("--json", action="store_true", help="one JSON object per line")
    q_list.set_defaults(func=cmd_quarantine_list)
    replay = q_sub.add_parser("replay", help="re-submit the quarantined events that now pass")
    _filters(replay)
    replay.add_argument("--dry-run", action="store_true", help="only count what would pass")
    replay.set_defaults(func=cmd_quarantine_replay)


def _filters(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--from", dest="day_from", help="first day received, YYYY-MM-DD")
    parser.add_argument("--to", dest="day_to", help="last day received, YYYY-MM-DD")
    parser.add_argument("--source", dest="source_id", help="only this source id")


def _settings(*required: str) -> Any:
    from cdp.settings import Settings

    settings = Settings.from_env()
    missing = [name.upper() for name in required if not getattr(settings, name)]
    if missing:
        raise SystemExit(f"cdp: {', '.join(missing)} not set; run with the stack's environment")
    return settings


def cmd_sources_create(args: argparse.Namespace) -> int:
    from cdp.adapters.sources import DynamoSourceStore

    source_id, write_key = DynamoSourceStore(_settings("sources_table")).create_source(args.name)
    print(f"source id: {source_id}")
    print(f"write key: {write_key}   (shown once; only its hash is stored)")
    return 0


def cmd_sources_list(args: argparse.Namespace) -> int:
    from cdp.adapters.sources import DynamoSourceStore

    sources = DynamoSourceStore(_settings("sources_table")).list_sources()
    for s in sources:
        if args.json:
            print(
                json.dumps(
                    {"sourceId": s.source_id, "name": s.name, "enabled": s.enabled, "createdAt": s.created_at}
                )
            )
        else:
            print(f"{s.source_id}  {'enabled ' if s.enabled else 'disabled'}  {s.created_at}  {s.name}")
    return 0


def cmd_sources_disable(args: argparse.Namespace) -> int:
    from cdp.adapters.sources import DynamoSourceStore
    from cdp.errors import NotFound

    try:
        source = DynamoSourceStore(_settings("sources_table")).disable(args.source_id)
    except NotFound:
        print(f"cdp: no source {args.source_id}", file=sys.stderr)
        return 1
    print(f"disabled {source.source_id} ({source.name})")
    return 0


def cmd_quarantine_list(args: argparse.Namespace) -> int:
    from cdp.adapters.quarantine import S3Quarantine, entry_to_dict
    from cdp.collect.replay import list_quarantine

    items = list_quarantine(
        S3Quarantine(_settings("lake_bucket")),
        day_from=args.day_from,
        day_to=args.day_to,
        source_id=args.source_id,
        reason=args.reason,
        limit=args.limit,
    )
    for item in items:
        record = entry_to_dict(item.entry)
        if args.json:
            print(json.dumps({"key": item.key, "line": item.line, **record}, ensure_ascii=False))
            continue
        what = record.get("payload")
        if what is None and item.entry.raw_body is not None:
            what = _preview(item.entry.raw_body)
        index = "" if item.entry.index is None else f"[{item.entry.index}]"
        print(
            f"{item.entry.received_at}  {item.entry.source_id}  {item.entry.reason:<22} "
            f"/v1/{item.entry.route}{index}  {json.dumps(what, ensure_ascii=False)[:160]}"
        )
    if not args.json:
        print(f"{len(items)} quarantined" + (" (limit reached)" if len(items) == args.limit else ""))
    return 0


def cmd_quarantine_replay(args: argparse.Namespace) -> int:
    from cdp.adapters.kinesis import KinesisSink
    from cdp.adapters.quarantine import S3Quarantine
    from cdp.collect.replay import replay_quarantine

    settings = _settings("lake_bucket", "events_stream")
    report = replay_quarantine(
        S3Quarantine(settings),
        KinesisSink(settings),
        day_from=args.day_from,
        day_to=args.day_to,
        source_id=args.source_id,
        dry_run=args.dry_run,
        suppressed=suppression_check(settings),
    )
    verb = "would replay" if report.dry_run else "replayed"
    print(f"{verb} {report.replayed} events; {report.still_rejected} still rejected"
          + (f"; {report.suppressed} about suppressed people left out" if report.suppressed else ""))
    for reason, count in report.reasons.most_common():
        print(f"  {count:>6}  {reason}")
    return 0


def suppression_check(settings: Any) -> Any:
    """Whether an event is about a suppressed person (privacy requests), when the stack has the list."""
    if not settings.privacy_table:
        return None
    from cdp.adapters.privacy import DynamoPrivacyStore
    from cdp.privacy.suppression import SuppressionList, is_suppressed

    suppression = SuppressionList(DynamoPrivacyStore(settings))
    return lambda event: is_suppressed(event, suppression)


def _preview(raw: bytes) -> str:
    try:
        return raw[:200].decode("utf-8")
    except UnicodeDecodeError:
        return "base64:" + base64.b64encode(raw[:150]).decode("ascii")
