"""Each fault of the fault run, alone, against the real adapters on moto: the effect still happens once."""

from __future__ import annotations

import contextlib
import json
import threading
from types import SimpleNamespace
from typing import Any

import boto3
import pytest

from cdp.activation import Contact, activate_change
from cdp.adapters.aws import reset_clients
from cdp.adapters.dynamo_profiles import DynamoIdentityStore
from cdp.adapters.idempotency import DynamoEffectLedger
from cdp.adapters.sesv2 import SesV2RawSender
from cdp.campaigns.definition import Template
from cdp.campaigns.send import EmailSetup
from cdp.errors import EmailNotSent
from cdp.identity import lookup_profile, resolve_batch
from cdp.segments.membership import Change, MembershipChange
from cdp.settings import Settings
from cdp_infra.chaos import ChaosConfig, FaultInjector, FunctionCrashed, Plan
from cdp_infra.pollers import KinesisShardPoller
from tests.identity_support import CONFIG, NOW, ev

ENTRY = MembershipChange("vip", "p1", Change.ENTERED, "r1", "2026-11-20T12:00:00Z")
TEMPLATES = {"vip": Template(subject="Hi {{ first_name }}", text="Hello {{ first_name }}")}
NO_FAULTS = ChaosConfig(crash_rate=0, throttle_rate=0, duplicate_rate=0, reorder_rate=0, restart_every_s=0)


class Contacts:
    def contacts(self, profile_ids: list[str]) -> dict[str, Contact]:
        return {pid: Contact(pid, f"{pid}@example.com", name="Ada") for pid in profile_ids}


@pytest.fixture(autouse=True)
def _fresh_clients(moto_stack: Any) -> None:
    reset_clients()  # clients made under an earlier moto would not see this one's resources


def emails_sent() -> int:
    return int(boto3.client("ses").get_send_quota()["SentLast24Hours"])


def activate(settings: Settings) -> Any:
    ledger, setup = DynamoEffectLedger(settings), mail(settings)
    return lambda change: activate_change(change, contacts=Contacts(), ledger=ledger, setup=setup,
                                          templates=TEMPLATES)


def mail(settings: Settings) -> EmailSetup:
    # No throttling retries inside the sender: the injected throttle reaches the claim, as SQS would see it.
    sender = SesV2RawSender(settings, throttle_retries=0, default_rate=1000)
    return EmailSetup(settings.email_sender, sender, "https://cdp.test/v1api", lambda: "k")


@pytest.mark.parametrize("after", [False, True], ids=["before", "after"])
@pytest.mark.parametrize("write", [0, 1, 2])
def test_a_crash_around_any_profile_write_then_redelivery_applies_the_event_once(
        stack_settings: Settings, write: int, after: bool):
    store = DynamoIdentityStore(stack_settings)
    batch = [ev("m1", type_="identify", userId="42", anonymousId="a", traits={"email": "ada@x.io"}),
             ev("m2", 1, anonymousId="a")]
    crashing = FaultInjector(planner=lambda fn, event: Plan(crash_at=write, crash_after=after))

    with crashing, pytest.raises(FunctionCrashed):
        crashing.invoke("UnifyFunction", lambda event: resolve_batch(event, store, config=CONFIG, now=NOW), batch)
    resolve_batch(batch, store, config=CONFIG, now=NOW)  # the redelivery

    profile = lookup_profile("user_id:42", store)
    assert profile is not None and profile["event_count"] == 2
    assert lookup_profile("email:ada@x.io", store) == lookup_profile("anonymous_id:a", store) == profile


def test_an_earlier_batch_redelivered_after_later_ones_changes_nothing(stack_settings: Settings):
    store = DynamoIdentityStore(stack_settings)
    first, later = [ev("m1", anonymousId="a"), ev("m2", 1, anonymousId="a")], [ev("m3", 2, anonymousId="a")]
    for batch in (first, later):
        resolve_batch(batch, store, config=CONFIG, now=NOW)

    outcome = resolve_batch(first, store, config=CONFIG, now=NOW)

    assert sorted(outcome.duplicates) == ["m1", "m2"]
    assert lookup_profile("anonymous_id:a", store)["event_count"] == 3  # type: ignore[index]


def test_ses_throttling_releases_the_claim_and_the_retry_sends_once(stack_settings: Settings):
    send = activate(stack_settings)
    throttled = FaultInjector(planner=lambda fn, event: Plan(throttle_at=2))  # claim, GetAccount, SendEmail

    with throttled, pytest.raises(EmailNotSent) as refused:
        throttled.invoke("ActivateFunction", send, ENTRY)

    assert refused.value.retryable and refused.value.details["code"] == "TooManyRequestsException"
    claim = DynamoEffectLedger(stack_settings).state("email#vip#p1#r1")
    assert (claim["state"], claim["attempts"], claim["hold_until"]) == ("pending", 0, 0)
    assert emails_sent() == 0
    send(ENTRY)  # SQS redelivers the message
    send(ENTRY)
    assert emails_sent() == 1
    assert DynamoEffectLedger(stack_settings).state("email#vip#p1#r1")["state"] == "sent"


