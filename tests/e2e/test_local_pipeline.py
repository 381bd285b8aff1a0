"""The whole pipeline on the local stack, over real HTTP, as a user runs it."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator

import pytest

from cdp_infra.client import TrackingClient
from cdp_infra.dataset import generate
from cdp_infra.demo import (
    count_lake_events,
    count_profiles,
    count_quarantined,
    email_entries,
    emails_sent,
    send_dataset,
)
from cdp_infra.local import LocalConfig, LocalPipeline

pytestmark = pytest.mark.e2e
WRITE_KEY = "e2e-write-key"
TOKEN = "e2e-admin-token-0123456789"


@pytest.fixture(scope="module")
def pipeline() -> Iterator[LocalPipeline]:
    with LocalPipeline(LocalConfig(write_key=WRITE_KEY, admin_token=TOKEN, run_schedules=False)) as p:
        yield p


@pytest.fixture(scope="module")
def delivered(pipeline: LocalPipeline) -> dict[str, int]:
    """Given a realistic dataset sent through the collector and drained through every consumer."""
    dataset = generate(people=40, events=800, seed=3)
    accepted, rejected = send_dataset(pipeline.url, WRITE_KEY, dataset.batches, workers=2)
    pipeline.wait_drained(timeout_s=300)
    reports = pipeline.run_schedules("SegmentFunction")
    pipeline.wait_drained(timeout_s=120)
    entered = sum(s["entered"] for r in reports for s in r["segments"])
    return {"sent": dataset.events, "invalid": dataset.invalid, "accepted": accepted, "rejected": rejected,
            "entered": entered, "people": dataset.people}


def _get(pipeline: LocalPipeline, path: str, token: str | None = TOKEN) -> tuple[int, dict]:
    client = TrackingClient(pipeline.url, WRITE_KEY)
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    status, _, body = client.request("GET", path, headers=headers)
    client.close()
    return status, json.loads(body or b"{}")


def test_every_event_sent_is_either_accepted_or_rejected_with_a_reason(delivered: dict[str, int]) -> None:
    assert delivered["accepted"] + delivered["rejected"] == delivered["sent"]
    assert delivered["rejected"] == delivered["invalid"]


def test_every_accepted_event_reaches_the_lake_exactly_once(pipeline: LocalPipeline, delivered: dict) -> None:
    assert count_lake_events(pipeline) == delivered["accepted"]


def test_every_rejected_event_is_kept_in_quarantine(pipeline: LocalPipeline, delivered: dict) -> None:
    assert count_quarantined(pipeline) == delivered["rejected"]


def test_identities_resolve_into_at_most_one_profile_per_person(pipeline: LocalPipeline, delivered: dict) -> None:
    live, _merged = count_profiles(pipeline)
    assert 0 < live <= delivered["people"]


def test_segment_entries_each_get_exactly_one_email(pipeline: LocalPipeline, delivered: dict) -> None:
    assert delivered["entered"] > 0
    assert emails_sent(pipeline) == email_entries(pipeline) > 0


def test_running_the_schedule_again_sends_no_second_email(pipeline: LocalPipeline, delivered: dict) -> None:
    before = emails_sent(pipeline)
    pipeline.run_schedules("SegmentFunction")
    pipeline.wait_drained(timeout_s=120)
    assert emails_sent(pipeline) == before


def test_a_profile_is_found_by_email_over_http_with_the_admin_token(pipeline: LocalPipeline,
                                                                   delivered: dict) -> None:
    status, body = _get(pipeline, "/v1/profiles/email:alice.0@example.com")
    if status == 404:  # person 0 may not have signed up with this seed: find one who did
        status, body = _get(pipeline, "/v1/profiles/user_id:user-00001")
    assert status == 200
    assert body["profile_id"] and body["event_count"] > 0 and "identifiers" in body


def test_the_profile_api_refuses_a_missing_token(pipeline: LocalPipeline) -> None:
    status, _ = _get(pipeline, "/v1/profiles/user_id:user-00001", token=None)
    assert status == 401


def test_an_unknown_profile_is_404(pipeline: LocalPipeline) -> None:
    status, _ = _get(pipeline, "/v1/profiles/email:nobody@nowhere.example")
    assert status == 404


def test_the_local_metrics_count_what_the_collector_answered_and_the_lake_and_ses_hold(
    pipeline: LocalPipeline, delivered: dict
) -> None:
    status, body = _get(pipeline, "/v1/metrics")
    assert status == 200
    totals, functions = body["totals"], body["functions"]
    assert totals["EventsAccepted"] == delivered["accepted"]
    assert totals.get("EventsRejected", 0) == delivered["rejected"]
    assert totals["EventsArchived"] == count_lake_events(pipeline)
    assert totals.get("EmailsSent", 0) == emails_sent(pipeline)
    assert totals["ProfilesCreated"] - totals.get("ProfilesMerged", 0) == count_profiles(pipeline)[0]
    assert "EventsAccepted" in functions["CollectFunction"] and "EventsUnified" in functions["UnifyFunction"]
    assert body["namespace"]


def test_the_local_metrics_route_refuses_a_missing_token(pipeline: LocalPipeline) -> None:
    status, body = _get(pipeline, "/v1/metrics", token=None)
    assert status == 401 and body["error"] == "unauthorized"


def test_malformed_json_gets_400_with_a_reason_and_the_server_keeps_serving(pipeline: LocalPipeline) -> None:
    client = TrackingClient(pipeline.url, WRITE_KEY)
    auth = "Basic " + base64.b64encode(f"{WRITE_KEY}:".encode()).decode()
    status, _, body = client.request("POST", "/v1/track", b"{not json", {"Authorization": auth,
                                                                        "Content-Type": "application/json"})
    assert status == 400 and json.loads(body)
    ok = client.batch([{"type": "track", "event": "After", "anonymousId": "a-1"}])
    client.close()
    assert ok.status == 200 and ok.accepted == 1


def test_an_unknown_write_key_gets_401(pipeline: LocalPipeline) -> None:
    client = TrackingClient(pipeline.url, "not-a-key")
    result = client.batch([{"type": "track", "event": "X", "anonymousId": "a"}])
    client.close()
    assert result.status == 401


def test_an_event_without_any_id_is_rejected_with_a_reason(pipeline: LocalPipeline) -> None:
    client = TrackingClient(pipeline.url, WRITE_KEY)
    result = client.batch([{"type": "track", "event": "X"}])
    client.close()
    assert result.status == 400 and result.rejected == 1
    assert "reason" in json.dumps(result.body) or "code" in json.dumps(result.body)


def test_an_unknown_route_is_refused_like_api_gateway(pipeline: LocalPipeline) -> None:
    status, _ = _get(pipeline, "/v1/nowhere")
    assert status == 403


def test_explain_shows_the_evidence_that_linked_an_identifier(pipeline: LocalPipeline, delivered: dict) -> None:
    status, body = _get(pipeline, "/v1/profiles/user_id:user-00001/explain")
    if status == 404:
        status, body = _get(pipeline, "/v1/profiles/user_id:user-00002/explain")
    assert status == 200
    assert "messageId" in json.dumps(body) or "message_id" in json.dumps(body)


def test_a_wrong_merge_is_undone_by_detaching_and_both_sides_are_rebuilt_from_the_lake(
        pipeline: LocalPipeline, delivered: dict, capsys: pytest.CaptureFixture[str]) -> None:
    from cdp_infra.cli import main

    # Given two devices that a shared (wrong) email merged into one profile
    client = TrackingClient(pipeline.url, WRITE_KEY)
    result = client.batch([
        {"type": "identify", "anonymousId": "kiosk-1", "traits": {"email": "front-desk@example.com"}},
        {"type": "track", "anonymousId": "kiosk-1", "event": "Viewed"},
        {"type": "identify", "anonymousId": "kiosk-2", "traits": {"email": "front-desk@example.com"}},
        {"type": "track", "anonymousId": "kiosk-2", "event": "Viewed"},
        {"type": "track", "anonymousId": "kiosk-2", "event": "Viewed"},
    ])
    client.close()
    assert result.accepted == 5
    pipeline.wait_drained(timeout_s=120)
    _, merged = _get(pipeline, "/v1/profiles/anonymous_id:kiosk-2")
    _, other = _get(pipeline, "/v1/profiles/anonymous_id:kiosk-1")
    assert merged["profile_id"] == other["profile_id"] and merged["event_count"] == 5
    # When the second device is detached with the CLI
    assert main(["profile", "unmerge", "anonymous_id:kiosk-2", "--reason", "shared email"]) == 0
    capsys.readouterr()
    # Then it has a profile of its own, rebuilt from its archived events, and the other lost them
    _, detached = _get(pipeline, "/v1/profiles/anonymous_id:kiosk-2")
    _, rest = _get(pipeline, "/v1/profiles/anonymous_id:kiosk-1")
    assert detached["profile_id"] != rest["profile_id"]
    assert detached["event_count"] + rest["event_count"] == 5
    assert detached["event_count"] >= 2


def test_a_realtime_segment_entry_reaches_activation_without_a_scheduled_run(
        pipeline: LocalPipeline, delivered: dict) -> None:
    from cdp.adapters.membership import DynamoMembershipStore

    before = emails_sent(pipeline)
    client = TrackingClient(pipeline.url, WRITE_KEY)
    result = client.batch([
        {"type": "identify", "userId": "rt-1", "traits": {"email": "rt@example.com", "plan": "pro"}},
        {"type": "track", "userId": "rt-1", "event": "Order Completed", "properties": {"revenue": 10}},
    ])
    client.close()
    assert result.accepted == 2
    pipeline.wait_drained(timeout_s=120)
    _, profile = _get(pipeline, "/v1/profiles/user_id:rt-1")
    members = DynamoMembershipStore(pipeline.settings).members("pro-plan-engaged")
    assert profile["profile_id"] in members
    assert emails_sent(pipeline) == before + 1


def test_unmerging_an_unknown_identifier_fails_with_a_reason(pipeline: LocalPipeline,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    from cdp_infra.cli import main

    assert main(["profile", "unmerge", "email:nobody@nowhere.example"]) == 1
    assert "not_found" in capsys.readouterr().err
