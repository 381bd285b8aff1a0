"""The demo's consistency checks fail on a wrong result, and the dataset's ground truth is right."""

from __future__ import annotations

import dataclasses
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest

from cdp_infra.client import SendResult
from cdp_infra.dataset import MISSING_IDENTITY, Dataset, Person, generate
from cdp_infra.demo import (
    DemoSummary,
    evaluate,
    expected_repeat_buyers,
    identity_problems,
    membership_problems,
    owners_of,
    rejection_reasons,
)

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
ALICE = frozenset({"user_id:u-1", "email:alice@example.com", "anonymous_id:a-1", "anonymous_id:a-2",
                   "device_id:a-2"})
BRUNO = frozenset({"user_id:u-2", "email:bruno@example.com", "anonymous_id:b-1"})
VISITOR = frozenset({"anonymous_id:v-1"})
PEOPLE = [ALICE, BRUNO, VISITOR]


def _exact() -> dict[str, frozenset[str]]:
    return {"p-alice": ALICE, "p-bruno": BRUNO, "p-visitor": VISITOR}


def _passing() -> DemoSummary:
    return DemoSummary(
        people=3, events_sent=10, events_accepted=8, events_rejected=2,
        rejected_by_reason={MISSING_IDENTITY: 2}, expected_rejections={MISSING_IDENTITY: 2},
        quarantined=2, events_in_lake=8, profiles=3, expected_profiles=3,
        segments={"repeat-buyers": {"members": 1, "entered": 1, "exited": 0, "bytes_scanned": 10}},
        segments_configured=["repeat-buyers"], email_entries=1, emails_sent=5,
        metrics={"EventsAccepted": 8, "EmailsSent": 4},
        campaigns={
            "auto": {"kind": "automated", "owed": 3, "sent": 2, "skipped": {"no_consent": 1}, "sent_in_lake": 2,
                     "delivered": 1, "bounced": 1, "unsubscribed": 1, "unsubscribes_clicked": 1},
            "once": {"kind": "adhoc", "owed": 1, "sent": 1, "skipped": {}, "retry_sent": 0, "sent_in_lake": 1,
                     "delivered": 1, "bounced": 0, "unsubscribed": 0, "unsubscribes_clicked": 0},
            "trig": {"kind": "triggered", "owed": 3, "sent": 1, "skipped": {"cancelled_unless": 1}, "waiting": 1,
                     "stale": 1, "sent_in_lake": 1, "delivered": 1, "bounced": 0, "unsubscribed": 0,
                     "unsubscribes_clicked": 0}},
        checkouts={"remind": 1, "ordered": 1, "waiting": 1, "stale": 1},
        campaign_events=0,
        destinations={"meta": {"pushed": 1, "expected": 1, "requests": 1, "violations": 0}},
        erasure={"status": "done", "remaining": 0, "person_events": 4, "lake_events_about": 5, "lake_events_removed": 5},
    )


def _campaign(name: str, **change: object) -> dict:
    campaigns = _passing().campaigns
    return {**campaigns, name: {**campaigns[name], **change}}


# ----------------------------------------------------------------------------- identity_problems
def test_profiles_matching_the_people_exactly_have_no_problem() -> None:
    assert identity_problems(PEOPLE, _exact()) == []


def test_a_profile_holding_two_peoples_identifiers_is_an_over_merge() -> None:
    profiles = {"p-both": ALICE | BRUNO, "p-visitor": VISITOR}
    problems = identity_problems(PEOPLE, profiles)
    assert problems == ["over-merge: profile p-both holds identifiers of people [0, 1]"]


def test_a_person_split_over_two_profiles_is_an_under_merge() -> None:
    profiles = {**_exact(), "p-alice": ALICE - {"anonymous_id:a-2", "device_id:a-2"},
                "p-alice-phone": frozenset({"anonymous_id:a-2", "device_id:a-2"})}
    problems = identity_problems(PEOPLE, profiles)
    assert problems == ["under-merge: person 0 is split over profiles ['p-alice', 'p-alice-phone']"]


def test_an_identifier_no_profile_holds_is_reported() -> None:
    profiles = {**_exact(), "p-bruno": BRUNO - {"email:bruno@example.com"}}
    assert identity_problems(PEOPLE, profiles) == ["person 1: no profile holds ['email:bruno@example.com']"]