def test_a_message_delivered_twice_sends_one_email(stack_settings: Settings):
    send = activate(stack_settings)
    function = SimpleNamespace(spec=SimpleNamespace(logical_id="ActivateFunction"), invoke=send)
    injector = FaultInjector(ChaosConfig(crash_rate=0, throttle_rate=0, duplicate_rate=1, reorder_rate=0))
    injector.attach(function, redeliver=True)

    with injector:
        function.invoke(ENTRY)

    assert injector.counts == {"duplicate delivery to ActivateFunction": 1}
    assert injector.sends == [("p1@example.com", "vip", "r1")]
    assert emails_sent() == 1


def test_a_crash_after_the_claim_before_the_send_is_sent_once_after_the_hold(stack_settings: Settings):
    clock = SimpleNamespace(now=1_700_000_000.0)
    ledger, setup = DynamoEffectLedger(stack_settings, clock=lambda: clock.now), mail(stack_settings)
    crashing = FaultInjector(planner=lambda fn, event: Plan(crash_at=1))  # before SendEmail

    def send(change: MembershipChange) -> Any:
        return activate_change(change, contacts=Contacts(), ledger=ledger, setup=setup, templates=TEMPLATES)

    with crashing, pytest.raises(FunctionCrashed):
        crashing.invoke("ActivateFunction", send, ENTRY)
    clock.now += ledger.hold_s
    send(ENTRY)
    send(ENTRY)

    assert emails_sent() == 1


@pytest.mark.parametrize("plan", [Plan(crash_at=2), Plan(throttle_at=3)], ids=["crash", "throttle"])
def test_when_asked_no_fault_is_injected_between_ses_accepting_and_the_ledger_recording_it(
        stack_settings: Settings, plan: Plan):
    # Given a fault planned for the write after SendEmail (writes: claim, SendEmail, mark_sent; throttleable
    # calls: claim, GetAccount, SendEmail, mark_sent), and a run told to leave that window out
    # (crash_after_send=False: a stack without SES Send events)
    clock = SimpleNamespace(now=1_700_000_000.0)
    ledger, setup = DynamoEffectLedger(stack_settings, clock=lambda: clock.now), mail(stack_settings)
    plans = [plan, Plan()]
    injector = FaultInjector(ChaosConfig(crash_after_send=False), planner=lambda fn, event: plans.pop(0))

    def send(change: MembershipChange) -> Any:
        return activate_change(change, contacts=Contacts(), ledger=ledger, setup=setup, templates=TEMPLATES)

    # When the entry is delivered, then delivered again after the claim's hold
    with injector:
        injector.invoke("ActivateFunction", send, ENTRY)
        clock.now += ledger.hold_s
        injector.invoke("ActivateFunction", send, ENTRY)

    # Then the fault was counted as not injected and one email went
    assert [kind for kind in injector.counts if "not injected" in kind]
    assert not [kind for kind in injector.counts if "not injected" not in kind]
    assert ledger.state("email#vip#p1#r1")["state"] == "sent"
    assert emails_sent() == 1


def test_a_restarted_stream_poller_resumes_at_its_checkpoint_and_skips_no_record(stack_settings: Settings):
    kinesis = boto3.client("kinesis")
    stream = stack_settings.events_stream
    puts = [kinesis.put_record(StreamName=stream, Data=f"{n}".encode(), PartitionKey="k") for n in range(6)]
    sequences = [put["SequenceNumber"] for put in puts]
    delivered: list[list[str]] = []
    first_call, restarting = threading.Event(), threading.Event()

    def invoke(event: dict[str, Any]) -> dict[str, Any]:
        ids = [r["kinesis"]["sequenceNumber"] for r in event["Records"]]
        delivered.append(ids)
        if len(delivered) == 1:  # mid-batch: records 0-2 done, 3 failed, then the poller is restarted
            first_call.set()
            restarting.wait(10)
            return {"batchItemFailures": [{"itemIdentifier": ids[3]}]}
        return {"batchItemFailures": []}

    function = SimpleNamespace(spec=SimpleNamespace(logical_id="UnifyFunction"), account_id="123456789012",
                               invoke=invoke)
    mapping = {"BatchSize": 10, "FunctionResponseTypes": ["ReportBatchItemFailures"], "MaximumRetryAttempts": 5}
    poller = KinesisShardPoller(kinesis, None, function, mapping, stream_name=stream, stream_arn="arn",  # type: ignore[arg-type]
                                shard_id=puts[0]["ShardId"], failure_queue_url=None).start()
    try:
        assert first_call.wait(10)
        restart = threading.Thread(target=poller.restart)
        restart.start()
        while not poller._stop.is_set():  # the restart has stopped the poller mid-batch
            threading.Event().wait(0.01)
        restarting.set()
        restart.join(30)
        for _ in range(100):
            if len(delivered) > 1:
                break
            threading.Event().wait(0.1)
    finally:
        poller.stop()

    assert poller.checkpoint == sequences[-1]
    assert delivered[0] == sequences
    assert delivered[1] == sequences[3:]  # from the checkpoint, after record 2


