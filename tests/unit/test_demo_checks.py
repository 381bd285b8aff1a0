"""The demo's consistency checks fail on a wrong result, and the dataset's ground truth is right."""

from __future__ import annotations

import dataclasses
from collections import Counter
from datetime import UTC, datetime

import pytest

from cdp_infra.client import SendResult
from cdp_infra.dataset import MISSING_IDENTITY, generate
from cdp_infra.demo import DemoSummary, evaluate, identity_problems, rejection_reasons

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
        segments_configured=["repeat-buyers"], email_entries=1, emails_sent=1,
        metrics={"EventsAccepted": 8, "EmailsSent": 1},
    )


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
    assert len(checks) == 10 and all(checks.values())


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
    ({"email_entries": 2}, "emails sent = entries of segments with an email channel"),
    ({"segments": {"repeat-buyers": {"error": "QueryFailed: boom"}}},
     "every configured segment ran and none failed"),
    ({"segments": {}}, "every configured segment ran and none failed"),
    ({"segments_skipped": ["repeat-buyers"]}, "every configured segment ran and none failed"),
    ({"metrics": {"EventsAccepted": 7, "EmailsSent": 1}}, "metrics agree: events accepted"),
    ({"metrics": {"EventsAccepted": 8}}, "metrics agree: emails sent"),
    ({"failure_destination": 1}, "nothing sent to the failure destination"),
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