def test_a_profile_with_identifiers_no_person_has_is_reported() -> None:
    profiles = {**_exact(), "p-stray": frozenset({"anonymous_id:nobody"})}
    assert identity_problems(PEOPLE, profiles) == [
        "profile p-stray holds identifiers no person has: ['anonymous_id:nobody']"]


def test_a_profile_with_a_persons_and_a_foreign_identifier_is_reported() -> None:
    profiles = {**_exact(), "p-visitor": VISITOR | {"email:stranger@example.com"}}
    assert identity_problems(PEOPLE, profiles) == [
        "profile p-visitor holds identifiers no person has: ['email:stranger@example.com']"]


def test_unrelated_profiles_can_be_ignored_on_a_shared_stack() -> None:
    profiles = {**_exact(), "p-other-test": frozenset({"anonymous_id:kiosk-1"})}
    assert identity_problems(PEOPLE, profiles, ignore_unrelated=True) == []


# ----------------------------------------------------------------------------- evaluate
def test_a_consistent_summary_passes_every_check() -> None:
    checks = evaluate(_passing())
    assert len(checks) == 18 and all(checks.values())


@pytest.mark.parametrize(("change", "failing"), [
    ({"events_sent": 11}, "every event answered"),
    ({"rejected_by_reason": {"invalid_type": 2}}, "rejected = the dataset's broken events, by reason"),
    ({"rejected_by_reason": {MISSING_IDENTITY: 1, "invalid_type": 1}},
     "rejected = the dataset's broken events, by reason"),
    ({"quarantined": 1}, "every rejected event quarantined"),
    ({"events_in_lake": 7}, "every accepted event is in the lake"),
    ({"profiles": 2}, "one profile per person, holding exactly that person's identifiers"),
    ({"profiles": 4}, "one profile per person, holding exactly that person's identifiers"),
    ({"identity_problems": ["over-merge: profile p holds identifiers of people [0, 1]"]},
     "one profile per person, holding exactly that person's identifiers"),
    ({"membership_problems": ["repeat-buyers: person 1 should be a member but is not"]},
     "repeat buyers = the dataset's people with enough recent orders"),
    ({"email_entries": 2}, "emails sent = entries of segments with an email channel + campaign sends"),
    ({"campaigns": _campaign("auto", skipped={})},
     "campaign sent + skipped (+ still waiting) = its audience, per campaign"),
    ({"campaigns": _campaign("trig", skipped={"no_consent": 1})},
     "checkout reminders: cancelled by a later order, waiting, too old, each exactly the demo's checkouts"),
    ({"campaigns": _campaign("trig", stale=0)},
     "checkout reminders: cancelled by a later order, waiting, too old, each exactly the demo's checkouts"),
    ({"checkouts": {}},
     "checkout reminders: cancelled by a later order, waiting, too old, each exactly the demo's checkouts"),
    ({"campaigns": _campaign("once", retry_sent=1)}, "a retried ad-hoc send or scheduled tick sends nobody twice"),
    ({"campaigns": _campaign("auto", delivered=2)}, "SES outcomes in the lake = messages sent, per campaign"),
    ({"campaigns": _campaign("auto", unsubscribed=0)}, "every one-click unsubscribe is in the lake"),
    ({"campaign_events": 1}, "every accepted event is in the lake"),
    ({"segments": {"repeat-buyers": {"error": "QueryFailed: boom"}}},
     "every configured segment ran and none failed"),
    ({"segments": {}}, "every configured segment ran and none failed"),
    ({"segments_skipped": ["repeat-buyers"]}, "every configured segment ran and none failed"),
    ({"metrics": {"EventsAccepted": 7, "EmailsSent": 4}}, "metrics agree: events accepted"),
    ({"metrics": {"EventsAccepted": 8, "EmailsSent": 5}}, "metrics agree: emails sent"),
    ({"failure_destination": 1}, "nothing sent to the failure destination"),
    ({"destinations": {"meta": {"pushed": 0, "expected": 1, "requests": 1, "violations": 0}}},
     "each ad audience and webhook holds exactly its consenting members, within the contract"),
    ({"destinations": {"meta": {"pushed": 1, "expected": 1, "requests": 1, "violations": 1}}},
     "each ad audience and webhook holds exactly its consenting members, within the contract"),
    ({"erasure": {"status": "done", "remaining": 1, "person_events": 4, "lake_events_about": 5, "lake_events_removed": 5}},
     "one person erased: 0 records remain, the lake lost exactly the events about them"),
    ({"erasure": {"status": "done", "remaining": 0, "person_events": 4, "lake_events_about": 5, "lake_events_removed": 4}},
     "one person erased: 0 records remain, the lake lost exactly the events about them"),
    ({"erasure": {"status": "failed", "remaining": 0, "person_events": 4, "lake_events_about": 5, "lake_events_removed": 5}},
     "one person erased: 0 records remain, the lake lost exactly the events about them"),
    ({"erasure": {"status": "done", "remaining": 0, "person_events": 4, "lake_events_about": 3,
                  "lake_events_removed": 3}},
     "one person erased: 0 records remain, the lake lost exactly the events about them"),
    ({"erasure": {}}, "one person erased: 0 records remain, the lake lost exactly the events about them"),
])
def test_each_check_fails_on_a_wrong_result(change: dict, failing: str) -> None:
    checks = evaluate(dataclasses.replace(_passing(), **change))
    assert [name for name, passed in checks.items() if not passed] == [failing]