@pytest.mark.parametrize("call", [0, 1, 2, 3])
def test_a_throttled_dynamodb_call_leaves_the_event_for_the_retry_which_applies_it_once(
        stack_settings: Settings, call: int):
    store = DynamoIdentityStore(stack_settings)
    batch = [ev("m1", type_="identify", userId="42", anonymousId="a", traits={"email": "ada@x.io"}),
             ev("m2", 1, anonymousId="a")]
    throttled = FaultInjector(planner=lambda fn, event: Plan(throttle_at=call))

    with throttled:
        try:
            first = throttled.invoke("UnifyFunction",
                                     lambda event: resolve_batch(event, store, config=CONFIG, now=NOW), batch)
        except Exception:  # a function error: the whole batch is retried
            first = None
    retry = [e for e in batch if first is None or e["messageId"] in first.failed]
    resolve_batch(retry, store, config=CONFIG, now=NOW)

    assert throttled.counts == {"throttle dynamodb": 1}
    profile = lookup_profile("user_id:42", store)
    assert profile is not None and profile["event_count"] == 2


def test_a_throttled_write_of_a_batch_holding_a_retried_request_twice_leaves_its_events_for_the_retry(
        stack_settings: Settings):
    # Given a batch holding each event of a request twice (the client retried after the collector's
    # PutRecords succeeded) and a throttled DynamoDB write (the identifier claim)
    store = DynamoIdentityStore(stack_settings)
    request = [ev("m1", anonymousId="a"), ev("m2", 1, anonymousId="a")]
    throttled = FaultInjector(planner=lambda fn, event: Plan(throttle_at=3))  # 2 reads, then the claim

    with throttled:
        first = throttled.invoke("UnifyFunction", lambda event: resolve_batch(event, store, config=CONFIG, now=NOW),
                                 request + request)

    # Then both events go back to the stream, and the retry applies each once
    assert throttled.counts == {"throttle dynamodb": 1}
    assert sorted(first.failed) == ["m1", "m2"]
    resolve_batch([e for e in request if e["messageId"] in first.failed], store, config=CONFIG, now=NOW)
    profile = lookup_profile("anonymous_id:a", store)
    assert profile is not None and profile["event_count"] == 2


@pytest.mark.parametrize("plan", [Plan(crash_at=1, crash_after=True), Plan(crash_at=2), Plan(throttle_at=3)],
                         ids=["crash after SendEmail", "crash before mark_sent", "throttled mark_sent"])
def test_a_fault_between_ses_accepting_and_mark_sent_sends_once_when_the_send_event_comes_within_the_hold(
        stack_settings: Settings, plan: Plan):
    from cdp.campaigns.feedback import LEDGER_TAG, ledger_tag, process
    from cdp_infra.emulator import raw_emails

    # Given the window injected (the fault run's default): the email accepted, its claim left pending
    clock = SimpleNamespace(now=1_700_000_000.0)
    ledger, setup = DynamoEffectLedger(stack_settings, clock=lambda: clock.now), mail(stack_settings)
    plans = [plan, Plan()]
    injector = FaultInjector(planner=lambda fn, event: plans.pop(0))

    def send(change: MembershipChange) -> Any:
        return activate_change(change, contacts=Contacts(), ledger=ledger, setup=setup, templates=TEMPLATES)

    with injector:
        with contextlib.suppress(FunctionCrashed):  # the throttled mark_sent is not a crash
            injector.invoke("ActivateFunction", send, ENTRY)
        assert not [kind for kind in injector.counts if "not injected" in kind]
        # When SES's Send event reaches the feedback function within the hold
        [accepted] = raw_emails()
        notification = {"eventType": "Send", "send": {}, "mail": {
            "messageId": accepted["id"], "destination": ["p1@example.com"],
            "tags": {"segment": ["vip"], LEDGER_TAG: [ledger_tag("email#vip#p1#r1")]}}}
        process({"Records": [{"Sns": {"Message": json.dumps(notification)}}]},
                sink=SimpleNamespace(put=lambda records: None), now=NOW, ledger=ledger)
        # and the entry is redelivered after the hold
        clock.now += ledger.hold_s
        injector.invoke("ActivateFunction", send, ENTRY)

    # Then one email: the redelivery found the claim sent
    assert ledger.state("email#vip#p1#r1")["state"] == "sent"
    assert emails_sent() == 1
