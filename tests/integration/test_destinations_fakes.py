"""Ad audiences and webhooks against the loopback fakes: the documented contract, errors, crash matrix.

The fakes check every request (field names, hashing format, batch limits, session fields, auth) and
keep the audience as a set, so "one audience change" is observable after any crash and redelivery.
"""

from __future__ import annotations

import base64
import hashlib
import json
import time
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest

from cdp.activation import InMemoryEffectLedger
from cdp.activation.audiences.google import GoogleAudience
from cdp.activation.audiences.holdings import InMemoryHoldings
from cdp.activation.audiences.meta import MetaAudience
from cdp.activation.audiences.normalise import PersonKeys
from cdp.activation.audiences.sync import SyncReport, audience_key, remove_person, resync, sync_changes
from cdp.activation.destinations import (
    Delivery,
    DeliveryContext,
    InMemoryDestinationState,
    deliver,
    parse_destination,
)
from cdp.activation.webhooks import WEBHOOK_SCHEDULE
from cdp.adapters.http import Urllib3Transport
from cdp.errors import StoreError
from cdp.segments.membership import InMemoryMembershipStore, Member, MembershipChange
from cdp_infra.fakes import GoogleFake, MetaFake, WebhookReceiver, google_error, meta_error
from tests.destination_support import DictProfiles, FakeTargets, ListDeadLetters, ListQueue, person

AT = "2024-05-01T12:00:00Z"
SECRET = "whsec_" + base64.b64encode(b"s" * 32).decode()


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


class Crash(BaseException):
    """The process dies here: nothing after it runs (not even ``except Exception`` blocks)."""


class CrashingTransport:
    def __init__(self, inner: Any, *, before: bool = False, after: bool = False) -> None:
        self.inner, self.before, self.after = inner, before, after

    def request(self, method: str, url: str, *, headers: dict[str, str], body: bytes) -> Any:
        if self.before:
            raise Crash("before the platform call")
        response = self.inner.request(method, url, headers=headers, body=body)
        if self.after:
            raise Crash("after the platform call, before its answer is recorded")
        return response


@pytest.fixture
def meta() -> Iterator[MetaFake]:
    with MetaFake() as fake:
        yield fake
    assert fake.violations == []


@pytest.fixture
def google() -> Iterator[GoogleFake]:
    with GoogleFake() as fake:
        yield fake
    assert fake.violations == []


class World:
    def __init__(self) -> None:
        self.now = [float(int(time.time()))]
        self.ledger = InMemoryEffectLedger(clock=lambda: self.now[0], max_attempts=10)
        self.membership = InMemoryMembershipStore()
        self.profiles = DictProfiles()

    def enter(self, pid: str, *, segment: str = "vip", run: str = "r1", **kw: Any) -> MembershipChange:
        self.profiles.profiles.setdefault(pid, person(pid, **kw))
        self.membership.apply(segment, [Member(pid, run, AT)], [])
        return MembershipChange(segment, pid, "entered", run, AT)

    def leave(self, pid: str, *, segment: str = "vip", run: str = "r2") -> MembershipChange:
        self.membership.apply(segment, [], [pid])
        return MembershipChange(segment, pid, "exited", run, AT)

    def sync(self, platform: Any, changes: list[MembershipChange]) -> SyncReport:
        return sync_changes("aud", changes, platform=platform, profiles=self.profiles, membership=self.membership,
                            ledger=self.ledger)


@pytest.fixture
def world() -> World:
    return World()


def meta_audience(fake: MetaFake, transport: Any = None) -> MetaAudience:
    return MetaAudience("1234", "meta-token", transport or Urllib3Transport(), base_url=fake.url)


def google_audience(fake: GoogleFake, transport: Any = None) -> GoogleAudience:
    return GoogleAudience("1234567890", "777", "google-token", transport or Urllib3Transport(), base_url=fake.url)


# ---------------------------------------------------------------- Meta


