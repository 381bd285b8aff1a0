"""``cdp privacy request|status|erase|export|verify``: privacy requests on the running stack.

``request`` and ``status`` go through the collector's admin API (``POST /v1/privacy/requests``,
``GET /v1/privacy/requests/{id}``) with the admin token, as ``cdp profile`` does; an export's status
shows its archive's link. ``erase`` and ``export`` run (or resume) a request's job here, on the stack
the environment names, as the privacy function would;
``verify`` scans every store for the request's person and exits 1 if anything remains.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from cdp.settings import Settings

KINDS = ("erase", "export", "suppress", "unsuppress")


def add_parser(sub: Any) -> None:
    from .cli import DEFAULT_URL

    privacy = sub.add_parser("privacy", help="erase, export or suppress a person; follow and verify requests")
    p_sub = privacy.add_subparsers(dest="privacy_command", required=True)
    request = p_sub.add_parser("request", help="create a request: erase|export|suppress|unsuppress TYPE:VALUE")
    request.add_argument("kind", choices=KINDS)
    request.add_argument("identifier", help="type:value, e.g. email:alice@example.com or user_id:42")
    status = p_sub.add_parser("status", help="a request's progress, what it removed, its audit trail")
    status.add_argument("request_id")
    for parser in (request, status):
        parser.add_argument("--url", default=os.environ.get("CDP_URL", DEFAULT_URL))
        parser.add_argument("--token", default=None, help="admin token (or CDP_ADMIN_TOKEN)")
        parser.add_argument("--json", action="store_true")
    request.set_defaults(func=cmd_request)
    status.set_defaults(func=cmd_status)
    erase = p_sub.add_parser("erase", help="run (or resume) an erase request here, on the stack's stores")
    erase.add_argument("request_id")
    erase.add_argument("--json", action="store_true")
    erase.set_defaults(func=cmd_run)
    export = p_sub.add_parser("export", help="run (or rerun) an export request here; print its archive's link")
    export.add_argument("request_id")
    export.add_argument("--json", action="store_true")
    export.set_defaults(func=cmd_run)
    verify = p_sub.add_parser("verify", help="scan every store for the request's person; exit 1 if anything remains")
    verify.add_argument("request_id")
    verify.add_argument("--json", action="store_true")
    verify.set_defaults(func=cmd_verify)


def _api(args: argparse.Namespace, method: str, path: str, body: dict[str, Any] | None = None) -> tuple[int, Any]:
    from .cli import _admin_token
    from .client import TrackingClient

    client = TrackingClient(args.url, "")
    headers = {"Authorization": f"Bearer {_admin_token(args)}", "Content-Type": "application/json"}
    try:
        status, _, raw = client.request(method, path, json.dumps(body).encode() if body is not None else None,
                                        headers=headers)
    finally:
        client.close()
    try:
        return status, json.loads(raw)
    except ValueError:
        return status, {"error": raw.decode("utf-8", "replace")}


def cmd_request(args: argparse.Namespace) -> int:
    status, answer = _api(args, "POST", "/v1/privacy/requests", {"kind": args.kind, "identifier": args.identifier})
    _print(answer, args.json)
    return 0 if status == 200 else 1


def cmd_status(args: argparse.Namespace) -> int:
    status, answer = _api(args, "GET", f"/v1/privacy/requests/{quote(args.request_id, safe='')}")
    _print(answer, args.json)
    return 0 if status == 200 else 1


def _print(answer: dict[str, Any], as_json: bool) -> None:
    if as_json or "request_id" not in answer:
        print(json.dumps(answer, indent=2))
        return
    print(format_request(answer))


def format_request(view: dict[str, Any]) -> str:
    lines = [f"request {view['request_id']}: {view['kind']} — {view['status']} (due {view['due_at']})",
             f"  identifiers covered {view.get('identifiers_covered', 0)}, "
             f"profiles {view.get('profiles_covered', 0)}"]
    if view.get("message"):
        lines.append(f"  {view['message']}")
    result = view.get("result") or {}
    for store, count in sorted((result.get("removed") or {}).items()):
        lines.append(f"  removed {store:<34} {count:>8,}")
    if result.get("url"):
        lines.append(f"  archive {result.get('key')}: {result.get('events', 0)} events, link until {result.get('expires_at')}")
        lines.append(f"  {result['url']}")
    if "remaining" in result:
        lines.append(f"  verification: {result['remaining']} records remain in {result.get('stores_checked', 0)} stores")
    for entry in view.get("audit", []):
        lines.append(f"  {entry['at']}  {entry['what']}")
    return "\n".join(lines)


def _stack() -> Settings | None:
    settings = Settings.from_env()
    if not settings.privacy_table or not settings.lake_bucket:
        print("cdp: no stack: run `cdp dev` in this folder, or name one with --stack", file=sys.stderr)
        return None
    return settings


def _segments() -> list[str]:
    from cdp.segments.catalog import all_segments

    from .template import REPO_ROOT

    return [d.name for d in all_segments(REPO_ROOT / "segments")]


def cmd_run(args: argparse.Namespace) -> int:
    """Run (or resume) a request of any kind here; the job checks its own kind (RUNNERS)."""
    from cdp.adapters.privacy import build_privacy_stores
    from cdp.jobs.privacy_job import run_request

    settings = _stack()
    if settings is None:
        return 2
    started = time.monotonic()
    from cdp.activation.destinations import load_destinations
    from cdp.identity.config import load_identity_config

    from .template import REPO_ROOT, destination_dirs

    segments = _segments()
    stores = build_privacy_stores(settings, segments=segments,
                                  config=load_identity_config(REPO_ROOT / "config" / "identity.yaml"),
                                  destinations=load_destinations(destination_dirs(), segments=segments))
    request = run_request(args.request_id, stores, now=lambda: datetime.now(UTC))
    if request is None:
        print(f"cdp: no privacy request {args.request_id}", file=sys.stderr)
        return 1
    view = request.view()
    view["seconds"] = round(time.monotonic() - started, 2)
    _print(view, args.json)
    return 0 if request.status == "done" else 1


def cmd_verify(args: argparse.Namespace) -> int:
    from cdp.adapters.privacy import AwsTraceScanner, DynamoPrivacyStore
    from cdp.privacy.erase import needles_of, person_days
    from cdp.privacy.verify import verify

    settings = _stack()
    if settings is None:
        return 2
    request = DynamoPrivacyStore(settings).get_request(args.request_id)
    if request is None:
        print(f"cdp: no privacy request {args.request_id}", file=sys.stderr)
        return 1
    found = verify(needles_of(request.person), AwsTraceScanner(settings), days=person_days(request.person) or None)
    if args.json:
        print(json.dumps(found, indent=2))
    else:
        print(format_verification(found))
    return 0 if found["remaining"] == 0 else 1


def format_verification(found: dict[str, Any]) -> str:
    lines = [f"{found['remaining']} records remain in {found['stores_checked']} stores"]
    for store, count in sorted(found["by_store"].items()):
        lines.append(f"  {store:<30} {count:>6}")
    for finding in found["findings"]:
        lines.append(f"  found in {finding['store']}: {finding['where']} ({', '.join(finding['kinds'])})")
    return "\n".join(lines)
