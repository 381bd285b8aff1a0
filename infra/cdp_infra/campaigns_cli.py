"""``cdp campaigns validate|list|preview|send|stats``.

Campaigns are read from ``--dir`` (default ``campaigns/``) and checked against the segments of
``--segments`` (default ``segments/``). ``send`` runs an ad-hoc campaign against the stack named by
the functions' environment (``AWS_ENDPOINT_URL`` for the local emulator): without ``--confirm`` it
is a dry run (who would get what, counts by skip reason); ``--test-to`` sends to the given
addresses only; ``--confirm`` sends, once per person per ``--run`` (default ``once``): running it
again, or after a crash, sends nobody a second message. ``stats`` reads results from the lake.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from .template import REPO_ROOT


def add_parser(sub: Any) -> None:
    campaigns = sub.add_parser("campaigns", help="campaigns as code: validate, list, preview, send, stats")
    csub = campaigns.add_subparsers(dest="campaigns_command", required=True)

    validate = csub.add_parser("validate", help="check every campaign file (file, line and reason on error)")
    _dirs(validate)
    validate.set_defaults(func=cmd_validate)

    listing = csub.add_parser("list", help="name, kind, channel, audience or trigger")
    _dirs(listing)
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(func=cmd_list)

    preview = csub.add_parser("preview", help="the message rendered for sample traits (missing ones fall back)")
    _dirs(preview)
    preview.add_argument("name")
    preview.add_argument("--trait", action="append", default=[], metavar="NAME=VALUE")
    preview.set_defaults(func=cmd_preview)

    send = csub.add_parser("send", help="an ad-hoc campaign: dry run (default), --test-to, or --confirm")
    _dirs(send)
    send.add_argument("name")
    send.add_argument("--test-to", action="append", default=[], metavar="ADDRESS")
    send.add_argument("--confirm", action="store_true", help="really send (once per person per run)")
    send.add_argument("--run", default="once", help="run id: the ledger key is campaign+run+person")
    send.add_argument("--json", action="store_true")
    send.set_defaults(func=cmd_send)

    stats = csub.add_parser("stats", help="sent, delivered, bounced, ..., unsubscribed and conversions")
    _dirs(stats)
    stats.add_argument("name", nargs="?")
    stats.add_argument("--days", type=int, default=30, help="results of sends in the last DAYS days")
    stats.add_argument("--lake", help="a lake in a local directory (default: the stack's engine)")
    stats.add_argument("--json", action="store_true")
    stats.set_defaults(func=cmd_stats)


def _dirs(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dir", default=str(REPO_ROOT / "campaigns"), help="folder of campaign files")
    parser.add_argument("--segments", default=str(REPO_ROOT / "segments"), help="folder of segment definitions")


def _campaigns(args: argparse.Namespace) -> list[Any]:
    from cdp.campaigns.definition import check_segments, check_unless, load_campaigns
    from cdp.identity.config import load_identity_config
    from cdp.segments.catalog import all_segments

    campaigns = load_campaigns(args.dir)
    check_segments(campaigns, [s.name for s in all_segments(args.segments)])
    check_unless(campaigns, load_identity_config(REPO_ROOT / "config" / "identity.yaml").computed_traits)
    if any(c.webhook for c in campaigns):  # channel: webhook names a webhook destination
        from cdp.activation.destinations import load_destinations
        from cdp.campaigns.definition import check_destinations

        from .template import DESTINATIONS_DIR, EXAMPLE_DESTINATIONS

        check_destinations(campaigns, load_destinations([DESTINATIONS_DIR, EXAMPLE_DESTINATIONS]))
    return campaigns


def _one(args: argparse.Namespace) -> Any:
    from cdp.campaigns.definition import find_campaign

    return find_campaign(_campaigns(args), args.name)


def _fail(exc: Exception) -> int:
    print(f"error: {exc}", file=sys.stderr)
    return 1


def cmd_validate(args: argparse.Namespace) -> int:
    from cdp.errors import CdpError

    try:
        campaigns = _campaigns(args)
    except CdpError as exc:
        return _fail(exc)
    kinds = ", ".join(f"{sum(1 for c in campaigns if c.kind == k)} {k}" for k in ("automated", "triggered", "adhoc"))
    print(f"{len(campaigns)} campaigns valid ({kinds})")
    return 0


def _what(c: Any) -> str:
    if c.trigger is not None:
        delay = f", after {c.trigger.delay_minutes} min" if c.trigger.delay_minutes else ""
        unless = f", unless {', '.join(c.trigger.unless)}" if c.trigger.unless else ""
        return f"on {c.trigger.event}{delay}{unless}"
    when = {"entry": "on entry to", "schedule": f"{c.audience.schedule} to", "once": "once to"}[c.audience.when]
    return f"{when} {c.audience.segment}"


def cmd_list(args: argparse.Namespace) -> int:
    from cdp.errors import CdpError

    try:
        campaigns = _campaigns(args)
    except CdpError as exc:
        return _fail(exc)
    rows = [{"name": c.name, "kind": c.kind, "channel": c.channel, "consent": c.consent, "what": _what(c),
             "cap": f"{c.frequency_cap.max}/{c.frequency_cap.days}d"} for c in campaigns]
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    for r in rows:
        print(f"{r['name']:<22} {r['kind']:<9} {r['channel']:<6} {r['consent']:<8} {r['cap']:<6} {r['what']}")
    return 0


def cmd_preview(args: argparse.Namespace) -> int:
    from cdp.campaigns.eligibility import Recipient
    from cdp.campaigns.send import preview
    from cdp.errors import CdpError

    try:
        campaign = _one(args)
    except CdpError as exc:
        return _fail(exc)
    traits = dict(item.split("=", 1) for item in args.trait if "=" in item)
    out = preview(campaign, Recipient("preview", "preview@example.invalid", {}, traits))
    print(f"Subject: {out.subject}\n\n{out.text}\n--- html ---\n{out.html}")
    return 0


def _recipients(settings: Any, segment: str) -> list[Any]:
    from cdp.adapters.dynamo_profiles import DynamoIdentityStore
    from cdp.adapters.membership import DynamoMembershipStore
    from cdp.campaigns.eligibility import Recipient

    members = sorted(DynamoMembershipStore(settings).members(segment))
    profiles = DynamoIdentityStore(settings).get_profiles(members)
    return [Recipient.from_profile(p.view()) for pid, p in sorted(profiles.items()) if not p.is_tombstone]


def _setup(settings: Any) -> Any:
    import os

    from cdp.adapters.secrets import CachedSecret
    from cdp.adapters.sesv2 import SesV2RawSender
    from cdp.campaigns.send import EmailSetup

    # A deployed stack's collector URL comes from its outputs (CDP_URL) when the variable is not set.
    base_url = settings.unsubscribe_base_url or os.environ.get("CDP_URL", "")
    return EmailSetup(settings.email_sender, SesV2RawSender(settings), base_url,
                      CachedSecret(settings, settings.unsubscribe_secret_arn).value)


def send_adhoc(settings: Any, campaign: Any, *, run: str, confirm: bool, test_to: list[str],
               policy: Any, now: datetime) -> dict[str, Any]:
    """What ``cdp campaigns send`` does, as data (the demo calls it too)."""
    from collections import Counter

    from cdp.adapters.idempotency import DynamoEffectLedger
    from cdp.adapters.messages import DynamoMessageJournal
    from cdp.campaigns.eligibility import history_from_journal
    from cdp.campaigns.send import CampaignReport, deliver, dry_run, send_test
    from cdp.profiles.messages import record_sent
    from cdp.times import format_time

    if campaign.kind != "adhoc":
        raise ValueError(f"{campaign.name} is {campaign.kind}: only adhoc campaigns are sent by hand")
    if test_to:
        ids = send_test(campaign, test_to, setup=_setup(settings), now=now)
        return {"campaign": campaign.name, "test_sent": len(ids), "to": test_to}
    recipients = _recipients(settings, campaign.audience.segment)
    journal = DynamoMessageJournal(settings)
    past = journal.sent_to([r.profile_id for r in recipients])
    histories = {r.profile_id: history_from_journal(m for m in past if m.profile_id == r.profile_id)
                 for r in recipients}
    if not confirm:
        plan = dry_run(campaign, recipients, now=now, histories=histories, policy=policy)
        return {"campaign": campaign.name, "dry_run": True, "would_send": len(plan.would_send),
                "skipped": dict(plan.skipped), "sample": plan.would_send[:10]}
    report = CampaignReport()
    ledger, setup = DynamoEffectLedger(settings), _setup(settings)
    for recipient in recipients:
        before = len(report.sent)
        deliver(campaign, recipient, run_id=run, now=now, ledger=ledger, setup=setup,
                history=histories[recipient.profile_id], policy=policy, report=report)
        if len(report.sent) > before:
            key = report.sent[-1]
            record_sent(journal, key=key, sent=[key], profile_id=recipient.profile_id,
                        segment=f"campaign:{campaign.name}", run=run, entered_at="", sent_at=format_time(now))
    return {"campaign": campaign.name, "run": run, "sent": len(report.sent), "already_sent": len(report.duplicates),
            "skipped": dict(Counter(report.skipped.values())), "failed": report.failed}


def cmd_send(args: argparse.Namespace) -> int:
    from cdp.campaigns.eligibility import load_policy
    from cdp.errors import CdpError
    from cdp.settings import Settings

    try:
        campaign = _one(args)
        out = send_adhoc(Settings.from_env(), campaign, run=args.run, confirm=args.confirm, test_to=args.test_to,
                         policy=load_policy(REPO_ROOT / "config" / "activation.yaml"), now=datetime.now(UTC))
    except (CdpError, ValueError) as exc:
        return _fail(exc)
    if args.json:
        print(json.dumps(out, indent=2))
    elif out.get("dry_run"):
        print(f"dry run of {campaign.name}: {out['would_send']} would get it; skipped {out['skipped']}")
        for profile_id, address, subject in out["sample"]:
            print(f"  {profile_id}  {address}  {subject}")
        print("send it with --confirm (once per person for this --run)")
    else:
        print(json.dumps(out))
    return 0


def _engine(args: argparse.Namespace) -> Any:
    if args.lake:
        import pyarrow.fs as pafs

        from cdp.adapters.duckdb import DuckDBEngine

        return DuckDBEngine(pafs.LocalFileSystem(), str(Path(args.lake).resolve()))
    from cdp.adapters.engines import query_engine
    from cdp.settings import Settings

    return query_engine(Settings.from_env())


def cmd_stats(args: argparse.Namespace) -> int:
    from cdp.campaigns.results import campaign_results
    from cdp.errors import CdpError

    try:
        campaigns = _campaigns(args)
        if args.name:
            campaigns = [_one(args)]
        since = (datetime.now(UTC) - timedelta(days=args.days)).date().isoformat()
        results = [r.to_dict() for r in campaign_results(_engine(args), campaigns, since=since)]
    except CdpError as exc:
        return _fail(exc)
    if args.json:
        print(json.dumps(results, indent=2))
        return 0
    for r in results:
        conv = f", {r['conversions']} converted ({r['conversion_event']})" if r["conversion_event"] else ""
        print(f"{r['campaign']}: sent {r['sent']}, delivered {r['delivered']}, bounced {r['bounced']}, "
              f"complained {r['complained']}, opened {r['opened']}, clicked {r['clicked']}, "
              f"unsubscribed {r['unsubscribed']}{conv}")
    return 0