def test_entries_are_added_to_the_meta_audience_hashed_and_exits_removed(world: World, meta: MetaFake) -> None:
    changes = [world.enter("p1"), world.enter("p2")]
    report = world.sync(meta_audience(meta), changes)
    assert len(report.added) == 2
    assert meta.members("1234") == {sha("p1@example.com"), sha("p2@example.com")}
    form = {k: v for k, v in (p.split("=", 1) for p in meta.requests[0]["body"].decode().split("&"))}
    assert set(form) == {"payload", "session", "access_token"}
    report = world.sync(meta_audience(meta), [world.leave("p1")])
    assert len(report.removed) == 1 and meta.requests[-1]["method"] == "DELETE"
    assert meta.members("1234") == {sha("p2@example.com")}


def test_people_without_ads_consent_are_never_sent(world: World, meta: MetaFake) -> None:
    changes = [world.enter("p1", ads=False), world.enter("p2", ads=None)]
    report = world.sync(meta_audience(meta), changes)
    assert set(report.skipped.values()) == {"no_ads_consent"} and meta.requests == []


def test_a_resync_sends_every_consenting_member_in_batches_of_10000_as_one_session(world: World, meta: MetaFake) -> None:
    for n in range(10_050):
        world.membership.apply("vip", [Member(f"p{n}", "r1", AT)], [])
        world.profiles.profiles[f"p{n}"] = person(f"p{n}", ads=n % 1000 != 0)
    report = resync(["vip"], platform=meta_audience(meta), profiles=world.profiles, membership=world.membership,
                    session_id=42, holdings=InMemoryHoldings(), destination="aud")
    assert (report.members, report.sent, report.batches, report.skipped) == (10_050, 10_039, 2, {"no_ads_consent": 11})
    sessions = [json.loads(_form(r)["session"]) for r in meta.requests]
    assert [(s["batch_seq"], s["last_batch_flag"], s["estimated_num_total"]) for s in sessions] == [
        (1, False, 10_039), (2, True, 10_039)]
    assert {s["session_id"] for s in sessions} == {42}
    assert [len(json.loads(_form(r)["payload"])["data"]) for r in meta.requests] == [10_000, 39]


def _form(request: dict[str, Any]) -> dict[str, str]:
    from urllib.parse import parse_qs

    return {k: v[0] for k, v in parse_qs(request["body"].decode()).items()}


@pytest.mark.parametrize(("code", "action"), [(17, "slow_down"), (80003, "slow_down"), (613, "slow_down"),
                                               (4, "slow_down"), (2, "retry"), (1, "retry")])
def test_meta_rate_limits_and_transient_errors_release_the_claims_for_a_retry(
        world: World, meta: MetaFake, code: int, action: str) -> None:
    change = world.enter("p1")
    meta.fail_next(*meta_error(code, "limit"))
    report = world.sync(meta_audience(meta), [change])
    assert report.retry == [change] and report.retry_action == action
    again = world.sync(meta_audience(meta), [change])  # released: the retry sends at once
    assert len(again.added) == 1 and meta.members("1234") == {sha("p1@example.com")}


@pytest.mark.parametrize("code", [100, 190, 200, 2650])
def test_meta_permanent_errors_abort_and_are_never_retried(world: World, meta: MetaFake, code: int) -> None:
    change = world.enter("p1")
    meta.fail_next(*meta_error(code, "no"))
    report = world.sync(meta_audience(meta), [change])
    assert report.failed == {audience_key("aud", change): str(code)} and report.retry == []
    assert world.sync(meta_audience(meta), [change]).duplicates == [audience_key("aud", change)]


def test_a_late_entry_of_someone_who_has_left_since_is_not_sent(world: World, meta: MetaFake) -> None:
    entry = world.enter("p1")
    world.leave("p1")
    report = world.sync(meta_audience(meta), [entry])
    assert report.skipped == {audience_key("aud", entry): "stale"} and meta.requests == []


# ---------------------------------------------------------------- Google


