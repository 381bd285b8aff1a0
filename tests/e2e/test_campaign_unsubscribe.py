"""Campaign email on the local stack: entry -> one raw email with one-click headers -> POST the link
-> the opt-out reaches the profile through the stream -> no later email from any campaign."""

from __future__ import annotations

import email
import urllib.request
from collections.abc import Iterator
from email import policy
from typing import Any
from urllib.parse import urlparse

import pytest

from cdp_infra.client import TrackingClient
from cdp_infra.local import LocalConfig, LocalPipeline

pytestmark = pytest.mark.e2e
WRITE_KEY = "e2e-campaign-key"
ADDRESS = "ada.lovelace@shopper.io"


@pytest.fixture(scope="module")
def pipeline() -> Iterator[LocalPipeline]:
    with LocalPipeline(LocalConfig(write_key=WRITE_KEY, run_schedules=False)) as p:
        yield p


def raw_to(pipeline: LocalPipeline, address: str) -> list[dict[str, Any]]:
    """Raw emails to ``address``, as the emulator (its own process) holds them."""
    return [m for m in pipeline.raw_emails() if address in m["destinations"]]


def enter(pipeline: LocalPipeline, segment: str, profile_id: str, run: str) -> None:
    from cdp.adapters.sqs import SqsChangePublisher
    from cdp.segments.membership import MembershipChange

    SqsChangePublisher(pipeline.settings)([MembershipChange(segment, profile_id, "entered", run, run)])
    pipeline.wait_drained(timeout_s=120)


def skipped(pipeline: LocalPipeline, metric: str, reason: str) -> float:
    return pipeline.metrics.snapshot().get("ActivateFunction", {}).get(f"{metric}{{reason={reason}}}", 0.0)


def test_a_one_click_unsubscribe_stops_every_later_email_across_campaigns(pipeline: LocalPipeline) -> None:
    from cdp.adapters.dynamo_profiles import DynamoIdentityStore

    client = TrackingClient(pipeline.url, WRITE_KEY)
    try:
        client.batch([{"type": "identify", "userId": "u-ada", "traits": {"email": ADDRESS, "first_name": "Ada"}}])
    finally:
        client.close()
    pipeline.wait_drained(timeout_s=120)
    profile_id = DynamoIdentityStore(pipeline.settings).get_pointers([f"email:{ADDRESS}"])[f"email:{ADDRESS}"]

    # Given one campaign email sent on a segment entry (and its legacy per-segment email elsewhere)
    enter(pipeline, "lifecycle-new-customer", profile_id, "2026-11-30T10:00:00.000Z")
    [sent] = raw_to(pipeline, ADDRESS)
    message = email.message_from_string(sent["raw_data"], policy=policy.default)
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    url = str(message["List-Unsubscribe"]).strip("<>")
    assert url.startswith(pipeline.url + "/v1/unsubscribe?")

    # When the mailbox provider POSTs the one-click unsubscribe (and a scanner GETs the link first)
    page = urllib.request.urlopen(url, timeout=10)
    assert page.status == 200 and b"<form method=\"post\"" in page.read()
    request = urllib.request.Request(url, data=b"List-Unsubscribe=One-Click", method="POST",
                                     headers={"Content-Type": "application/x-www-form-urlencoded"})
    with urllib.request.urlopen(request, timeout=10) as answer:
        assert answer.status == 200 and b"unsubscribed" in answer.read()
    pipeline.wait_drained(timeout_s=120)

    # Then the profile holds the denial, and no campaign nor segment email reaches the person again
    profile = DynamoIdentityStore(pipeline.settings).get_profiles([profile_id])[profile_id]
    assert profile.view()["consent"] == {"email": False}
    legacy_sends = pipeline.client("ses").get_send_quota()["SentLast24Hours"]
    enter(pipeline, "lifecycle-new-customer", profile_id, "2026-12-30T10:00:00.000Z")  # a new entry, a month later
    enter(pipeline, "repeat-buyers", profile_id, "2026-12-30T10:00:00.000Z")  # the per-segment email
    assert len(raw_to(pipeline, ADDRESS)) == 1
    assert pipeline.client("ses").get_send_quota()["SentLast24Hours"] == legacy_sends
    assert skipped(pipeline, "CampaignSkipped", "no_consent") == 1
    assert skipped(pipeline, "EmailsSkipped", "no_consent") == 1


def test_a_tampered_link_is_refused_and_records_nothing(pipeline: LocalPipeline) -> None:
    url = f"{pipeline.url}/v1/unsubscribe?p=p1&c=new-customer-welcome&k=email&e=9999999999&s=00"
    request = urllib.request.Request(url, data=b"List-Unsubscribe=One-Click", method="POST")
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(request, timeout=10)
    assert caught.value.code == 400 and urlparse(url).path == "/v1/unsubscribe"


def ses_notification(kind: str, address: str, ses_id: str, **detail: Any) -> dict[str, Any]:
    import json

    mail = {"messageId": ses_id, "destination": [address], "timestamp": "2026-11-30T12:00:00.000Z",
            "tags": {"campaign": ["new-customer-welcome"], "run": ["r1"], "purpose": ["email"]}}
    body = {"eventType": kind, "mail": mail, kind.lower(): detail}
    return {"Records": [{"EventSource": "aws:sns", "Sns": {"Message": json.dumps(body)}}]}


def test_a_hard_bounce_fed_back_by_ses_suppresses_the_address_for_every_later_campaign(
        pipeline: LocalPipeline) -> None:
    from cdp.adapters.dynamo_profiles import DynamoIdentityStore

    address = "bob.bounce@shopper.io"
    client = TrackingClient(pipeline.url, WRITE_KEY)
    try:
        client.batch([{"type": "identify", "userId": "u-bob", "traits": {"email": address}}])
    finally:
        client.close()
    pipeline.wait_drained(timeout_s=120)
    profile_id = DynamoIdentityStore(pipeline.settings).get_pointers([f"email:{address}"])[f"email:{address}"]
    enter(pipeline, "lifecycle-new-customer", profile_id, "2026-11-30T10:00:00.000Z")
    [sent] = raw_to(pipeline, address)

    # When SES reports the delivery attempt bounced for good (twice: SNS delivers at least once)
    bounce = ses_notification("Bounce", address, sent["id"], bounceType="Permanent",
                              bouncedRecipients=[{"emailAddress": address}])
    for _ in range(2):
        assert pipeline.functions["FeedbackFunction"].invoke(bounce)["outcomes"] == {"bounced": 1}
    pipeline.wait_drained(timeout_s=120)

    # Then the profile is marked, and a later entry is skipped as suppressed
    profile = DynamoIdentityStore(pipeline.settings).get_profiles([profile_id])[profile_id]
    assert profile.traits["email_suppressed"] == "bounced"
    enter(pipeline, "lifecycle-new-customer", profile_id, "2027-01-30T10:00:00.000Z")
    assert len(raw_to(pipeline, address)) == 1 and skipped(pipeline, "CampaignSkipped", "suppressed") == 1
