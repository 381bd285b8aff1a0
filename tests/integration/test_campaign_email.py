"""Campaign emails through SES v2 on moto: raw MIME with the one-click headers, paced and retried."""

from __future__ import annotations

import email
from datetime import UTC, datetime
from email import policy
from typing import Any

import pytest
from botocore.exceptions import ClientError

from cdp.activation import InMemoryEffectLedger
from cdp.adapters.sesv2 import Pacer, SesV2RawSender
from cdp.campaigns.definition import parse_campaign
from cdp.campaigns.eligibility import Recipient
from cdp.campaigns.send import EmailSetup, deliver
from cdp.errors import EmailNotSent
from cdp.settings import Settings

REGION = "us-east-1"
CAMPAIGN = parse_campaign("""\
name: thanks
kind: automated
channel: email
consent: email
audience: {segment: big-spenders}
template: {subject: "Thanks {{ first_name }}", text: "Hi {{ first_name }}", html: "<b>Hi {{ first_name }}</b>"}
""", "thanks.yaml")


def raw_messages() -> list[Any]:
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.ses.models import ses_backends

    return [m for m in ses_backends[DEFAULT_ACCOUNT_ID][REGION].sent_messages if hasattr(m, "raw_data")]


def test_a_campaign_email_reaches_ses_v2_raw_with_its_unsubscribe_headers(stack_settings: Settings) -> None:
    setup = EmailSetup(stack_settings.email_sender, SesV2RawSender(stack_settings), "https://cdp.test/v1api", lambda: "k")
    report = deliver(CAMPAIGN, Recipient("p1", "ada@shopper.io", {}, {"first_name": "Ada & Co"}), run_id="r1",
                     now=datetime.now(UTC), ledger=InMemoryEffectLedger(), setup=setup)

    [sent] = raw_messages()
    message = email.message_from_string(sent.raw_data, policy=policy.default)
    assert report.sent and sent.destinations == ["ada@shopper.io"]
    assert message["From"] == stack_settings.email_sender and message["Subject"] == "Thanks Ada & Co"
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert str(message["List-Unsubscribe"]).startswith("<https://cdp.test/v1api/v1/unsubscribe?p=p1&c=thanks&k=email")
    html_part = message.get_body(("html",))
    assert html_part is not None and "<b>Hi Ada &amp; Co</b>" in html_part.get_content()


class ThrottlingClient:
    """SES v2 answering TooManyRequests ``throttles`` times, then accepting."""

    def __init__(self, throttles: int) -> None:
        self.throttles = throttles
        self.calls = 0

    def get_account(self) -> dict:
        return {"SendQuota": {"MaxSendRate": 2.0}}

    def send_email(self, **kwargs: Any) -> dict:
        self.calls += 1
        if self.calls <= self.throttles:
            raise ClientError({"Error": {"Code": "TooManyRequestsException", "Message": "slow down"},
                               "ResponseMetadata": {"HTTPStatusCode": 429}}, "SendEmail")
        return {"MessageId": f"m-{self.calls}"}


def test_throttling_is_retried_with_backoff_then_sent(stack_settings: Settings) -> None:
    slept: list[float] = []
    sender = SesV2RawSender(stack_settings, client=ThrottlingClient(3), sleep=slept.append, backoff_s=0.1)
    assert sender.send_raw(to="a@b.io", raw=b"x", tags={}) == "m-4"
    assert sender.throttled == 3 and {0.1, 0.2, 0.4} <= set(slept)  # backoff doubles (pacing sleeps too)


def test_throttling_beyond_the_retries_is_not_sent_and_retryable_never_dropped(stack_settings: Settings) -> None:
    sender = SesV2RawSender(stack_settings, client=ThrottlingClient(99), sleep=lambda _: None, throttle_retries=2)
    with pytest.raises(EmailNotSent) as caught:
        sender.send_raw(to="a@b.io", raw=b"x", tags={})
    assert caught.value.retryable  # the claim is released and the queue redelivers


def test_the_pacer_keeps_under_the_accounts_max_send_rate() -> None:
    now = [0.0]
    waits: list[float] = []

    def sleep(seconds: float) -> None:
        waits.append(seconds)
        now[0] += seconds

    pacer = Pacer(2.0, clock=lambda: now[0], sleep=sleep)
    for _ in range(6):
        pacer.acquire()
    assert now[0] == pytest.approx(2.0)  # 6 sends at 2/s: a burst of 2, then one every 0.5 s


def test_the_send_rate_is_read_from_the_account_and_defaults_when_it_cannot_be(stack_settings: Settings) -> None:
    assert SesV2RawSender(stack_settings, client=ThrottlingClient(0)).max_send_rate() == 2.0
    assert SesV2RawSender(stack_settings, default_rate=7.0).max_send_rate() == 7.0  # moto has no GetAccount