def test_google_ingests_with_per_member_consent_and_gmail_normalisation(world: World, google: GoogleFake) -> None:
    change = world.enter("p1", email="Ann.Lee+shop@gmail.com")
    report = world.sync(google_audience(google), [change])
    assert len(report.added) == 1
    assert google.members("777") == {sha("annlee@gmail.com")}
    assert google.consents == [{"adUserData": "CONSENT_GRANTED", "adPersonalization": "CONSENT_GRANTED"}]
    body = json.loads(google.requests[0]["body"])
    assert body["destinations"] == [{"operatingAccount": {"accountType": "GOOGLE_ADS", "accountId": "1234567890"},
                                     "productDestinationId": "777"}]
    world.sync(google_audience(google), [world.leave("p1")])
    assert google.members("777") == set() and google.requests[-1]["path"] == "/v1/audienceMembers:remove"


@pytest.mark.parametrize(("status", "grpc", "action"), [(429, "RESOURCE_EXHAUSTED", "slow_down"),
                                                         (503, "UNAVAILABLE", "retry"), (500, "INTERNAL", "retry")])
def test_google_throttling_and_unavailability_are_retried(world: World, google: GoogleFake, status: int, grpc: str,
                                                         action: str) -> None:
    change = world.enter("p1")
    google.fail_next(*google_error(status, grpc, "later"))
    report = world.sync(google_audience(google), [change])
    assert report.retry == [change] and report.retry_action == action


@pytest.mark.parametrize(("status", "grpc"), [(400, "INVALID_ARGUMENT"), (401, "UNAUTHENTICATED"),
                                               (403, "PERMISSION_DENIED")])
def test_google_refusals_abort(world: World, google: GoogleFake, status: int, grpc: str) -> None:
    change = world.enter("p1")
    google.fail_next(*google_error(status, grpc, "no"))
    assert world.sync(google_audience(google), [change]).failed == {audience_key("aud", change): grpc}


def test_more_than_10000_changes_go_in_requests_of_at_most_10000(world: World, google: GoogleFake) -> None:
    changes = [world.enter(f"p{n}") for n in range(10_001)]
    report = world.sync(google_audience(google), changes)
    assert len(report.added) == 10_001
    assert [len(json.loads(r["body"])["audienceMembers"]) for r in google.requests] == [10_000, 1]


def test_erasure_removes_the_person_from_every_audience(meta: MetaFake, google: GoogleFake) -> None:
    meta.audiences["1234"] = {(sha("p1@example.com"),) + ("",) * 8}
    google.lists["777"] = {sha("p1@example.com")}
    assert remove_person(person("p1"), [meta_audience(meta), google_audience(google)]) == 2
    assert meta.members("1234") == set() and google.members("777") == set()


# ---------------------------------------------------------------- crash matrix (one audience change)


def test_crash_before_the_platform_call_then_redelivery_adds_once(world: World, meta: MetaFake) -> None:
    change = world.enter("p1")
    with pytest.raises(Crash):
        world.sync(meta_audience(meta, CrashingTransport(Urllib3Transport(), before=True)), [change])
    assert meta.requests == []
    assert world.sync(meta_audience(meta), [change]).retry == [change]  # hold not expired: in flight
    world.now[0] += 301
    assert len(world.sync(meta_audience(meta), [change]).added) == 1
    assert meta.members("1234") == {sha("p1@example.com")} and len(meta.requests) == 1


def test_crash_after_the_platform_call_then_redelivery_repeats_a_no_op(world: World, meta: MetaFake) -> None:
    change = world.enter("p1")
    with pytest.raises(Crash):
        world.sync(meta_audience(meta, CrashingTransport(Urllib3Transport(), after=True)), [change])
    assert meta.members("1234") == {sha("p1@example.com")}
    world.now[0] += 301
    assert len(world.sync(meta_audience(meta), [change]).added) == 1
    assert len(meta.requests) == 2 and meta.members("1234") == {sha("p1@example.com")}  # one member: idempotent


