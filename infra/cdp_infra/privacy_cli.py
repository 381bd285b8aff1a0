"""``cdp privacy export TYPE:VALUE``: an access request's archive, stored under exports/ and linked.

Runs the same code a privacy request runs (cdp.privacy.export.run_export) against the stack named
by the environment, or the running ``cdp dev`` stack of this folder, and prints a presigned link
that expires after ``--minutes``.
"""

from __future__ import annotations

import argparse
import json
import secrets
import sys
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any


@dataclass(frozen=True)
class ExportRequest:
    """A request as ``run_export`` reads it, for an export asked for on the command line."""

    id: str
    identifiers: tuple[str, ...] = field(default_factory=tuple)


def add_parser(sub: Any) -> None:
    privacy = sub.add_parser("privacy", help="privacy requests: export a person's data (access request)")
    actions = privacy.add_subparsers(dest="privacy_action", required=True)
    export = actions.add_parser("export", help="archive everything about a person; print a short-lived link")
    export.add_argument("identifier", help="type:value, e.g. email:alice@example.com or user_id:42, "
                                           "or profile:<profile id>")
    export.add_argument("--request-id", default=None, help="the archive's name under exports/ (default: new)")
    export.add_argument("--minutes", type=int, default=15, help="minutes the link stays valid (1-60)")
    export.add_argument("--json", action="store_true", help="print the result as JSON")
    export.set_defaults(func=cmd_export)


def new_request_id(now: datetime) -> str:
    return f"export-{now.strftime('%Y%m%dT%H%M%SZ')}-{secrets.token_hex(4)}"


def cmd_export(args: argparse.Namespace) -> int:
    from cdp.adapters.exports import stack_export_stores
    from cdp.errors import CdpError
    from cdp.identity.config import load_identity_config
    from cdp.privacy.export import run_export
    from cdp.segments.catalog import all_segments
    from cdp.settings import Settings

    from .template import REPO_ROOT

    settings = Settings.from_env()
    if not settings.profiles_table or not settings.lake_bucket:
        print("cdp: no stack: run `cdp dev` in this folder, or set the stack's environment", file=sys.stderr)
        return 2
    if not 1 <= args.minutes <= 60:
        print("cdp: --minutes must be 1 to 60", file=sys.stderr)
        return 2
    now = datetime.now(UTC)
    stores = stack_export_stores(
        settings, config=load_identity_config(REPO_ROOT / "config" / "identity.yaml"),
        segments=[d.name for d in all_segments(REPO_ROOT / "segments")], link_seconds=args.minutes * 60)
    request = ExportRequest(id=args.request_id or new_request_id(now), identifiers=(args.identifier,))
    try:
        result = run_export(request, stores, now=now)
    except CdpError as exc:
        print(json.dumps({"error": exc.code, "reason": exc.reason, **exc.details}, default=str), file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(result.to_dict(), indent=2))
        return 0
    if not result.found:
        print(f"nothing found for {args.identifier}; the archive says so")
    else:
        complete = "" if result.complete else " (not complete: more events than one archive holds)"
        print(f"profile {result.profile_id}: {result.events} events{complete}")
    print(f"archive: s3://{settings.lake_bucket}/{result.key} ({result.bytes} bytes)")
    print(f"link (until {result.expires_at}):")
    print(result.url)
    return 0
