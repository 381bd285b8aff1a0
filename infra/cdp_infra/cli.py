"""The ``cdp`` command: run the local stack, the demo, and talk to a running collector."""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import tempfile
import threading
from collections.abc import Sequence
from dataclasses import fields
from pathlib import Path
from urllib.parse import quote

from cdp.settings import Settings

DEFAULT_URL = "http://127.0.0.1:8080"
DEFAULT_WRITE_KEY = "local-write-key"
# Written by `cdp dev` while it runs: the environment of its stack, so that other `cdp` commands
# (sources, quarantine, segments, profile unmerge) started in this folder talk to it.
DEV_STACK_FILE = Path(".cdp") / "dev-stack.json"
_STACK_VARIABLES = ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_DYNAMODB", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
                    "AWS_SESSION_TOKEN", "AWS_DEFAULT_REGION", "CLAIM_TRANSACTION_MIN")


def _admin_token(args: argparse.Namespace) -> str:
    """--token, else CDP_ADMIN_TOKEN (an operator's token or the break-glass one), else the running
    `cdp dev` stack's break-glass secret."""
    if getattr(args, "token", None):
        return str(args.token)
    if os.environ.get("CDP_ADMIN_TOKEN"):
        return os.environ["CDP_ADMIN_TOKEN"]
    settings = Settings.from_env()
    if not settings.admin_token_secret_arn:
        return ""
    from cdp.adapters.secrets import CachedSecret

    return CachedSecret(settings, settings.admin_token_secret_arn).value()


def cmd_dev(args: argparse.Namespace) -> int:
    from .local import LocalConfig, LocalPipeline

    # No default token anywhere: each run's stack generates one unless --token names it. The lake
    # lives on local disk for the run (LAKE_ROOT), like the emulator's state it goes when it stops.
    lake = tempfile.TemporaryDirectory(prefix="cdp-lake-")
    pipeline = LocalPipeline(LocalConfig(port=args.port, host=args.host, write_key=args.write_key,
                                         admin_token=args.token or os.environ.get("CDP_ADMIN_TOKEN"),
                                         lake_dir=lake.name)).start()
    print(f"collector:   {pipeline.url}  (point an SDK's host here)")
    print(f"write key:   {args.write_key}")
    print(f"admin token: {pipeline.admin_token}  (break-glass: every scope; `cdp operators add` for your own)")
    print(f"metrics:     {pipeline.url}/v1/metrics  (admin token; what CloudWatch would show)")
    print(f"lake:        {lake.name}  (Parquet on local disk for this run)")
    print(f"emulated AWS (moto) on {pipeline.endpoint_url}; Ctrl-C to stop", flush=True)
    names = {f.name.upper() for f in fields(Settings)}
    DEV_STACK_FILE.parent.mkdir(exist_ok=True)
    DEV_STACK_FILE.write_text(json.dumps({k: v for k, v in os.environ.items()
                                          if k in names or k in _STACK_VARIABLES}, indent=2))
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        stop.wait()
    except KeyboardInterrupt:
        pass
    finally:
        DEV_STACK_FILE.unlink(missing_ok=True)
        pipeline.stop()
        lake.cleanup()
    return 0


def use_dev_stack() -> bool:
    """Take the running `cdp dev` stack's environment, unless a stack is named already."""
    if os.environ.get("LAKE_BUCKET") or not DEV_STACK_FILE.exists():
        return False
    for name, value in json.loads(DEV_STACK_FILE.read_text()).items():
        os.environ.setdefault(name, value)
    return True


def cmd_demo(args: argparse.Namespace) -> int:
    from .demo import format_summary, run_demo

    summary = run_demo(people=args.people, events=args.events, seed=args.seed,
                       out=None if args.quiet else sys.stderr)
    if args.json:
        print(json.dumps(summary.to_dict(), indent=2))
    else:
        print(format_summary(summary))
    return 0 if summary.ok else 1


def cmd_profile(args: argparse.Namespace) -> int:
    from .client import TrackingClient

    if args.action == "unmerge":
        return cmd_unmerge(args)
    if args.action == "view":
        return cmd_view_link(args)
    client = TrackingClient(args.url, "")
    path = f"/v1/profiles/{quote(args.identifier, safe=':@+')}"
    if args.action in ("explain", "timeline"):
        path += f"/{args.action}"
    if args.action == "timeline" and args.limit is not None:
        path += f"?limit={args.limit}"
    status, _, body = client.request("GET", path, headers={"Authorization": f"Bearer {_admin_token(args)}"})
    client.close()
    try:
        answer = json.loads(body)
    except ValueError:
        print(body.decode("utf-8", "replace"))
        return 1
    if args.action == "timeline" and status == 200 and not args.json:
        from cdp.profiles.render import render_text

        print(render_text(answer), end="")
    else:
        print(json.dumps(answer, indent=2))
    return 0 if status == 200 else 1


def cmd_view_link(args: argparse.Namespace) -> int:
    """Print a link to the person's page, valid for --minutes: signed by the customer view for an
    operator's token (so the page's audit names the operator), or here with the break-glass token."""
    import time
    from urllib.parse import urlencode

    from cdp.operators import operator_id_of
    from cdp.profiles.links import sign_view_link

    token = _admin_token(args)
    if not token:
        print("no admin token: give --token, set CDP_ADMIN_TOKEN or run `cdp dev`", file=sys.stderr)
        return 1
    base = args.url.rstrip("/")
    if operator_id_of(token) is not None:
        from .client import TrackingClient

        client = TrackingClient(args.url, "")
        status, _, body = client.request(
            "POST", f"/v1/profiles/{quote(args.identifier, safe=':@+')}/view-link?minutes={args.minutes}",
            headers={"Authorization": f"Bearer {token}"})
        client.close()
        answer = json.loads(body or b"{}")
        if status != 200:
            print(json.dumps(answer, indent=2), file=sys.stderr)
            return 1
        print(f"{base}{answer['path']}")
        return 0
    try:
        query = urlencode(sign_view_link(args.identifier, token, now=time.time(), minutes=args.minutes))
    except ValueError as exc:
        print(exc, file=sys.stderr)
        return 2
    print(f"{base}/v1/profiles/{quote(args.identifier, safe=':@+')}/view?{query}")
    return 0