def test_a_lost_answer_releases_the_claim_and_the_retry_changes_nothing_more(world: World, meta: MetaFake) -> None:
    change = world.enter("p1")

    class LostAnswer:
        def request(self, method: str, url: str, *, headers: dict[str, str], body: bytes) -> Any:
            Urllib3Transport().request(method, url, headers=headers, body=body)
            from cdp.errors import DestinationRefused

            raise DestinationRefused("read timeout", action="retry")

    assert world.sync(meta_audience(meta, LostAnswer()), [change]).retry == [change]
    assert len(world.sync(meta_audience(meta), [change]).added) == 1
    assert meta.members("1234") == {sha("p1@example.com")}


def test_redelivery_after_success_sends_nothing(world: World, meta: MetaFake) -> None:
    change = world.enter("p1")
    world.sync(meta_audience(meta), [change])
    assert world.sync(meta_audience(meta), [change]).duplicates == [audience_key("aud", change)]
    assert len(meta.requests) == 1


# ---------------------------------------------------------------- webhooks through deliver()


def _context(world: World, destinations: str, targets: FakeTargets, *, rand: float = 0.5) -> DeliveryContext:
    parsed = {d.name: d for d in (parse_destination(text, f"{name}.yaml")
                                  for name, text in json.loads(destinations).items())}
    return DeliveryContext(destinations=parsed, targets=targets, profiles=world.profiles, membership=world.membership,
                           ledger=world.ledger, queue=ListQueue(), dead_letters=ListDeadLetters(),
                           state=InMemoryDestinationState(), transport=Urllib3Transport(allow_local=True),
                           rand=lambda: rand)


def _hook_world(world: World, receiver: WebhookReceiver, meta: MetaFake | None = None) -> DeliveryContext:
    files = {"hook": f"type: webhook\nsegments: [vip]\nsecret: hook\nurl: {receiver.url}/in\n"}
    if meta is not None:
        files["ads"] = "type: meta_audience\nsegments: [vip]\nsecret: meta\naudience_id: '1234'\n"
    targets = FakeTargets(Urllib3Transport(), meta_url=meta.url if meta else "", secrets={"hook": SECRET})
    return _context(world, json.dumps(files), targets)


def test_a_webhook_gets_each_change_signed_once_even_when_redelivered(world: World) -> None:
    with WebhookReceiver(SECRET) as receiver:
        ctx = _hook_world(world, receiver)
        change = world.enter("p1")
        deliver([Delivery(change)], ctx, now=world.now[0])
        deliver([Delivery(change)], ctx, now=world.now[0])  # the publisher's outbox announced it again
        assert receiver.violations == [] and receiver.deliveries == 1
        (message,) = receiver.messages.values()
        assert message["type"] == "segment.entered" and message["data"]["profile_id"] == "p1"


def test_a_503_is_retried_later_with_backoff_and_the_retry_delivers_once(world: World) -> None:
    with WebhookReceiver(SECRET) as receiver:
        ctx = _hook_world(world, receiver)
        receiver.fail_next(503, {})
        change = world.enter("p1")
        report = deliver([Delivery(change)], ctx, now=world.now[0])
        assert report.by_destination["hook"].retried == 1
        ((retry, delay),) = ctx.queue.sent  # type: ignore[attr-defined]
        assert (retry.destination, retry.attempt, delay) == ("hook", 1, 5)
        deliver([retry], ctx, now=retry.not_before)
        assert receiver.deliveries == 1 and len(receiver.requests) == 2


