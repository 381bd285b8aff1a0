"""Computed traits, consent and lifecycle stages on profiles built by resolve_batch."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from cdp.errors import InvalidConfig
from cdp.identity import IdentityConfig, InMemoryIdentityStore, lookup_profile, resolve_batch

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
CONFIG = IdentityConfig.from_dict(
    {
        "computed_traits": [
            {"name": "orders", "kind": "count", "event": "Order Completed"},
            {"name": "revenue", "kind": "sum", "event": "Order Completed", "property": "revenue"},
            {"name": "first_order_at", "kind": "first_time", "event": "Order Completed"},
            {"name": "last_order_at", "kind": "last_time", "event": "Order Completed"},
            {"name": "last_plan", "kind": "last_value", "event": "Plan Chosen", "property": "plan"},
        ]
    }
)


def ev(
    message_id: str, when: str = "2026-11-20T10:00", type_: str = "track", **fields: Any
) -> dict[str, Any]:
    return {"messageId": message_id, "type": type_, "timestamp": f"{when}:00.000Z", **fields}


def order(message_id: str, when: str, revenue: Any = 10, **fields: Any) -> dict[str, Any]:
    return ev(message_id, when, event="Order Completed", properties={"revenue": revenue}, **fields)


def view(
    events: list[dict[str, Any]],
    identifier: str = "user_id:1",
    config: IdentityConfig = CONFIG,
    now: datetime = NOW,
) -> dict[str, Any]:
    store = InMemoryIdentityStore()
    resolve_batch(events, store, config=config, now=now)
    result = lookup_profile(identifier, store, config=config)
    assert result is not None
    return result


# ------------------------------------------------------------------ computed traits
def test_count_counts_matching_events_only() -> None:
    computed = view([order("o1", "2026-11-01T10:00", userId="1"), ev("t1", event="Other", userId="1")])
    assert computed["computed_traits"]["orders"] == 1


def test_sum_adds_a_numeric_property_and_ignores_non_numbers() -> None:
    events = [
        order("o1", "2026-11-01T10:00", 12.5, userId="1"),
        order("o2", "2026-11-02T10:00", "7.5", userId="1"),
        order("o3", "2026-11-03T10:00", "n/a", userId="1"),
    ]
    assert view(events)["computed_traits"]["revenue"] == 20


def test_first_and_last_time_of_an_event_are_kept() -> None:
    events = [order("o2", "2026-11-05T10:00", userId="1"), order("o1", "2026-11-01T10:00", userId="1")]
    computed = view(events)["computed_traits"]
    assert (computed["first_order_at"], computed["last_order_at"]) == (
        "2026-11-01T10:00:00.000Z",
        "2026-11-05T10:00:00.000Z",
    )


def test_last_value_follows_event_time() -> None:
    events = [
        ev("p2", "2026-11-05T10:00", event="Plan Chosen", properties={"plan": "pro"}, userId="1"),
        ev("p1", "2026-11-01T10:00", event="Plan Chosen", properties={"plan": "free"}, userId="1"),
    ]
    assert view(events)["computed_traits"]["last_plan"] == "pro"


def test_computed_traits_add_up_when_profiles_merge() -> None:
    store = InMemoryIdentityStore()
    resolve_batch([order("o1", "2026-11-01T10:00", 5, anonymousId="a")], store, config=CONFIG, now=NOW)
    resolve_batch([order("o2", "2026-11-02T10:00", 7, anonymousId="b")], store, config=CONFIG, now=NOW)
    resolve_batch(
        [
            ev("m1", "2026-11-03T10:00", anonymousId="a", userId="1"),
            ev("m2", "2026-11-03T10:01", anonymousId="b", userId="1"),
        ],
        store,
        config=CONFIG,
        now=NOW,
    )
    computed = lookup_profile("user_id:1", store, config=CONFIG)["computed_traits"]  # type: ignore[index]
    assert (computed["orders"], computed["revenue"]) == (2, 12)


def test_computed_trait_of_unknown_kind_is_rejected() -> None:
    with pytest.raises(InvalidConfig):
        IdentityConfig.from_dict({"computed_traits": [{"name": "x", "kind": "median", "event": "e"}]})


def test_sum_without_a_property_is_rejected() -> None:
    with pytest.raises(InvalidConfig):
        IdentityConfig.from_dict({"computed_traits": [{"name": "x", "kind": "sum", "event": "e"}]})


# ------------------------------------------------------------------ consent
def consent(preferences: dict[str, bool]) -> dict[str, Any]:
    return {"consent": {"categoryPreferences": preferences}}


def test_the_latest_received_consent_statement_of_one_person_wins() -> None:
    events = [
        ev("c2", userId="1", receivedAt="2026-11-02T10:00:00.000Z", context=consent({"Email": True})),
        ev("c1", userId="1", receivedAt="2026-11-01T10:00:00.000Z", context=consent({"Email": False})),
    ]
    assert view(events)["consent"] == {"email": True}


def test_a_forged_far_future_timestamp_cannot_pin_a_consent_against_a_later_opt_out() -> None:
    store = InMemoryIdentityStore()
    forged = ev("c1", "9999-01-01T00:00", "identify", userId="1", receivedAt="2026-11-19T10:00:00.000Z",
                context=consent({"email": True}))
    opt_out = ev("c2", "2026-11-20T10:00", userId="1", receivedAt="2026-11-20T10:00:00.000Z",
                 context=consent({"email": False}))
    resolve_batch([forged], store, config=CONFIG, now=NOW)
    resolve_batch([opt_out], store, config=CONFIG, now=NOW)
    result = lookup_profile("user_id:1", store, config=CONFIG)
    assert result is not None and result["consent"] == {"email": False}


def test_rudderstack_consent_ids_are_read() -> None:
    context = {"consentManagement": {"allowedConsentIds": ["analytics"], "deniedConsentIds": ["email"]}}
    assert view([ev("c1", userId="1", context=context)])["consent"] == {"analytics": True, "email": False}


def test_merged_consent_is_the_most_restrictive_per_purpose() -> None:
    store = InMemoryIdentityStore()
    resolve_batch(
        [ev("c1", "2026-11-01T10:00", anonymousId="a", context=consent({"email": False, "ads": True}))],
        store,
        config=CONFIG,
        now=NOW,
    )
    resolve_batch(
        [ev("c2", "2026-11-02T10:00", anonymousId="b", context=consent({"email": True, "ads": True}))],
        store,
        config=CONFIG,
        now=NOW,
    )
    resolve_batch(
        [
            ev("m1", "2026-11-03T10:00", anonymousId="a", userId="1"),
            ev("m2", "2026-11-03T10:01", anonymousId="b", userId="1"),
        ],
        store,
        config=CONFIG,
        now=NOW,
    )
    assert lookup_profile("user_id:1", store)["consent"] == {"ads": True, "email": False}  # type: ignore[index]


# ------------------------------------------------------------------ lifecycle
def stages(result: dict[str, Any]) -> list[str]:
    return [h["stage"] for h in result["lifecycle_history"]]


def test_first_anonymous_event_makes_a_new_visitor() -> None:
    assert view([ev("v1", anonymousId="a")], "anonymous_id:a")["lifecycle_stage"] == "new_visitor"


def test_visitor_seen_again_later_is_returning() -> None:
    events = [ev("v1", "2026-11-20T08:00", anonymousId="a"), ev("v2", "2026-11-20T09:00", anonymousId="a")]
    assert view(events, "anonymous_id:a")["lifecycle_stage"] == "returning_visitor"


def test_identified_visitor_is_a_lead() -> None:
    events = [
        ev("v1", "2026-11-20T08:00", anonymousId="a"),
        ev("i1", "2026-11-20T08:05", type_="identify", anonymousId="a", userId="1"),
    ]
    assert stages(view(events)) == ["new_visitor", "lead"]


def test_lead_showing_intent_is_a_prospect() -> None:
    events = [
        ev("i1", "2026-11-20T08:00", type_="identify", userId="1"),
        ev("c1", "2026-11-20T08:05", event="Product Added", userId="1"),
    ]
    assert view(events)["lifecycle_stage"] == "prospect"


def test_first_order_makes_a_new_customer_and_the_second_an_engaged_one() -> None:
    events = [order("o1", "2026-11-19T10:00", userId="1"), order("o2", "2026-11-20T10:00", userId="1")]
    assert stages(view(events)) == ["new_customer", "engaged_customer"]


def test_customer_without_an_order_for_the_churn_period_is_churned() -> None:
    events = [order("o1", "2026-06-01T10:00", userId="1"), ev("p1", "2026-11-20T10:00", userId="1")]
    assert view(events)["lifecycle_stage"] == "churned"


def test_each_transition_is_kept_with_its_event_time() -> None:
    events = [
        ev("v1", "2026-11-20T08:00", anonymousId="a"),
        ev("i1", "2026-11-20T08:05", type_="identify", anonymousId="a", userId="1"),
        order("o1", "2026-11-20T09:00", anonymousId="a"),
    ]
    assert view(events)["lifecycle_history"] == [
        {"stage": "new_visitor", "at": "2026-11-20T08:00:00.000Z"},
        {"stage": "lead", "at": "2026-11-20T08:05:00.000Z"},
        {"stage": "new_customer", "at": "2026-11-20T09:00:00.000Z"},
    ]


def test_lifecycle_thresholds_come_from_configuration() -> None:
    config = IdentityConfig.from_dict({"lifecycle": {"engaged_min_orders": 3, "purchase_events": ["Paid"]}})
    events = [ev(f"o{i}", f"2026-11-20T0{i}:00", event="Paid", userId="1") for i in range(1, 3)]
    assert view(events, config=config)["lifecycle_stage"] == "new_customer"


def test_unknown_lifecycle_setting_is_rejected() -> None:
    with pytest.raises(InvalidConfig):
        IdentityConfig.from_dict({"lifecycle": {"churn_days": 30}})


def test_scheduled_refresh_churns_a_customer_who_stopped_ordering() -> None:
    from cdp.identity import refresh_lifecycle_stages

    store = InMemoryIdentityStore()
    resolve_batch([order("o1", "2026-11-01T10:00", userId="1")], store, config=CONFIG, now=NOW)
    later = datetime(2027, 3, 1, tzinfo=UTC)
    assert refresh_lifecycle_stages(store, config=CONFIG, now=later) == 1
    assert lookup_profile("user_id:1", store)["lifecycle_history"][-1] == {  # type: ignore[index]
        "stage": "churned",
        "at": "2027-03-01T00:00:00.000Z",
    }


def test_scheduled_refresh_leaves_unchanged_profiles_alone() -> None:
    from cdp.identity import refresh_lifecycle_stages

    store = InMemoryIdentityStore()
    resolve_batch([order("o1", "2026-11-01T10:00", userId="1")], store, config=CONFIG, now=NOW)
    assert refresh_lifecycle_stages(store, config=CONFIG, now=NOW) == 0
