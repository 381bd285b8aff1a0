"""``cdp failures list|replay``: stream records unify kept, and the mappings' on-failure messages.

They talk to the stack named by the functions' environment (``LAKE_BUCKET``, ``EVENTS_STREAM``,
``FAILURE_QUEUE_URL``; ``AWS_ENDPOINT_URL`` for a local emulator), as the handlers do.
"""

from __future__ import annotations

import argparse
import json
from typing import Any


def add_parser(sub: Any) -> None:
    failures = sub.add_parser("failures", help="stream records that unify or the archive could not process")
    f_sub = failures.add_subparsers(dest="failures_command", required=True)
    listing = f_sub.add_parser("list", help="show kept records and the failure queue's messages")
    _common(listing)
    listing.add_argument("--fetch", action="store_true",
                         help="read the records each on-failure message points to (while the stream holds them)")
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(func=cmd_failures_list)
    replay = f_sub.add_parser("replay", help="put the failed records back on the stream (same messageIds)")
    _common(replay)
    replay.add_argument("--dry-run", action="store_true", help="only count what would be replayed")
    replay.set_defaults(func=cmd_failures_replay)


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--function", help="only this function's records (unify)")
    parser.add_argument("--all", dest="include_retrying", action="store_true",
                        help="also records still being retried by the mapping")


def _ports() -> tuple[Any, Any, Any]:
    from cdp.adapters.failures import KinesisRangeReader, S3FailureStore, SqsFailureQueue
    from cdp.settings import Settings

    settings = Settings.from_env()
    missing = [n.upper() for n in ("lake_bucket", "events_stream", "failure_queue_url") if not getattr(settings, n)]
    if missing:
        raise SystemExit(f"cdp: {', '.join(missing)} not set; run with the stack's environment")
    return S3FailureStore(settings), SqsFailureQueue(settings), KinesisRangeReader(settings)


def cmd_failures_list(args: argparse.Namespace) -> int:
    from cdp.failures import list_failures

    store, queue, reader = _ports()
    listing = list_failures(store, queue, reader if args.fetch else None, function=args.function,
                            include_retrying=args.include_retrying)
    for record in listing.records:
        if args.json:
            print(json.dumps({"kind": "record", "key": record.key, **record.to_dict()}))
            continue
        state = "kept" if record.final else f"retrying ({record.attempt} failed)"
        print(f"{record.arrived_at}  {record.function}  {record.shard_id}:{record.sequence_number}  "
              f"{record.reason:<22} {state}  {record.data[:120].decode('utf-8', 'replace')}")
    for pointer, fetched in listing.pointers:
        if args.json:
            print(json.dumps({"kind": "pointer", "function": pointer.function, "condition": pointer.condition,
                              "shardId": pointer.shard_id, "start": pointer.start, "end": pointer.end,
                              "batchSize": pointer.size, "at": pointer.at,
                              "records": None if fetched is None else [r.data.decode("utf-8", "replace")
                                                                        for r in fetched]}))
            continue
        print(f"{pointer.at}  {pointer.function}  {pointer.shard_id}:{pointer.start}..{pointer.end}  "
              f"{pointer.condition}  {pointer.size} record(s)"
              + ("" if fetched is None or not args.fetch else f", {len(fetched)} still in the stream")
              + (", no longer in the stream" if args.fetch and fetched is None else ""))
        for record in fetched or []:
            print(f"    {record.sequence_number}  {record.data[:120].decode('utf-8', 'replace')}")
    if not args.json:
        print(f"{len(listing.records)} kept record(s), {len(listing.pointers)} on-failure message(s)")
    return 0


def cmd_failures_replay(args: argparse.Namespace) -> int:
    from cdp.adapters.kinesis import KinesisSink
    from cdp.failures import replay_failures
    from cdp.settings import Settings

    from .collect_cli import suppression_check

    store, queue, reader = _ports()
    report = replay_failures(store, queue, reader, KinesisSink(Settings.from_env()), function=args.function,
                             include_retrying=args.include_retrying, dry_run=args.dry_run,
                             suppressed=suppression_check(Settings.from_env()))
    verb = "would replay" if args.dry_run else "replayed"
    print(f"{verb} {report.replayed} record(s): {report.from_store} from kept records, "
          f"{report.from_stream} from the stream")
    if report.suppressed:
        print(f"{report.suppressed} record(s) about suppressed people left out")
    for pointer in report.unrecoverable:
        print(f"cdp: {pointer.shard_id}:{pointer.start}..{pointer.end} is neither in the stream nor kept")
    return 1 if report.unrecoverable else 0