def test_the_retry_delay_setting_shortens_every_wait_but_not_the_attempts(world: World) -> None:
    with WebhookReceiver(SECRET) as receiver:
        ctx = replace(_hook_world(world, receiver), max_retry_delay=2)
        receiver.fail_next(500, {}, times=8)
        item, delays, now = Delivery(world.enter("p1")), [], world.now[0]
        for _ in range(8):
            deliver([item], ctx, now=now)
            if not ctx.queue.sent:  # type: ignore[attr-defined]
                break
            item, delay = ctx.queue.sent.pop()  # type: ignore[attr-defined]
            delays.append(delay)
            now = item.not_before
        assert delays == [2] * len(WEBHOOK_SCHEDULE) and len(receiver.requests) == 8
        assert now - world.now[0] == 2 * len(WEBHOOK_SCHEDULE)
        assert [d.reason for d in ctx.dead_letters.kept] == ["gave_up:retry"]  # type: ignore[attr-defined]


def test_a_429_waits_at_least_its_retry_after_and_long_waits_are_carried_past_sqs_delays(world: World) -> None:
    with WebhookReceiver(SECRET) as receiver:
        ctx = _hook_world(world, receiver)
        receiver.fail_next(429, {}, {"Retry-After": "3600"})
        deliver([Delivery(world.enter("p1"))], ctx, now=world.now[0])
        ((retry, delay),) = ctx.queue.sent  # type: ignore[attr-defined]
        assert retry.not_before == world.now[0] + 3600 and delay == 900
        deliver([retry], ctx, now=world.now[0] + 900)  # not due yet: queued again, nothing posted
        assert len(receiver.requests) == 1 and ctx.queue.sent[-1][0] == retry  # type: ignore[attr-defined]


def test_a_410_disables_the_webhook_and_dead_letters_its_messages(world: World) -> None:
    with WebhookReceiver(SECRET) as receiver:
        ctx = _hook_world(world, receiver)
        receiver.fail_next(410, {})
        deliver([Delivery(world.enter("p1")), Delivery(world.enter("p2"))], ctx, now=world.now[0])
        assert ctx.state.disabled("hook") is not None
        assert [d.reason for d in ctx.dead_letters.kept] == ["disabled", "disabled"]  # type: ignore[attr-defined]
        deliver([Delivery(world.enter("p3"))], ctx, now=world.now[0])
        assert len(receiver.requests) == 1


def test_a_webhook_gives_up_after_its_schedule_into_the_dead_letter_store(world: World) -> None:
    with WebhookReceiver(SECRET) as receiver:
        ctx = _hook_world(world, receiver)
        receiver.fail_next(500, {}, times=8)
        item = Delivery(world.enter("p1"))
        now = world.now[0]
        for _ in range(8):
            deliver([item], ctx, now=now)
            if not ctx.queue.sent:  # type: ignore[attr-defined]
                break
            item, _ = ctx.queue.sent.pop()  # type: ignore[attr-defined]
            now = item.not_before
        assert [d.reason for d in ctx.dead_letters.kept] == ["gave_up:retry"]  # type: ignore[attr-defined]
        assert len(receiver.requests) == 8 and now - world.now[0] > 24 * 3600


def test_a_failing_ad_platform_does_not_hold_up_the_webhook(world: World, meta: MetaFake) -> None:
    with WebhookReceiver(SECRET) as receiver:
        ctx = _hook_world(world, receiver, meta)
        meta.fail_next(*meta_error(2, "Service temporarily unavailable", status=500))
        report = deliver([Delivery(world.enter("p1"))], ctx, now=world.now[0])
        assert receiver.deliveries == 1 and report.by_destination["ads"].retried == 1
        ((retry, _),) = ctx.queue.sent  # type: ignore[attr-defined]
        assert retry.destination == "ads"  # only the failing destination is tried again
        deliver([retry], ctx, now=retry.not_before)
        assert meta.members("1234") == {sha("p1@example.com")} and receiver.deliveries == 1


def test_the_fake_refuses_unsigned_or_tampered_messages() -> None:
    import urllib.request

    with WebhookReceiver(SECRET) as receiver:
        request = urllib.request.Request(receiver.url, data=b"{}", method="POST",
                                         headers={"Content-Type": "application/json", "webhook-id": "msg_1",
                                                  "webhook-timestamp": "1", "webhook-signature": "v1,AAAA"})
        with pytest.raises(urllib.error.HTTPError) as caught:
            urllib.request.urlopen(request, timeout=5)
        assert caught.value.code == 401 and receiver.violations == ["bad signature"]