def cmd_unmerge(args: argparse.Namespace) -> int:
    """Detach an identifier (or undo a merge) and rebuild both profiles from the lake."""
    from datetime import UTC, datetime

    from cdp.adapters.dynamo_profiles import DynamoIdentityStore
    from cdp.adapters.engines import query_engine
    from cdp.errors import CdpError
    from cdp.identity.config import load_identity_config
    from cdp.jobs.unmerge_job import detach_identifier, undo_profile_merge

    from .template import REPO_ROOT

    settings = Settings.from_env()
    if not settings.profiles_table:
        print("cdp: no stack: run `cdp dev` in this folder, or set the stack's environment", file=sys.stderr)
        return 2
    config = load_identity_config(REPO_ROOT / "config" / "identity.yaml")
    from .collect_cli import suppression_check

    store, engine, now = DynamoIdentityStore(settings), query_engine(settings), datetime.now(UTC)
    suppressed = suppression_check(settings)
    try:
        if args.undo_merge:
            result = undo_profile_merge(args.identifier, store, engine, config=config, now=now, reason=args.reason,
                                        suppressed=suppressed)
        else:
            result = detach_identifier(args.identifier, store, engine, config=config, now=now, reason=args.reason,
                                       suppressed=suppressed)
    except CdpError as exc:
        print(json.dumps({"error": exc.code, "reason": exc.reason, **exc.details}, default=str), file=sys.stderr)
        return 1
    print(json.dumps({"profiles": result.profiles, "events_replayed": result.replayed}, indent=2))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cdp", description="Serverless Customer Data Platform")
    parser.add_argument("-v", "--verbose", action="store_true", help="log what the handlers log")
    parser.add_argument("--stack", default=os.environ.get("CDP_STACK") or None, metavar="NAME",
                        help="work on a deployed stack, found from its CloudFormation outputs (on AWS with "
                             "the ambient credentials, or the stack `make deploy-local` runs); default: `cdp dev`")
    sub = parser.add_subparsers(dest="command", required=True)

    dev = sub.add_parser("dev", help="run the whole stack locally until Ctrl-C")
    dev.add_argument("--port", type=int, default=8080)
    dev.add_argument("--host", default="127.0.0.1")
    dev.add_argument("--write-key", default=DEFAULT_WRITE_KEY)
    dev.add_argument("--token", "--admin-token", dest="token", default=None,
                     help="the profile API's admin token (or CDP_ADMIN_TOKEN); generated per run if not given")
    dev.set_defaults(func=cmd_dev)

    demo = sub.add_parser("demo", help="run the main job end to end on the local stack and summarise")
    demo.add_argument("--people", type=int, default=1000)
    demo.add_argument("--events", type=int, default=20000)
    demo.add_argument("--seed", type=int, default=7)
    demo.add_argument("--json", action="store_true", help="print the summary as one JSON object")
    demo.add_argument("--quiet", action="store_true", help="no progress lines")
    demo.set_defaults(func=cmd_demo)

    profile = sub.add_parser("profile", help="read (get, explain, timeline), link to (view) or repair (unmerge) "
                                             "a unified profile")
    profile.add_argument("action", choices=["get", "explain", "timeline", "view", "unmerge"],
                         help="timeline: everything about the person, with their latest events; "
                              "view: print a short-lived signed link to their page")
    profile.add_argument("identifier", help="type:value, e.g. email:alice@example.com or user_id:42 "
                                            "(with unmerge --undo-merge: the absorbed profile id)")
    profile.add_argument("--undo-merge", action="store_true",
                         help="unmerge: bring back the absorbed profile IDENTIFIER instead of detaching")
    profile.add_argument("--reason", default="manual", help="unmerge: recorded in the merge log")
    profile.add_argument("--limit", type=int, default=None, help="timeline: latest events to show (1-500, 50)")
    profile.add_argument("--json", action="store_true", help="timeline: print the JSON instead of text")
    profile.add_argument("--minutes", type=int, default=15, help="view: minutes the link stays valid (max 1440)")
    profile.add_argument("--url", default=os.environ.get("CDP_URL", DEFAULT_URL))
    profile.add_argument("--token", default=None, help="operator or admin token (or CDP_ADMIN_TOKEN)")
    profile.set_defaults(func=cmd_profile)

    for module in ("segments_cli", "collect_cli", "identity_cli", "report_cli", "failures_cli", "stack_cli",
                   "import_cli", "destinations_cli", "privacy_cli",
                   "campaigns_cli", "operators_cli"):
        try:
            extension = __import__(f"cdp_infra.{module}", fromlist=["add_parser"])
        except ImportError:
            continue
        extension.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # the emulator's access log
    if not args.verbose:
        os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "WARNING")
        os.environ.setdefault("LOG_LEVEL", "WARNING")
    if args.stack and args.command not in ("dev", "demo"):
        from .deployed import use_stack

        use_stack(args.stack)
        if getattr(args, "url", None) == DEFAULT_URL and os.environ.get("CDP_URL"):
            args.url = os.environ["CDP_URL"]
    elif args.command not in ("dev", "demo"):
        use_dev_stack()
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
