"""What each ad audience holds: resync removes leavers, consent withdrawal removes at once, with the
keys that were sent; each crash cell of docs/architecture.md ("Audience holdings") against the fakes."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator
from typing import Any

import pytest

from cdp.activation import InMemoryEffectLedger
from cdp.activation.audiences.google import GoogleAudience
from cdp.activation.audiences.holdings import InMemoryHoldings
from cdp.activation.audiences.meta import MetaAudience
from cdp.activation.audiences.sync import reconcile, resync, sync_changes
from cdp.activation.destinations import (
    AudienceErasureNotice,
    DeliveryContext,
    InMemoryDestinationState,
    Reconcile,
    deliver,
    parse_delivery,
    parse_destination,
)
from cdp.adapters.http import Urllib3Transport
from cdp.segments.membership import InMemoryMembershipStore, Member, MembershipChange
from cdp_infra.fakes import GoogleFake, MetaFake
from tests.destination_support import DictProfiles, FakeTargets, ListDeadLetters, ListQueue, person

AT = "2024-05-01T12:00:00Z"
META = parse_destination("type: meta_audience\nsegments: [vip, lapsed]\nsecret: m\naudience_id: '1234'\n", "meta-vip.yaml")
GOOGLE = parse_destination("type: google_audience\nsegments: [vip, lapsed]\nsecret: g\naccount_id: '1234567890'\n"
                           "user_list_id: '777'\n", "google-vip.yaml")


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


class Crash(BaseException):
    """The process dies here: nothing after it runs."""


class CrashOnRequest:
    """Dies before (``before=True``) or after the ``n``-th platform request (1-based)."""

    def __init__(self, n: int, *, before: bool) -> None:
        self.inner, self.n, self.before, self.seen = Urllib3Transport(), n, before, 0

    def request(self, method: str, url: str, *, headers: dict[str, str], body: bytes) -> Any:
        self.seen += 1
        if self.seen == self.n and self.before:
            raise Crash(f"before request {self.n}")
        response = self.inner.request(method, url, headers=headers, body=body)
        if self.seen == self.n:
            raise Crash(f"after request {self.n}")
        return response


class CrashingHoldings(InMemoryHoldings):
    """Dies on the ``n``-th write (1-based), before it is applied."""

    def __init__(self, inner: InMemoryHoldings, n: int) -> None:
        super().__init__()
        self.items, self.versions, self.n, self.writes = inner.items, inner.versions, n, 0

    def _count(self, items: list[Any]) -> None:
        if items:
            self.writes += 1
            if self.writes == self.n:
                raise Crash(f"holdings write {self.n}")

    def write(self, destination: str, items: Any) -> list[str]:
        self._count(items := list(items))
        return super().write(destination, items)

    def put(self, destination: str, items: Any) -> None:  # erasure
        self._count(items := list(items))
        super().put(destination, items)


@pytest.fixture(params=["meta", "google"])
def platform(request: pytest.FixtureRequest) -> Iterator[tuple[Any, Any]]:
    """(fake, factory(transport) -> client) for each platform."""
    if request.param == "meta":
        with MetaFake() as meta:
            yield meta, lambda t=None: MetaAudience("1234", "meta-token", t or Urllib3Transport(), base_url=meta.url)
        assert meta.violations == []
    else:
        with GoogleFake() as google:
            yield google, lambda t=None: GoogleAudience("1234567890", "777", "google-token", t or Urllib3Transport(),
                                                        base_url=google.url)
        assert google.violations == []


def held_emails(fake: Any) -> set[str]:
    return fake.members("1234") if isinstance(fake, MetaFake) else fake.members("777")


class World:
    def __init__(self) -> None:
        self.membership = InMemoryMembershipStore()
        self.profiles = DictProfiles()
        self.holdings = InMemoryHoldings()
        self.ledger = InMemoryEffectLedger(clock=lambda: float(int(time.time())), max_attempts=10)

    def enter(self, pid: str, segment: str = "vip", **kw: Any) -> MembershipChange:
        self.profiles.profiles[pid] = person(pid, **kw)
        self.membership.apply(segment, [Member(pid, "r1", AT)], [])
        return MembershipChange(segment, pid, "entered", "r1", AT)

    def sync(self, client: Any, changes: list[MembershipChange], holdings: Any = None) -> Any:
        return sync_changes("aud", changes, platform=client, profiles=self.profiles, membership=self.membership,
                            ledger=self.ledger, holdings=holdings or self.holdings)

    def resync(self, client: Any, holdings: Any = None) -> Any:
        return resync(["vip", "lapsed"], platform=client, profiles=self.profiles, membership=self.membership,
                      session_id=42, holdings=holdings or self.holdings, destination="aud")


@pytest.fixture
def world() -> World:
    return World()


# ---------------------------------------------------------------- resync


def test_a_resync_removes_people_who_left_or_withdrew_consent_while_exits_were_lost(
        world: World, platform: tuple[Any, Any]) -> None:
    fake, client = platform
    world.sync(client(), [world.enter("p1"), world.enter("p2"), world.enter("p3")])
    assert held_emails(fake) == {sha(f"p{n}@example.com") for n in (1, 2, 3)}
    world.membership.apply("vip", [], ["p2"])  # left; the exit never reached the audience
    world.profiles.profiles["p3"] = person("p3", ads=False)  # withdrew consent
    report = world.resync(client())
    assert (report.sent, report.removed) == (1, 2)
    assert held_emails(fake) == {sha("p1@example.com")}
    assert set(world.holdings.profiles("aud")) == {"p1"}


def test_a_resync_removes_the_keys_that_were_sent_when_the_email_changed(world: World, platform: tuple[Any, Any]) -> None:
    fake, client = platform
    world.sync(client(), [world.enter("p1", email="old@example.com")])
    world.profiles.profiles["p1"] = person("p1", email="new@example.com")
    report = world.resync(client())
    assert (report.sent, report.replaced) == (1, 1)
    assert held_emails(fake) == {sha("new@example.com")}
    assert len(world.holdings.held("aud", ["p1"])["p1"]) == 1


def test_a_member_of_another_followed_segment_stays(world: World, platform: tuple[Any, Any]) -> None:
    fake, client = platform
    world.enter("p1")
    world.membership.apply("lapsed", [Member("p1", "r1", AT)], [])
    world.resync(client())
    world.membership.apply("vip", [], ["p1"])
    assert world.resync(client()).removed == 0 and held_emails(fake) == {sha("p1@example.com")}


def test_a_change_of_name_keeps_the_person_in_the_audience(world: World, platform: tuple[Any, Any]) -> None:
    fake, client = platform
    world.sync(client(), [world.enter("p1")])
    world.profiles.profiles["p1"] = {**person("p1"), "traits": {"first_name": "Anna", "last_name": "Lee",
                                                                "country": "US", "postal_code": "94103"}}
    report = world.resync(client())
    assert (report.sent, report.replaced) == (1, 1)
    assert held_emails(fake) == {sha("p1@example.com")}  # the old row, sharing the email, went first


# One resync of three people: p1 stays, p2 has left (removed), p3 changed email (old keys removed).
# Writes: 1 = holdings grow, 2 = holdings shrink. Requests: 1 = the removes, 2 = the adds.
CELLS = [("request", 1, True), ("request", 1, False), ("request", 2, True), ("request", 2, False),
         ("holdings", 1, None), ("holdings", 2, None)]


@pytest.mark.parametrize(("where", "n", "before"), CELLS,
                         ids=["before-removes", "after-removes", "before-adds", "after-adds",
                              "growing-holdings", "shrinking-holdings"])
def test_a_crash_anywhere_in_a_resync_then_a_rerun_converges(
        world: World, platform: tuple[Any, Any], where: str, n: int, before: bool | None) -> None:
    fake, client = platform
    world.sync(client(), [world.enter("p1"), world.enter("p2"), world.enter("p3", email="old@example.com")])
    world.membership.apply("vip", [], ["p2"])
    world.profiles.profiles["p3"] = person("p3", email="new@example.com")
    with pytest.raises(Crash):
        if where == "request":
            world.resync(client(CrashOnRequest(n, before=bool(before))))
        else:
            world.resync(client(), holdings=CrashingHoldings(world.holdings, n))
    world.resync(client())
    assert held_emails(fake) == {sha("p1@example.com"), sha("new@example.com")}
    assert world.holdings.held("aud", ["p1", "p2", "p3"]).keys() == {"p1", "p3"}
    assert world.resync(client()).removed == 0  # and a third run changes nothing


# ---------------------------------------------------------------- incremental changes keep the holdings


def test_an_exit_removes_the_keys_that_were_sent_and_drops_the_record(world: World, platform: tuple[Any, Any]) -> None:
    fake, client = platform
    world.sync(client(), [world.enter("p1", email="old@example.com")])
    assert world.holdings.held("aud", ["p1"])
    world.profiles.profiles["p1"] = person("p1", email="new@example.com")
    world.membership.apply("vip", [], ["p1"])
    report = world.sync(client(), [MembershipChange("vip", "p1", "exited", "r2", AT)])
    assert len(report.removed) == 1 and held_emails(fake) == set()
    assert world.holdings.held("aud", ["p1"]) == {}


def test_a_crash_after_recording_an_add_before_sending_it_leaves_a_record_a_remove_clears(
        world: World, platform: tuple[Any, Any]) -> None:
    fake, client = platform
    change = world.enter("p1")
    with pytest.raises(Crash):
        world.sync(client(CrashOnRequest(1, before=True)), [change])
    assert world.holdings.held("aud", ["p1"]) and held_emails(fake) == set()
    world.profiles.profiles["p1"] = person("p1", ads=False)
    world.resync(client())
    assert world.holdings.held("aud", ["p1"]) == {} and held_emails(fake) == set()


# ---------------------------------------------------------------- consent signals


def _ctx(world: World, targets: Any, destinations: dict[str, Any]) -> DeliveryContext:
    return DeliveryContext(destinations=destinations, targets=targets, profiles=world.profiles,
                           membership=world.membership, ledger=world.ledger, queue=ListQueue(),
                           dead_letters=ListDeadLetters(), state=InMemoryDestinationState(),
                           transport=Urllib3Transport(), rand=lambda: 0.5, holdings=world.holdings)


@pytest.fixture
def both() -> Iterator[tuple[MetaFake, GoogleFake, FakeTargets]]:
    with MetaFake() as meta, GoogleFake() as google:
        yield meta, google, FakeTargets(Urllib3Transport(), meta_url=meta.url, google_url=google.url)
        assert meta.violations == [] and google.violations == []


def test_a_consent_withdrawal_removes_the_person_from_every_audience_with_the_keys_sent(
        world: World, both: tuple[MetaFake, GoogleFake, FakeTargets]) -> None:
    meta, google, targets = both
    world.holdings = InMemoryHoldings()
    ctx = _ctx(world, targets, {"meta-vip": META, "google-vip": GOOGLE})
    change = world.enter("p1", email="old@example.com")
    deliver([parse_delivery(change.to_dict())], ctx, now=0.0)
    assert meta.members("1234") == google.members("777") == {sha("old@example.com")}
    world.profiles.profiles["p1"] = person("p1", ads=False, email="new@example.com")
    report = deliver([parse_delivery(Reconcile("p1").to_dict())], ctx, now=0.0)
    assert {n: r.removed for n, r in report.by_destination.items()} == {"meta-vip": 1, "google-vip": 1}
    assert meta.members("1234") == google.members("777") == set()
    assert list(world.holdings.profiles("meta-vip")) == list(world.holdings.profiles("google-vip")) == []


def test_denying_marketing_removes_too_and_a_later_ads_grant_adds_a_member(
        world: World, both: tuple[MetaFake, GoogleFake, FakeTargets]) -> None:
    meta, google, targets = both
    ctx = _ctx(world, targets, {"meta-vip": META})
    world.enter("p1", ads=None)  # a member without an ads grant: not sent
    deliver([Reconcile("p1")], ctx, now=0.0)
    assert meta.requests == []
    world.profiles.profiles["p1"] = person("p1", ads=True)
    deliver([Reconcile("p1")], ctx, now=0.0)
    assert meta.members("1234") == {sha("p1@example.com")}
    deliver([Reconcile("p1")], ctx, now=0.0)  # a repeated signal repeats an idempotent add
    assert meta.members("1234") == {sha("p1@example.com")}
    world.profiles.profiles["p1"] = {**person("p1", ads=True), "consent": {"ads": True, "marketing": False}}
    deliver([Reconcile("p1")], ctx, now=0.0)
    assert meta.members("1234") == set()


def test_a_consent_signal_the_platform_throttles_is_requeued_for_that_audience(
        world: World, both: tuple[MetaFake, GoogleFake, FakeTargets]) -> None:
    from cdp_infra.fakes import meta_error

    meta, _, targets = both
    ctx = _ctx(world, targets, {"meta-vip": META})
    world.enter("p1")
    status, answer = meta_error(80003, "There have been too many calls to this ad-account")
    meta.fail_next(status, answer)
    deliver([Reconcile("p1")], ctx, now=0.0)
    ((item, delay),) = ctx.queue.sent  # type: ignore[attr-defined]
    assert isinstance(item, Reconcile) and (item.destination, item.attempt, item.reason) == ("meta-vip", 1, "slow_down")
    assert parse_delivery(item.to_dict()) == item and delay >= 1
    deliver([item], ctx, now=item.not_before)
    assert meta.members("1234") == {sha("p1@example.com")}


# ---------------------------------------------------------------- erasure


def test_erasure_removes_the_keys_each_audience_was_sent_and_deletes_the_records(
        world: World, both: tuple[MetaFake, GoogleFake, FakeTargets]) -> None:
    from types import SimpleNamespace

    meta, google, targets = both
    ctx = _ctx(world, targets, {"meta-vip": META, "google-vip": GOOGLE})
    world.enter("p1", email="old@example.com")
    deliver([Reconcile("p1")], ctx, now=0.0)
    world.profiles.profiles["p1"] = person("p1", email="new@example.com")
    notice = AudienceErasureNotice({"meta-vip": META, "google-vip": GOOGLE}, targets, world.profiles,
                                   holdings=world.holdings)
    out = notice.notify("req-1", SimpleNamespace(profile_ids=["p1"], identifiers=["email:new@example.com"]))
    assert out == {"asked": ["google-vip", "meta-vip"], "not_told": {}}
    assert meta.members("1234") == google.members("777") == set()
    assert world.holdings.items == {}


# ---------------------------------------------------------------- the reconcile primitive


def test_reconcile_touches_only_the_people_named(world: World, platform: tuple[Any, Any]) -> None:
    fake, client = platform
    world.enter("p1")
    world.enter("p2")
    report = reconcile("aud", ["vip"], ["p1"], platform=client(), profiles=world.profiles,
                       membership=world.membership, holdings=world.holdings, session_id=1)
    assert report.sent == 1 and held_emails(fake) == {sha("p1@example.com")}


def test_an_exit_whose_record_cannot_be_dropped_is_removed_and_a_resync_clears_the_record(
        world: World, platform: tuple[Any, Any]) -> None:
    from cdp.errors import StoreError

    class DropFails(InMemoryHoldings):
        def write(self, destination: str, items: Any) -> list[str]:
            items = list(items)
            if any(not sent for _, sent, _ in items):
                raise StoreError("table throttled")
            return super().write(destination, items)

    fake, client = platform
    failing = DropFails()
    world.holdings = failing
    world.sync(client(), [world.enter("p1")])
    world.membership.apply("vip", [], ["p1"])
    report = world.sync(client(), [MembershipChange("vip", "p1", "exited", "r2", AT)])
    assert len(report.removed) == 1 and held_emails(fake) == set() and failing.held("aud", ["p1"])
    world.holdings = InMemoryHoldings()
    world.holdings.items, world.holdings.versions = failing.items, failing.versions
    assert world.resync(client()).removed == 1 and world.holdings.items == {}


def test_an_erasure_that_dies_before_deleting_the_records_removes_again_when_resumed(
        world: World, both: tuple[MetaFake, GoogleFake, FakeTargets]) -> None:
    from types import SimpleNamespace

    meta, _, targets = both
    ctx = _ctx(world, targets, {"meta-vip": META})
    world.enter("p1")
    deliver([Reconcile("p1")], ctx, now=0.0)
    person_ = SimpleNamespace(profile_ids=["p1"], identifiers=["email:p1@example.com"])
    dying = AudienceErasureNotice({"meta-vip": META}, targets, world.profiles,
                                  holdings=CrashingHoldings(world.holdings, 1))
    with pytest.raises(Crash):
        dying.notify("req-1", person_)
    assert meta.members("1234") == set() and world.holdings.items
    AudienceErasureNotice({"meta-vip": META}, targets, world.profiles, holdings=world.holdings).notify("req-1", person_)
    assert world.holdings.items == {} and meta.members("1234") == set()


# ---------------------------------------------------------------- merges: the merged-away id's holdings


def merge(world: World, away: str, into: str) -> None:
    """Identity resolution merged ``away`` into ``into``: a tombstone; the next segment run exits it."""
    world.profiles.profiles.pop(away)
    world.profiles.merged[away] = into
    world.membership.apply("vip", [], [away])


def merged_exit(world: World, client: Any, away: str, **kw: Any) -> Any:
    return world.sync(client, [MembershipChange("vip", away, "exited", "r2", AT)], **kw)


def test_a_merged_away_profiles_keys_leave_the_audience_at_its_exit_and_the_survivor_stays(
        world: World, platform: tuple[Any, Any]) -> None:
    fake, client = platform
    world.sync(client(), [world.enter("p1", email="ann@example.com"), world.enter("p3", email="p3@example.com")])
    merge(world, "p3", into="p1")  # p1 absorbed p3 (linked by another identifier); p3 held its own row

    report = merged_exit(world, client(), "p3")

    assert report.removed == ["aud#aud#vip#p3#r2#remove"]
    assert held_emails(fake) == {sha("ann@example.com")}  # p3's keys gone; p1 (restored) still there
    assert world.holdings.held("aud", ["p1", "p3"]).keys() == {"p1"}


def test_a_merged_away_profile_sharing_the_survivors_email_is_removed_and_the_survivor_sent_again(
        world: World, platform: tuple[Any, Any]) -> None:
    fake, client = platform
    world.sync(client(), [world.enter("p1", email="ann@example.com")])
    world.sync(client(), [world.enter("p2", email="ann@example.com")])  # the email that merged them
    merge(world, "p2", into="p1")

    merged_exit(world, client(), "p2")

    # The platform removes whoever matches any key of p2's row (the shared email): p1 is sent again.
    assert held_emails(fake) == {sha("ann@example.com")}
    assert world.holdings.held("aud", ["p1", "p2"]).keys() == {"p1"}


@pytest.mark.parametrize(("n", "before"), [(1, True), (1, False), (2, True), (2, False)],
                         ids=["before-the-remove", "after-the-remove", "before-the-restore", "after-the-restore"])
def test_a_merged_exit_that_dies_at_any_request_is_repaired_by_its_redelivery(
        world: World, platform: tuple[Any, Any], n: int, before: bool) -> None:
    fake, client = platform
    world.sync(client(), [world.enter("p1", email="ann@example.com"), world.enter("p2", email="ann@example.com")])
    merge(world, "p2", into="p1")

    with pytest.raises(Crash):
        merged_exit(world, client(CrashOnRequest(n, before=before)), "p2")
    world.ledger.clock = lambda: float(int(time.time())) + 301  # the claim's hold has expired
    merged_exit(world, client(), "p2")

    assert held_emails(fake) == {sha("ann@example.com")}
    assert world.holdings.held("aud", ["p1", "p2"]).keys() == {"p1"}


def test_a_merged_exit_redelivered_after_it_was_done_changes_nothing(world: World, platform: tuple[Any, Any]) -> None:
    fake, client = platform
    world.sync(client(), [world.enter("p1", email="ann@example.com"), world.enter("p2", email="bob@example.com")])
    merge(world, "p2", into="p1")
    merged_exit(world, client(), "p2")

    again = merged_exit(world, client(), "p2")

    assert again.skipped == {"aud#aud#vip#p2#r2#remove": "no_profile"} and not again.removed
    assert held_emails(fake) == {sha("ann@example.com")}


def test_an_erased_profiles_exit_removes_what_it_was_sent_with_no_survivor_to_restore(
        world: World, platform: tuple[Any, Any]) -> None:
    fake, client = platform
    world.sync(client(), [world.enter("p1")])
    world.profiles.profiles.pop("p1")
    world.membership.apply("vip", [], ["p1"])

    report = merged_exit(world, client(), "p1")

    assert len(report.removed) == 1 and held_emails(fake) == set() and world.holdings.items == {}


# ---------------------------------------------------------------- concurrent writers of one record


class Interleaved(InMemoryHoldings):
    """Runs ``meanwhile`` once, just before the first write that ``when`` picks: another writer's whole
    read-send-write happening between this writer's read and its write (no threads, no sleeps)."""

    def __init__(self, inner: InMemoryHoldings, when: Any, meanwhile: Any) -> None:
        super().__init__()
        self.items, self.versions, self.when, self.meanwhile = inner.items, inner.versions, when, meanwhile

    def write(self, destination: str, items: Any) -> list[str]:
        items = list(items)
        if self.meanwhile is not None and self.when(items):
            run, self.meanwhile = self.meanwhile, None
            run()
        return super().write(destination, items)