def test_people_keys_dataclass_is_hashable_for_sets() -> None:
    assert len({PersonKeys("p1"), PersonKeys("p1")}) == 1


def test_erasure_asks_every_ad_audience_destination_and_no_webhook(meta: MetaFake, google: GoogleFake) -> None:
    from cdp.activation.destinations import remove_from_audiences

    files = {"m": "type: meta_audience\nsegments: [vip]\nsecret: s\naudience_id: '1234'\n",
             "g": "type: google_audience\nsegments: [vip]\nsecret: s\naccount_id: '1234567890'\nuser_list_id: '777'\n",
             "h": "type: webhook\nsegments: [vip]\nsecret: s\nurl: https://e.com\n"}
    destinations = {n: parse_destination(t, f"{n}.yaml") for n, t in files.items()}
    google.lists["777"] = {sha("p1@example.com")}
    targets = FakeTargets(Urllib3Transport(), meta_url=meta.url, google_url=google.url)
    assert remove_from_audiences(person("p1"), destinations, targets) == ["m", "g"]
    assert google.members("777") == set()


def test_webhooks_left_when_the_time_budget_runs_out_are_requeued_unchanged(world: World) -> None:
    with WebhookReceiver(SECRET) as receiver:
        ctx = _hook_world(world, receiver)
        ticks = iter([0.0, 0.0, 99.0, 99.0])
        ctx.deadline, ctx.clock = 10.0, lambda: next(ticks)
        items = [Delivery(world.enter("p1")), Delivery(world.enter("p2")), Delivery(world.enter("p3"))]
        report = deliver(items, ctx, now=world.now[0])
        assert receiver.deliveries == 2 and report.by_destination["hook"].skipped == {"deferred": 1}
        ((left, delay),) = ctx.queue.sent  # type: ignore[attr-defined]
        assert (left.change.profile_id, left.attempt, delay) == ("p3", 0, 0)


def test_a_webhook_host_that_resolves_to_a_private_address_is_dead_lettered_not_retried(world: World) -> None:
    files = {"hook": "type: webhook\nsegments: [vip]\nsecret: hook\nurl: https://hooks.example.com/in\n"}
    ctx = _context(world, json.dumps(files), FakeTargets(Urllib3Transport(), secrets={"hook": SECRET}))
    ctx.transport = Urllib3Transport(pin_public=True, resolve=lambda host, port, type=0: [(2, 1, 6, "", ("10.0.0.7", port))])
    deliver([Delivery(world.enter("p1"))], ctx, now=world.now[0])
    assert [d.reason for d in ctx.dead_letters.kept] == ["refused:unsafe_endpoint"]  # type: ignore[attr-defined]
    assert ctx.queue.sent == []  # type: ignore[attr-defined]


# ---------------------------------------------------------------- partial batch failures


class FlakyLedger:
    """The ledger, with a store error (as DynamoDB answers once the SDK gave up) on the named calls."""

    def __init__(self, inner: Any, failing: set[str], *, calls: tuple[str, ...] = ("claim",)) -> None:
        self.inner, self.failing, self.calls = inner, failing, calls

    def __getattr__(self, name: str) -> Any:
        call = getattr(self.inner, name)
        if name not in self.calls:
            return call

        def flaky(key: str, *args: Any) -> Any:
            if any(part in key for part in self.failing):
                raise StoreError("throttled", retryable=True)
            return call(key, *args)
        return flaky


class DownQueue:
    def send(self, items: Any) -> None:
        raise StoreError("SendMessageBatch failed", retryable=True)