def test_an_over_merged_profile_set_fails_the_demo() -> None:
    summary = _passing()
    summary.identity_problems = identity_problems(PEOPLE, {"p-both": ALICE | BRUNO, "p-visitor": VISITOR})
    summary.profiles = 2
    summary.checks = evaluate(summary)
    assert not summary.ok


# ----------------------------------------------------------------------------- segment membership
OWNERS = {"p-alice": 0, "p-bruno": 1, "p-visitor": 2}


def test_owners_leave_out_an_over_merged_profile() -> None:
    assert owners_of(PEOPLE, _exact()) == OWNERS
    assert owners_of(PEOPLE, {"p-both": ALICE | BRUNO, "p-visitor": VISITOR}) == {"p-visitor": 2}


def test_members_matching_the_ground_truth_have_no_problem() -> None:
    assert membership_problems("s", ["p-alice"], OWNERS, must={0}, may={0, 1}) == []
    assert membership_problems("s", ["p-alice", "p-bruno"], OWNERS, must={0}, may={0, 1}) == []


def test_a_missing_member_is_reported() -> None:
    assert membership_problems("s", [], OWNERS, must={0}, may={0}) == ["s: person 0 should be a member but is not"]


def test_a_member_who_should_not_be_is_reported() -> None:
    assert membership_problems("s", ["p-alice", "p-visitor"], OWNERS, must={0}, may={0}) == [
        "s: person 2 is a member but should not be"]


def test_a_member_that_is_no_one_persons_profile_is_reported() -> None:
    assert membership_problems("s", ["p-both"], OWNERS, must=set(), may=set()) == [
        "s: member p-both is no one person's profile"]


def _buyer(index: int, *days_ago: float) -> Person:
    return Person(index, True, frozenset({f"user_id:u-{index}"}), frozenset(),
                  tuple(NOW - timedelta(days=d) for d in days_ago))


def test_repeat_buyers_are_people_with_two_orders_in_the_segments_window() -> None:
    dataset = Dataset(people=4, generated_at=NOW, persons=[
        _buyer(0, 1, 2), _buyer(1, 1), _buyer(2, 1, 29.99), _buyer(3, 1, 31)])
    must, may = expected_repeat_buyers(dataset, ran_from=NOW, ran_until=NOW + timedelta(hours=1))
    # Person 2's older order leaves the 30-day window if the job runs later than NOW + 14 minutes.
    assert (must, may) == ({0}, {0, 2})


# ----------------------------------------------------------------------------- rejection reasons
def test_rejections_are_counted_by_the_reason_of_each_event() -> None:
    result = SendResult(200, 2, 2, {"rejected": [{"index": 0, "reason": MISSING_IDENTITY},
                                                 {"index": 3, "reason": "invalid_type"}]})
    assert Counter(rejection_reasons(result)) == Counter({MISSING_IDENTITY: 1, "invalid_type": 1})


def test_a_refused_request_counts_every_event_under_its_code() -> None:
    result = SendResult(401, 0, 3, {"reason": "unknown_write_key"})
    assert rejection_reasons(result) == ["unknown_write_key"] * 3


# ----------------------------------------------------------------------------- dataset ground truth
def _sent(dataset) -> list[dict]:
    return [e for batch in dataset.batches for e in batch]


def test_every_person_who_sent_a_valid_event_is_expected_as_one_profile() -> None:
    dataset = generate(people=60, events=1200, seed=5, now=NOW)
    assert len(dataset.persons) == 60
    assert len(dataset.expected_profiles) == sum(1 for p in dataset.persons if p.identifiers)
    seen = [i for ids in dataset.expected_profiles for i in ids]
    assert len(seen) == len(set(seen)), "no identifier belongs to two people"