def test_a_resync_and_a_delivery_growing_one_record_at_once_both_keep_their_rows(
        world: World, platform: tuple[Any, Any]) -> None:
    fake, client = platform
    world.sync(client(), [world.enter("p1", email="old@example.com")])

    def delivery() -> None:  # between the resync's read and its write: new keys, and an entry sent with them
        world.enter("p1", segment="lapsed", email="new@example.com")
        world.sync(client(), [MembershipChange("lapsed", "p1", "entered", "r1", AT)])

    racing = Interleaved(world.holdings, when=lambda items: any(pid == "p1" for pid, _, _ in items),
                         meanwhile=delivery)
    world.resync(client(), holdings=racing)  # re-sends the old keys it read

    assert held_emails(fake) == {sha("old@example.com"), sha("new@example.com")}
    assert len(world.holdings.held("aud", ["p1"])["p1"]) == 2  # both rows: neither write lost the other's
    world.resync(client())
    assert held_emails(fake) == {sha("new@example.com")}  # so the next resync can take the old one out


def test_an_exit_whose_record_was_re_sent_meanwhile_keeps_it_held(world: World, platform: tuple[Any, Any]) -> None:
    """Without versions the exit's drop would erase a row the platform holds again: unremovable keys."""
    fake, client = platform
    world.sync(client(), [world.enter("p1")])
    world.membership.apply("vip", [], ["p1"])
    exit_ = MembershipChange("vip", "p1", "exited", "r2", AT)

    def reenter() -> None:  # after the exit's remove, before it drops the record: p1 enters again
        world.membership.apply("vip", [Member("p1", "r3", AT)], [])
        world.sync(client(), [MembershipChange("vip", "p1", "entered", "r3", AT)])

    racing = Interleaved(world.holdings, when=lambda items: any(not rows for _, rows, _ in items), meanwhile=reenter)
    report = world.sync(client(), [exit_], holdings=racing)

    assert report.kept == ["p1"] and len(report.removed) == 1
    assert held_emails(fake) == {sha("p1@example.com")}  # re-added after the remove
    assert world.holdings.held("aud", ["p1"])  # and still held: a later exit or resync can remove it


def test_grow_reads_again_after_a_conflict_and_shrink_gives_up_on_one() -> None:
    from cdp.activation.audiences.holdings import Holding, grow, shrink

    store = InMemoryHoldings()
    stale = {"p1": Holding()}  # read before anyone wrote
    grow(store, "aud", {"p1": [["a"]]}, {})
    written = grow(store, "aud", {"p1": [["b"]]}, stale)  # conflicts once, re-reads, merges
    assert store.held("aud", ["p1"]) == {"p1": [["a"], ["b"]]} and written["p1"].version == 2
    grow(store, "aud", {"p1": [["b"]]}, written)  # a fence: same rows, a new version
    assert shrink(store, "aud", {"p1": [["a"]]}, written) == ["p1"]  # read before the fence: left as is
    assert store.held("aud", ["p1"]) == {"p1": [["a"], ["b"]]}
    assert shrink(store, "aud", {"p1": [["a"], ["b"]]}, store.read("aud", ["p1"])) == []
    assert store.items == {}
