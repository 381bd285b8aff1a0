"""``cdp campaigns``: validate with file:line, list, preview, and stats read from a lake."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow.fs as pafs

from cdp.lake.parquet import write_events, write_identity_snapshot
from cdp_infra.cli import main

ROOT = Path(__file__).resolve().parents[2]


def test_validate_reports_the_file_and_line_of_a_broken_campaign(tmp_path: Path, capsys) -> None:
    (tmp_path / "bad.yaml").write_text((ROOT / "campaigns" / "new-customer-welcome.yaml").read_text()
                                       .replace("consent: email", "consent: email\nchannel: fax"))
    assert main(["campaigns", "validate", "--dir", str(tmp_path)]) == 1
    assert f"{tmp_path / 'bad.yaml'}:7: channel: duplicate key" in capsys.readouterr().err


def test_validate_and_list_the_shipped_campaigns(capsys) -> None:
    assert main(["campaigns", "validate"]) == 0
    assert "4 campaigns valid (2 automated, 1 triggered, 1 adhoc)" in capsys.readouterr().out
    assert main(["campaigns", "list", "--json"]) == 0
    assert {r["kind"] for r in json.loads(capsys.readouterr().out)} == {"automated", "triggered", "adhoc"}


def test_preview_renders_the_fallback_for_a_missing_trait(capsys) -> None:
    assert main(["campaigns", "preview", "loyalty-launch"]) == 0
    out = capsys.readouterr().out
    assert "Subject: there, you are in" in out and "our best customers" in out


def test_stats_counts_outcomes_per_campaign_and_conversions_within_the_window(tmp_path: Path, capsys) -> None:
    now = datetime.now(UTC)
    sent = (now - timedelta(days=3)).isoformat()

    def ev(mid: str, name: str, user: str, at: str, **props: object) -> dict:
        # Outcomes carry only the address they were sent to; orders carry the user id.
        who = {"context": {"traits": {"email": f"{user}@shopper.io"}}} if name != "Order Completed" \
            else {"userId": user}
        return {"messageId": mid, "type": "track", "event": name, "timestamp": at, **who,
                "properties": {"campaign": "new-customer-welcome", **props}}

    events = [ev("s1", "Email Sent", "u1", sent), ev("s2", "Email Sent", "u2", sent),
              ev("s1b", "Email Sent", "u1", sent),  # a second send to u1 (another run): counted, one person
              ev("d1", "Email Delivered", "u1", sent), ev("b2", "Email Bounced", "u2", sent),
              ev("x1", "Unsubscribed", "u1", sent),
              ev("o1", "Order Completed", "u1", (now - timedelta(days=1)).isoformat()),   # converted
              ev("o2", "Order Completed", "u2", (now - timedelta(days=4)).isoformat())]   # before the send
    lake = tmp_path / "lake"
    write_events(events, pafs.LocalFileSystem(), str(lake), "b1")
    write_identity_snapshot([("user_id:u1", "p1"), ("user_id:u2", "p2"), ("email:u1@shopper.io", "p1"),
                             ("email:u2@shopper.io", "p2")], pafs.LocalFileSystem(), str(lake))

    assert main(["campaigns", "stats", "new-customer-welcome", "--lake", str(lake), "--json"]) == 0
    [row] = json.loads(capsys.readouterr().out)
    assert (row["sent"], row["delivered"], row["bounced"], row["unsubscribed"]) == (3, 1, 1, 1)
    assert row["conversions"] == 1 and row["conversion_event"] == "Order Completed"


def test_validate_checks_that_a_webhook_campaign_names_a_webhook_destination(tmp_path: Path, capsys) -> None:
    text = ("name: to-crm\nkind: triggered\nchannel: webhook\nconsent: marketing\n"
            "trigger: {event: Checkout Started}\nwebhook: {destination: DEST, properties: [currency]}\n")
    (tmp_path / "to-crm.yaml").write_text(text.replace("DEST", "repeat-buyers-webhook"))
    assert main(["campaigns", "validate", "--dir", str(tmp_path)]) == 0
    (tmp_path / "to-crm.yaml").write_text(text.replace("DEST", "meta-repeat-buyers"))
    assert main(["campaigns", "validate", "--dir", str(tmp_path)]) == 1
    assert "webhook.destination: no webhook destination named 'meta-repeat-buyers'" in capsys.readouterr().err