def test_the_ground_truth_names_every_identifier_the_valid_events_carry() -> None:
    dataset = generate(people=60, events=1200, seed=5, now=NOW)
    carried: set[str] = set()
    for event in _sent(dataset):
        if "anonymousId" not in event and "userId" not in event:
            continue
        carried.add(f"anonymous_id:{event['anonymousId']}")
        if "userId" in event:
            carried.add(f"user_id:{event['userId']}")
        if email := (event.get("traits") or {}).get("email"):
            carried.add(f"email:{email}")
        if device := event["context"].get("device"):
            carried.add(f"device_id:{device['id']}")
    assert carried == set().union(*dataset.expected_profiles)


def test_identified_people_hold_their_user_id_and_email_and_anonymous_ones_only_devices() -> None:
    dataset = generate(people=60, events=1200, seed=5, now=NOW)
    for person in dataset.persons:
        types = {i.split(":", 1)[0] for i in person.identifiers}
        if person.identified:
            assert f"user_id:user-{person.index:05d}" in person.identifiers
            assert {"user_id", "email", "anonymous_id"} <= types
        else:
            assert types <= {"anonymous_id"} and len(person.identifiers) <= 1
    assert any(p.identified for p in dataset.persons) and any(not p.identified for p in dataset.persons)
    assert any("device_id" in {i.split(":", 1)[0] for i in p.identifiers} for p in dataset.persons)


def test_the_expected_rejections_are_the_events_broken_on_purpose() -> None:
    dataset = generate(people=60, events=1200, seed=5, now=NOW, invalid_ratio=0.05)
    broken = sum(1 for e in _sent(dataset) if "anonymousId" not in e and "userId" not in e)
    assert broken == dataset.invalid > 0
    assert dataset.expected_rejections == {MISSING_IDENTITY: broken}
    assert generate(people=5, events=50, seed=5, now=NOW, invalid_ratio=0.0).expected_rejections == {}


def test_each_valid_event_belongs_to_exactly_one_person() -> None:
    dataset = generate(people=60, events=1200, seed=5, now=NOW, invalid_ratio=0.05)
    owned = [m for p in dataset.persons for m in p.message_ids]
    valid = [e["messageId"] for e in _sent(dataset) if "anonymousId" in e]
    assert sorted(owned) == sorted(valid) and len(valid) == dataset.events - dataset.invalid


def test_each_valid_order_is_counted_for_its_person() -> None:
    dataset = generate(people=60, events=1200, seed=5, now=NOW, invalid_ratio=0.05)
    orders = [e for e in _sent(dataset) if e.get("event") == "Order Completed" and "anonymousId" in e]
    assert sum(len(p.orders) for p in dataset.persons) == len(orders) > 0
    assert dataset.buyers(min_orders=1, after=NOW - timedelta(days=365)) == {
        int(e["userId"].removeprefix("user-")) for e in orders}


@pytest.fixture(scope="module")
def small_dataset() -> Dataset:
    return generate(60, 600, seed=3, now=NOW)


@pytest.mark.parametrize("hour", range(24))
def test_the_people_to_remind_live_where_it_is_daytime_whenever_the_demo_runs(hour: int, small_dataset) -> None:

    from cdp.campaigns.definition import find_campaign, load_campaigns
    from cdp.campaigns.eligibility import Policy, in_quiet_hours
    from cdp_infra.demo import CHECKOUTS, checkout_events
    from cdp_infra.template import REPO_ROOT

    # Given the demo run at any hour of the day (UTC), for the next hour
    now = datetime(2026, 11, 30, hour, 50, tzinfo=UTC)
    quiet = find_campaign(load_campaigns(REPO_ROOT / "campaigns"), "checkout-reminder").quiet_hours
    assert quiet is not None
    # When it builds its checkouts
    events, groups = checkout_events(small_dataset, now)
    # Then each person to remind first says they live in a zone outside the reminder's quiet hours
    zones = [e["traits"]["timezone"] for e in events if e["type"] == "identify"]
    assert len(zones) == groups["remind"] == CHECKOUTS["remind"]
    for later in (now, now + timedelta(hours=1)):
        assert not any(in_quiet_hours(quiet, {"timezone": z}, later, Policy()) for z in zones)
