"""Scheduled automated campaigns: each due tick fans the segment's members out to the queue, and each
(campaign, tick, person) gets one message whatever crashes or retries (the crash matrix's rows)."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cdp.activation import InMemoryEffectLedger
from cdp.campaigns.definition import parse_campaign
from cdp.campaigns.eligibility import Policy
from cdp.campaigns.entries import MAX_HOP_SECONDS
from cdp.campaigns.scheduled import (
    FANOUT_TYPE,
    MESSAGE_TYPE,
    PAGE_ATTEMPTS,
    FanOutPage,
    on_fanout_page,
    on_scheduled,
    run_scheduled_campaigns,
)
from cdp.campaigns.send import CampaignReport, EmailSetup
from cdp.errors import EffectInFlight, InvalidEvent, SegmentsIncomplete, StoreError
from cdp.identity.profile import Profile
from cdp.jobs.segment_job import SegmentJobReport, raise_if_incomplete
from cdp.profiles.messages import InMemoryMessageJournal
from cdp.segments.membership import InMemoryMembershipStore, Member
from tests.unit.email_fakes import Crash, RecordingSes

TICK = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
RUN = "2026-11-30T12:00:00Z"
DIGEST = parse_campaign("""\
name: digest
kind: automated
channel: email
consent: email
audience: {segment: engaged, when: schedule, schedule: rate(7 days)}
template: {subject: "Hi {{ first_name }}", text: "This week"}
quiet_hours: {start: "21:00", end: "08:00", timezone: UTC}
frequency_cap: {max: 1, days: 6}
""", "digest.yaml")
ON_ENTRY = parse_campaign("""\
name: welcome
kind: automated
channel: email
consent: email
audience: {segment: engaged, when: entry}
template: {subject: "Hi", text: "Welcome"}
""", "welcome.yaml")


class Queue:
    """The activation queue: bodies in order; ``fail_at`` makes that call (0-based) die."""

    def __init__(self, fail_at: int | None = None, error: BaseException | None = None) -> None:
        self.bodies: list[dict[str, str]] = []
        self.calls = 0
        self.fail_at, self.error = fail_at, error

    def __call__(self, bodies: list[dict[str, str]]) -> None:
        for start in range(0, len(bodies), 10):  # as SqsActivationMessages: 10 a call
            if self.calls == self.fail_at:
                self.calls += 1
                raise self.error or Crash()
            self.calls += 1
            self.bodies += bodies[start:start + 10]


class CrashOnRecord(InMemoryMembershipStore):
    def record_campaign_tick(self, campaign: str, report: dict[str, Any]) -> None:
        raise Crash()


class Profiles:
    def __init__(self, ids: Collection[str]) -> None:
        self.by_id = {i: Profile(i, identifiers=[f"email:{i}@shop.test"], traits={"first_name": i}) for i in ids}

    def get_profiles(self, ids: Collection[str]) -> Mapping[str, Any]:
        return {i: self.by_id[i] for i in ids if i in self.by_id}


def members(store: InMemoryMembershipStore, n: int, segment: str = "engaged") -> list[str]:
    ids = [f"p{i:02d}" for i in range(n)]
    store.apply(segment, [Member(pid, "r0", "2026-11-01T00:00:00Z") for pid in ids], [])
    store.record_run(segment, "r0", {"run_id": "r0", "at": "2026-11-30T11:59:00Z"})
    return ids


def tick(store: InMemoryMembershipStore, queue: Queue, *, now: datetime = TICK, run: str = RUN,
         failed: Collection[str] = ()) -> Any:
    return run_scheduled_campaigns([DIGEST, ON_ENTRY], store=store, enqueue=queue, run_id=run, now=now,
                                   failed_segments=failed)


class World:
    """The activation side: every queued body delivered (possibly twice) through on_scheduled."""

    def __init__(self, ids: Collection[str]) -> None:
        self.profiles, self.provider = Profiles(ids), RecordingSes()
        self.ledger, self.journal = InMemoryEffectLedger(), InMemoryMessageJournal()
        self.report = CampaignReport()

    def deliver(self, bodies: list[dict[str, str]], now: datetime = TICK) -> list[Any]:
        later = []
        for body in bodies:
            later += on_scheduled(body, campaigns=[DIGEST, ON_ENTRY], profiles=self.profiles, journal=self.journal,
                                  ledger=self.ledger, policy=Policy(), now=now, report=self.report,
                                  setup=EmailSetup("news@shop.test", self.provider, "https://x/v1api", lambda: "k"))
        return later


# ---------------------------------------------------------------- the tick


def test_a_due_tick_queues_one_message_per_current_member_and_records_the_tick() -> None:
    store, queue = InMemoryMembershipStore(), Queue()
    ids = members(store, 23)

    report = tick(store, queue)

    assert report.queued == {"digest": 23} and queue.calls == 3  # SendMessageBatch: 10 a call
    assert [b["profile_id"] for b in queue.bodies] == ids
    assert {(b["type"], b["campaign"], b["run_id"]) for b in queue.bodies} == {(MESSAGE_TYPE, "digest", RUN)}
    assert store.last_campaign_tick("digest") == {"run_id": RUN, "at": "2026-11-30T12:00:00.000Z", "queued": 23}


def test_the_next_tick_within_the_interval_queues_nothing_and_a_week_later_queues_a_new_run() -> None:
    store = InMemoryMembershipStore()
    members(store, 3)
    tick(store, Queue())

    early, queue = tick(store, Queue(), now=TICK + timedelta(days=6), run="r-day6"), Queue()
    week = tick(store, queue, now=TICK + timedelta(days=7), run="r-day7")

    assert early.not_due == ["digest"] and not early.queued
    assert week.queued == {"digest": 3} and {b["run_id"] for b in queue.bodies} == {"r-day7"}


def test_a_segment_that_never_ran_or_failed_at_this_tick_makes_the_campaign_wait() -> None:
    store = InMemoryMembershipStore()
    assert tick(store, Queue()).waiting == ["digest"]  # never ran: its membership means nothing yet
    members(store, 2)
    assert tick(store, Queue(), failed=["engaged"]).waiting == ["digest"]
    assert store.last_campaign_tick("digest") is None  # not recorded: the retry, or the next tick, sends


def test_a_failed_fan_out_fails_the_tick_so_that_the_scheduler_retries_it() -> None:
    store = InMemoryMembershipStore()
    members(store, 12)

    ticks = tick(store, Queue(fail_at=1, error=StoreError("queue throttled", retryable=True)))
    report = SegmentJobReport(run_id=RUN, retryable=[f"campaign:{n}" for n in ticks.failures])

    assert list(ticks.failures) == ["digest"] and store.last_campaign_tick("digest") is None
    with pytest.raises(SegmentsIncomplete):
        raise_if_incomplete(report)


# ---------------------------------------------------------------- crash matrix (tick + activation)


@pytest.mark.parametrize("where", ["during the fan-out", "after the fan-out, before the record",
                                   "after the record"])
def test_a_crash_then_the_retried_tick_sends_each_member_exactly_once(where: str) -> None:
    ids = [f"p{i:02d}" for i in range(25)]
    store = CrashOnRecord() if where == "after the fan-out, before the record" else InMemoryMembershipStore()
    members(store, 25)
    first = Queue(fail_at=2) if where == "during the fan-out" else Queue()
    world = World(ids)

    with pytest.raises(Crash) if where != "after the record" else _nothing():
        tick(store, first)
    world.deliver(first.bodies)  # what reached the queue before the crash is sent
    if where == "after the fan-out, before the record":
        store.__class__ = InMemoryMembershipStore  # the retry's process does not crash
    retry = Queue()
    tick(store, retry)  # EventBridge retries the tick: same event, same run id
    world.deliver(retry.bodies)

    assert len(first.bodies) == (20 if where == "during the fan-out" else 25) and len(retry.bodies) == 25
    assert sorted(world.provider.to) == [f"{pid}@shop.test" for pid in ids]
    assert len(world.report.duplicates) == len(first.bodies)
    assert store.last_campaign_tick("digest")["run_id"] == RUN  # type: ignore[index]


class _nothing:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> bool:
        return False


def test_a_message_delivered_twice_sends_once_and_is_journalled_for_the_caps() -> None:
    store, queue = InMemoryMembershipStore(), Queue()
    ids = members(store, 2)
    tick(store, queue)
    world = World(ids)

    world.deliver(queue.bodies + queue.bodies)

    assert len(world.provider.to) == 2 and len(world.report.duplicates) == 2
    [message] = world.journal.sent_to(["p00"])
    assert message.key == f"campaign#digest#{RUN}#p00" and message.segment == "campaign:digest"


def test_a_member_in_quiet_hours_is_deferred_in_hops_then_sent_once() -> None:
    store, queue = InMemoryMembershipStore(), Queue()
    members(store, 1)
    night = datetime(2026, 11, 30, 23, 0, tzinfo=UTC)
    tick(store, queue, now=night)
    world = World(["p00"])

    [later] = world.deliver(queue.bodies, now=night)
    assert not world.provider.to and later.delay_seconds == MAX_HOP_SECONDS
    assert later.body["type"] == MESSAGE_TYPE and later.body["not_before"] == "2026-12-01T08:00:00.000Z"
    [hop] = world.deliver([later.body], now=night + timedelta(minutes=15))
    assert hop.body == later.body and not world.provider.to
    assert world.deliver([later.body], now=datetime(2026, 12, 1, 8, 0, 1, tzinfo=UTC)) == []
    assert world.provider.to == ["p00@shop.test"]


def test_the_frequency_cap_holds_across_runs_and_consent_is_checked_at_send_time() -> None:
    store, world, queue = InMemoryMembershipStore(), World(["p00", "p01"]), Queue()
    members(store, 2)
    world.profiles.by_id["p01"] = Profile("p01", identifiers=["email:p01@shop.test"], traits={"unsubscribed": True})
    tick(store, queue)
    world.deliver(queue.bodies)

    world.deliver([{**b, "run_id": "another-run"} for b in queue.bodies], now=TICK + timedelta(days=3))

    assert world.provider.to == ["p00@shop.test"]
    assert world.report.skipped_by_reason() == {"no_consent": 2, "frequency_cap": 1}


def test_a_removed_campaign_an_erased_person_and_a_malformed_message_are_refused_with_a_reason() -> None:
    world = World(["p00"])
    body = {"type": MESSAGE_TYPE, "campaign": "gone", "run_id": RUN, "profile_id": "p00", "at": RUN}
    world.deliver([body, {**body, "campaign": "digest", "profile_id": "erased"}])
    assert world.report.skipped_by_reason() == {"no_campaign": 1, "no_profile": 1}
    with pytest.raises(InvalidEvent, match="profile_id"):
        world.deliver([{**body, "profile_id": ["p00"]}])


# ---------------------------------------------------------------- inside the segment job


def test_the_segment_job_fans_out_the_membership_its_tick_just_computed_and_reports_it() -> None:
    from cdp.jobs.segment_job import run_segment_job
    from cdp.segments.definition import parse_segment
    from tests.unit.test_segment_run import FakeEngine, FlakyEngine, Outbox

    engaged = parse_segment("name: engaged\ncondition: {event: Order Completed, within_days: 30}\n")
    store, queue = InMemoryMembershipStore(), Queue()

    failed = run_segment_job([engaged], engine=FlakyEngine("p1", failing={0}, error=StoreError("slow", retryable=True)),
                             membership=store, publish=Outbox(), run_id=RUN, now=TICK, campaigns=[DIGEST],
                             enqueue=queue)
    retried = run_segment_job([engaged], engine=FakeEngine("p1", "p2"), membership=store, publish=Outbox(),
                              run_id=RUN, now=TICK, campaigns=[DIGEST], enqueue=queue)

    assert failed.campaigns["waiting"] == ["digest"] and failed.retryable == ["engaged"]
    assert retried.campaigns["queued"] == {"digest": 2} and not retried.retryable
    assert [b["profile_id"] for b in queue.bodies] == ["p1", "p2"]


# ---------------------------------------------------------------- fan-out pages (any audience size)


class Chain:
    """The activation queue with both kinds of message: members are sent, pages fanned out."""

    def __init__(self, ids: Collection[str], store: InMemoryMembershipStore) -> None:
        self.world, self.store = World(ids), store
        self.clock = [0.0]
        self.pages = InMemoryEffectLedger(max_attempts=PAGE_ATTEMPTS, clock=lambda: self.clock[0])
        self.outcomes: list[str] = []

    def page(self, body: dict[str, Any], queue: Queue) -> None:
        self.outcomes.append(on_fanout_page(body, campaigns=[DIGEST, ON_ENTRY], store=self.store, enqueue=queue,
                                            ledger=self.pages, page_size=PAGE))

    def drain(self, bodies: list[dict[str, Any]]) -> None:
        """Deliver until the queue is empty, pages handled by processes that do not crash."""
        todo = list(bodies)
        while todo:
            body = todo.pop(0)
            if body["type"] == FANOUT_TYPE:
                queue = Queue()
                self.page(body, queue)
                todo += queue.bodies
            else:
                self.world.deliver([body])

    def expire_holds(self) -> None:
        self.clock[0] += 301  # past the claim's hold: a dead holder's page is taken over


PAGE = 10


def paged_tick(n: int) -> tuple[list[str], InMemoryMembershipStore, Queue, Any]:
    store, queue = InMemoryMembershipStore(), Queue()
    ids = members(store, n)
    report = run_scheduled_campaigns([DIGEST], store=store, enqueue=queue, run_id=RUN, now=TICK, page_size=PAGE)
    return ids, store, queue, report


def test_a_tick_beyond_one_page_queues_the_first_page_and_a_page_message_that_chains_the_rest() -> None:
    ids, store, queue, report = paged_tick(35)
    chain = Chain(ids, store)

    [page] = [b for b in queue.bodies if b["type"] == FANOUT_TYPE]
    chain.drain(queue.bodies)

    assert report.queued == {"digest": 10} and report.paged == ["digest"]
    assert page == {"type": FANOUT_TYPE, "campaign": "digest", "run_id": RUN, "at": "2026-11-30T12:00:00.000Z",
                    "page": 1, "after": "p09"}
    assert store.last_campaign_tick("digest") == {"run_id": RUN, "at": "2026-11-30T12:00:00.000Z", "queued": 10,
                                                  "paged": True}
    assert sorted(chain.world.provider.to) == [f"{pid}@shop.test" for pid in ids]
    assert chain.outcomes == ["queued:10", "queued:10", "queued:5"]  # each page bounded; the last ends the chain


def test_an_audience_of_exactly_whole_pages_ends_with_an_empty_page() -> None:
    ids, store, queue, _ = paged_tick(20)
    chain = Chain(ids, store)
    chain.drain(queue.bodies)
    assert len(chain.world.provider.to) == 20 and chain.outcomes == ["queued:10", "queued:0"]


@pytest.mark.parametrize("crash_at", [0, 1, 2], ids=["after the claim, before queueing",
                                                    "during the members (one batch queued)",
                                                    "after the next page was queued, before marking"])
def test_a_page_whose_process_dies_is_retried_within_the_hold_later_then_taken_over(crash_at: int) -> None:
    ids, store, queue, _ = paged_tick(35)
    chain = Chain(ids, store)
    [page] = [b for b in queue.bodies if b["type"] == FANOUT_TYPE]
    chain.drain([b for b in queue.bodies if b["type"] == MESSAGE_TYPE])
    # A page queues 11 messages (10 members and the next page): 2 SendMessageBatch calls.
    crashing = Queue(fail_at=crash_at) if crash_at < 2 else Queue()
    with pytest.raises(Crash) if crash_at < 2 else _nothing():
        chain.page(page, crashing)
        if crash_at == 2:
            chain.pages.items[FanOutPage.from_body(page).key]["state"] = "pending"  # died before mark_sent
    chain.drain(crashing.bodies)  # what reached the queue before the death is handled

    with pytest.raises(EffectInFlight):  # SQS redelivers within the hold: the page waits
        chain.page(page, Queue())
    chain.expire_holds()
    chain.drain([page])  # taken over

    assert sorted(chain.world.provider.to) == [f"{pid}@shop.test" for pid in ids]
    assert (crash_at == 2) == ("duplicate" in chain.outcomes)  # the next page queued twice: once done


def test_a_page_whose_queue_refuses_gives_the_claim_back_and_the_retry_does_it_at_once() -> None:
    ids, store, queue, _ = paged_tick(15)
    chain = Chain(ids, store)
    [page] = [b for b in queue.bodies if b["type"] == FANOUT_TYPE]

    with pytest.raises(StoreError):
        chain.page(page, Queue(fail_at=0, error=StoreError("throttled", retryable=True)))
    chain.drain(queue.bodies)  # the tick's page and the redelivered page message, no hold to wait for

    assert sorted(chain.world.provider.to) == [f"{pid}@shop.test" for pid in ids]


def test_a_page_delivered_again_after_it_was_done_and_a_retried_tick_queue_nothing_new() -> None:
    ids, store, queue, _ = paged_tick(25)
    chain = Chain(ids, store)
    chain.drain(queue.bodies)
    pages = [b for b in queue.bodies if b["type"] == FANOUT_TYPE]

    retry = Queue()
    run_scheduled_campaigns([DIGEST], store=store, enqueue=retry, run_id=RUN, now=TICK, page_size=PAGE)
    chain.drain(retry.bodies + pages)

    assert sorted(chain.world.provider.to) == [f"{pid}@shop.test" for pid in ids]
    assert chain.outcomes[-2:] == ["duplicate", "duplicate"]  # page 1 from the retried tick, and redelivered


def test_membership_changing_between_pages_sends_whoever_is_a_member_when_their_page_is_read_once() -> None:
    ids, store, queue, _ = paged_tick(25)
    chain = Chain([*ids, "p05b", "p15b"], store)
    chain.drain([b for b in queue.bodies if b["type"] == MESSAGE_TYPE])
    store.apply("engaged", [Member("p05b", "r1", "2026-11-30T12:01:00Z"), Member("p15b", "r1", "2026-11-30T12:01:00Z")],
                ["p12"])  # entries and an exit after the tick, before page 1 is read

    chain.drain([b for b in queue.bodies if b["type"] == FANOUT_TYPE])

    sent = sorted(chain.world.provider.to)
    assert "p12@shop.test" not in sent and "p05b@shop.test" not in sent  # left; entered in a page already read
    assert "p15b@shop.test" in sent and len(sent) == len(set(sent)) == 25


def test_a_page_of_a_removed_campaign_does_nothing_and_a_malformed_page_is_refused_with_its_field() -> None:
    ids, store, queue, _ = paged_tick(15)
    chain = Chain(ids, store)
    [page] = [b for b in queue.bodies if b["type"] == FANOUT_TYPE]
    assert on_fanout_page(page, campaigns=[ON_ENTRY], store=store, enqueue=Queue(), ledger=chain.pages) == "no_campaign"
    for field, value in [("page", 0), ("page", "1"), ("after", ""), ("run_id", None), ("campaign", "x" * 300)]:
        with pytest.raises(InvalidEvent) as err:
            chain.page({**page, field: value}, Queue())
        assert err.value.details["field"] == field


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(n=st.integers(0, 30), page=st.integers(1, 8), data=st.data())
def test_any_size_any_crashes_duplicates_and_order_send_each_member_exactly_once(n: int, page: int, data: Any) -> None:
    """Every page handler may die at any of its queue calls (then is redelivered after the hold), any
    message may come twice, and the queue delivers in any order: each member gets one email."""
    store, queue = InMemoryMembershipStore(), Queue()
    ids = members(store, n)
    run_scheduled_campaigns([DIGEST], store=store, enqueue=queue, run_id=RUN, now=TICK, page_size=page)
    chain = Chain(ids, store)
    todo = list(queue.bodies)
    while todo:
        body = todo.pop(data.draw(st.integers(0, len(todo) - 1)))
        if data.draw(st.booleans()):
            todo.append(dict(body))  # at-least-once: delivered again later
        if body["type"] != FANOUT_TYPE:
            chain.world.deliver([body])
            continue
        crash = data.draw(st.one_of(st.none(), st.integers(0, page // 10 + 1)))
        out = Queue(fail_at=crash)
        try:
            on_fanout_page(body, campaigns=[DIGEST], store=store, enqueue=out, ledger=chain.pages, page_size=page)
        except Crash:
            chain.expire_holds()
            todo.append(body)  # SQS redelivers after the visibility timeout
        except EffectInFlight:
            chain.expire_holds()
            todo.append(body)
        todo += out.bodies
    assert sorted(chain.world.provider.to) == [f"{pid}@shop.test" for pid in ids]
