"""Computed traits, lifecycle and consent are typed states stored in the JSON they always had."""

from __future__ import annotations

import json

from cdp.identity.computed import (
    ComputedTraits,
    Consent,
    ConsentStatement,
    Lifecycle,
    StageChange,
    apply_consent,
    merge_consent,
    merge_lifecycle,
    record_stage,
)
from cdp.identity.config import LifecycleConfig
from cdp.identity.profile import Profile

# Sub-states as DynamoDB items written before they were typed hold them.
STORED_COMPUTED = {"values": {"orders": 3, "last_plan": "pro"}, "stamps": {"last_plan": "2024-01-02T00:00:00.000Z|m9"}}
STORED_LIFECYCLE = {
    "orders": 2,
    "intent": 1,
    "last_order_at": "2024-01-02T00:00:00.000Z",
    "stage": "new_customer",
    "history": [{"stage": "lead", "at": "2024-01-01T00:00:00.000Z"},
                {"stage": "new_customer", "at": "2024-01-02T00:00:00.000Z"}],
}
STORED_CONSENT = {"email": {"granted": False, "stamp": "2024-01-03T00:00:00.000Z|m7"},
                  "analytics": {"granted": True, "stamp": "2024-01-01T00:00:00.000Z|m1"}}


def test_stored_sub_states_read_as_typed_values() -> None:
    lifecycle = Lifecycle.from_dict(STORED_LIFECYCLE)
    consent = Consent.from_dict(STORED_CONSENT)

    assert lifecycle.stage == "new_customer" and lifecycle.orders == 2
    assert lifecycle.history[-1] == StageChange("new_customer", "2024-01-02T00:00:00.000Z")
    assert consent.granted("email") is False and consent.granted("sms") is None
    assert ComputedTraits.from_dict(STORED_COMPUTED).values["last_plan"] == "pro"


def test_stored_sub_states_are_written_back_as_the_same_json() -> None:
    for kind, stored in ((ComputedTraits, STORED_COMPUTED), (Lifecycle, STORED_LIFECYCLE), (Consent, STORED_CONSENT)):
        assert json.dumps(kind.from_dict(stored).to_dict(), sort_keys=True) == json.dumps(stored, sort_keys=True)


def test_an_empty_or_missing_attribute_reads_as_the_empty_state() -> None:
    assert (ComputedTraits.from_dict(None), Lifecycle.from_dict({}), Consent.from_dict(None)) == (
        ComputedTraits(), Lifecycle(), Consent())
    assert (ComputedTraits().to_dict(), Lifecycle().to_dict(), Consent().to_dict()) == ({}, {}, {})


def test_applying_consent_returns_a_new_state_and_leaves_the_old_one_as_it_was() -> None:
    before = Consent.from_dict(STORED_CONSENT)
    event = {"context": {"consent": {"categoryPreferences": {"email": True}}}}

    after = apply_consent(before, event, "2024-01-04T00:00:00.000Z|m8")

    assert after.granted("email") is True and before.granted("email") is False


def test_a_merge_keeps_the_most_restrictive_consent_per_purpose() -> None:
    ours = Consent({"email": ConsentStatement(True, "2024-01-05|a")})
    theirs = Consent({"email": ConsentStatement(False, "2024-01-01|b")})

    assert merge_consent(ours, theirs).granted("email") is False


def test_a_lifecycle_merge_adds_counters_and_keeps_the_newest_history() -> None:
    config = LifecycleConfig(history_limit=2)
    ours = Lifecycle(orders=1, last_order_at="2024-01-01", history=(StageChange("lead", "2024-01-01"),))
    theirs = Lifecycle(orders=2, intent=1, last_order_at="2024-02-01",
                       history=(StageChange("prospect", "2024-01-10"), StageChange("new_customer", "2024-02-01")))

    merged = merge_lifecycle(ours, theirs, config)

    assert (merged.orders, merged.intent, merged.last_order_at) == (3, 1, "2024-02-01")
    assert [h.stage for h in merged.history] == ["prospect", "new_customer"]


def test_recording_the_same_stage_again_changes_nothing() -> None:
    state = Lifecycle(stage="lead", history=(StageChange("lead", "t1"),))

    assert record_stage(state, "lead", "t2", LifecycleConfig()) is state
    assert record_stage(state, "prospect", "t2", LifecycleConfig()).history[-1] == StageChange("prospect", "t2")


def test_the_profile_view_shows_the_sub_states_as_plain_json() -> None:
    profile = Profile("p1", computed=ComputedTraits.from_dict(STORED_COMPUTED),
                      lifecycle=Lifecycle.from_dict(STORED_LIFECYCLE), consent=Consent.from_dict(STORED_CONSENT))

    view = profile.view()

    assert view["computed_traits"] == {"orders": 3, "last_plan": "pro"}
    assert view["lifecycle_stage"] == "new_customer"
    assert view["lifecycle_history"] == STORED_LIFECYCLE["history"]
    assert view["consent"] == {"analytics": True, "email": False}
