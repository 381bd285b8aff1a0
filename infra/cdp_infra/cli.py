"""The ``cdp`` command: run the local stack, the demo, and talk to a running collector."""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import threading
from collections.abc import Sequence
from urllib.parse import quote

DEFAULT_URL = "http://127.0.0.1:8080"
DEFAULT_WRITE_KEY = "local-write-key"


def _admin_token(args: argparse.Namespace) -> str:
    if getattr(args, "token", None):
        return str(args.token)
    if os.environ.get("CDP_ADMIN_TOKEN"):
        return os.environ["CDP_ADMIN_TOKEN"]
    from .template import load_template

    return str(load_template()["Parameters"]["AdminToken"]["Default"])


def cmd_dev(args: argparse.Namespace) -> int:
    from .local import LocalConfig, LocalPipeline

    token = args.admin_token or _admin_token(args)
    pipeline = LocalPipeline(LocalConfig(port=args.port, host=args.host, write_key=args.write_key,
                                         admin_token=token)).start()
    print(f"collector:   {pipeline.url}  (point an SDK's host here)")
    print(f"write key:   {args.write_key}")
    print(f"admin token: {token}")
    print(f"emulated AWS (moto) on {pipeline.endpoint_url}; Ctrl-C to stop", flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        stop.wait()
    except KeyboardInterrupt:
        pass
    finally:
        pipeline.stop()
    return 0


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

    client = TrackingClient(args.url, "")
    path = f"/v1/profiles/{quote(args.identifier, safe=':@+')}"
    if args.action == "explain":
        path += "/explain"
    status, _, body = client.request("GET", path, headers={"Authorization": f"Bearer {_admin_token(args)}"})
    client.close()
    try:
        print(json.dumps(json.loads(body), indent=2))
    except ValueError:
        print(body.decode("utf-8", "replace"))
    return 0 if status == 200 else 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cdp", description="Serverless Customer Data Platform")
    parser.add_argument("-v", "--verbose", action="store_true", help="log what the handlers log")
    sub = parser.add_subparsers(dest="command", required=True)

    dev = sub.add_parser("dev", help="run the whole stack locally until Ctrl-C")
    dev.add_argument("--port", type=int, default=8080)
    dev.add_argument("--host", default="127.0.0.1")
    dev.add_argument("--write-key", default=DEFAULT_WRITE_KEY)
    dev.add_argument("--admin-token", default=None, help="defaults to the template's AdminToken default")
    dev.set_defaults(func=cmd_dev)

    demo = sub.add_parser("demo", help="run the main job end to end on the local stack and summarise")
    demo.add_argument("--people", type=int, default=1000)
    demo.add_argument("--events", type=int, default=20000)
    demo.add_argument("--seed", type=int, default=7)
    demo.add_argument("--json", action="store_true", help="print the summary as one JSON object")
    demo.add_argument("--quiet", action="store_true", help="no progress lines")
    demo.set_defaults(func=cmd_demo)

    profile = sub.add_parser("profile", help="read a unified profile from a running collector")
    profile.add_argument("action", choices=["get", "explain"])
    profile.add_argument("identifier", help="type:value, e.g. email:alice@example.com or user_id:42")
    profile.add_argument("--url", default=os.environ.get("CDP_URL", DEFAULT_URL))
    profile.add_argument("--token", default=None, help="admin token (or CDP_ADMIN_TOKEN)")
    profile.set_defaults(func=cmd_profile)

    for module in ("segments_cli", "collect_cli", "identity_cli"):
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
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