def test_a_throttled_claim_fails_that_change_alone_and_the_changes_after_it_go(world: World) -> None:
    with WebhookReceiver(SECRET) as receiver:
        ctx = _hook_world(world, receiver)
        ctx.ledger = FlakyLedger(world.ledger, {"|p1|"})  # type: ignore[assignment]
        items = [Delivery(world.enter("p1")), Delivery(world.enter("p2")), Delivery(world.enter("p3"))]
        report = deliver(items, ctx, now=world.now[0])
        assert set(report.failed) == {0} and receiver.deliveries == 2  # p2 and p3: the queue promises no order
        assert ctx.queue.sent == []  # type: ignore[attr-defined]  # SQS redelivers p1's message, not a retry
        ctx.ledger = world.ledger
        assert deliver([items[0]], ctx, now=world.now[0]).failed == {}
        assert receiver.deliveries == 3 and receiver.violations == []


def test_a_failing_destination_fails_only_the_changes_it_owes_and_the_others_are_done(
        world: World, meta: MetaFake) -> None:
    with WebhookReceiver(SECRET) as receiver:
        files = {"hook": f"type: webhook\nsegments: [vip]\nsecret: hook\nurl: {receiver.url}/in\n",
                 "ads": "type: meta_audience\nsegments: [other]\nsecret: meta\naudience_id: '1234'\n"}
        targets = FakeTargets(Urllib3Transport(), meta_url=meta.url, secrets={"hook": SECRET})
        ctx = _context(world, json.dumps(files), targets)
        # The webhook answers 503 and giving the claim back fails: the change's retry is not recorded.
        receiver.fail_next(503, {})
        ctx.ledger = FlakyLedger(world.ledger, {"wh#hook"}, calls=("release",))  # type: ignore[assignment]
        items = [Delivery(world.enter("p1")), Delivery(world.enter("p2", segment="other"))]
        report = deliver(items, ctx, now=world.now[0])
        assert set(report.failed) == {0} and "hook" in report.failed[0] and ctx.queue.sent == []  # type: ignore[attr-defined]
        assert meta.members("1234") == {sha("p2@example.com")}  # the other change is done
        ctx.ledger = world.ledger
        world.now[0] += 301  # SQS delivers the failed message again; the claim left pending has expired
        assert deliver([items[0]], ctx, now=world.now[0] - 301).failed == {}
        assert receiver.deliveries == 1 and len(meta.requests) == 1 and receiver.violations == []


def test_a_retry_that_cannot_be_queued_fails_its_change_and_not_the_delivered_ones(world: World) -> None:
    with WebhookReceiver(SECRET) as receiver:
        ctx = _hook_world(world, receiver)
        receiver.fail_next(503, {})  # the first change's post fails: it must be re-queued
        ctx.queue = DownQueue()  # type: ignore[assignment]
        items = [Delivery(world.enter("p1")), Delivery(world.enter("p2"))]
        report = deliver(items, ctx, now=world.now[0])
        assert set(report.failed) == {0} and receiver.deliveries == 1  # p2 was posted: done
        ctx.queue = ListQueue()
        assert deliver([items[0]], ctx, now=world.now[0]).failed == {}
        assert receiver.deliveries == 2 and receiver.violations == []


def test_a_crash_fails_the_whole_batch_and_its_redelivery_does_each_change_once(world: World) -> None:
    with WebhookReceiver(SECRET) as receiver:
        ctx = _hook_world(world, receiver)
        items = [Delivery(world.enter("p1")), Delivery(world.enter("p2"))]
        ctx.transport = CrashingTransport(ctx.transport, after=True)  # type: ignore[assignment]
        with pytest.raises(Crash):  # the process dies: no answer, SQS delivers the whole batch again
            deliver(items, ctx, now=world.now[0])
        ctx.transport = Urllib3Transport(allow_local=True)
        sent_at = world.now[0]
        world.now[0] += 301  # the dead holder's claim expires (the ledger's clock)
        assert deliver(items, ctx, now=sent_at).failed == {}
        assert len(receiver.messages) == 2 and receiver.violations == []  # p1 posted twice, one webhook-id
