"""The whole pipeline on the local stack, over real HTTP, as a user runs it."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from cdp.identity.identifiers import by_type
from cdp_infra.client import TrackingClient
from cdp_infra.dataset import Dataset, Person, generate
from cdp_infra.demo import (
    campaign_emails_sent,
    count_lake_events,
    count_profiles,
    count_quarantined,
    email_entries,
    emails_sent,
    expected_repeat_buyers,
    identity_problems,
    live_profiles,
    membership_problems,
    owners_of,
    segment_members,
    send_batches,
)
from cdp_infra.local import LocalConfig, LocalPipeline

pytestmark = pytest.mark.e2e
WRITE_KEY = "e2e-write-key"
TOKEN = "e2e-admin-token-0123456789"


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalPipeline]:
    # As `cdp demo` and `cdp dev` run it: the lake on local disk (test_handlers keeps it on S3).
    config = LocalConfig(write_key=WRITE_KEY, admin_token=TOKEN, run_schedules=False,
                         lake_dir=tmp_path_factory.mktemp("lake"))
    with LocalPipeline(config) as p:
        yield p


@pytest.fixture(scope="module")
def dataset() -> Dataset:
    return generate(people=40, events=800, seed=3)


@pytest.fixture(scope="module")
def delivered(pipeline: LocalPipeline, dataset: Dataset) -> dict[str, Any]:
    """Given a realistic dataset sent through the collector and drained through every consumer."""
    tally = send_batches(pipeline.url, WRITE_KEY, dataset.batches, workers=2)
    pipeline.wait_drained(timeout_s=300)
    ran_from = datetime.now(UTC)
    reports = pipeline.run_schedules("SegmentFunction")
    ran_until = datetime.now(UTC)
    pipeline.wait_drained(timeout_s=120)
    entered = sum(s["entered"] for r in reports for s in r["segments"])
    return {"sent": dataset.events, "invalid": dataset.invalid, "accepted": tally.accepted,
            "rejected": tally.rejected, "reasons": dict(tally.reasons), "entered": entered,
            "people": dataset.people, "ran_from": ran_from, "ran_until": ran_until}


def _identified(dataset: Dataset, *, devices: int = 1) -> Person:
    """The first person who signed up (on ``devices`` devices or more), as the generator says."""
    return next(p for p in dataset.persons
                if p.identified and sum(i.startswith("anonymous_id:") for i in p.identifiers) >= devices)


def _email(person: Person) -> str:
    return next(i for i in person.identifiers if i.startswith("email:"))


def _get(pipeline: LocalPipeline, path: str, token: str | None = TOKEN) -> tuple[int, dict]:
    client = TrackingClient(pipeline.url, WRITE_KEY)
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    status, _, body = client.request("GET", path, headers=headers)
    client.close()
    return status, json.loads(body or b"{}")


def test_every_event_sent_is_either_accepted_or_rejected_with_a_reason(delivered: dict[str, Any],
                                                                       dataset: Dataset) -> None:
    assert delivered["accepted"] + delivered["rejected"] == delivered["sent"]
    assert delivered["rejected"] == delivered["invalid"] > 0
    assert delivered["reasons"] == dataset.expected_rejections == {"missing_identity": delivered["invalid"]}


def test_every_accepted_event_reaches_the_lake_exactly_once(pipeline: LocalPipeline, delivered: dict) -> None:
    assert count_lake_events(pipeline) == delivered["accepted"]


def test_every_rejected_event_is_kept_in_quarantine(pipeline: LocalPipeline, delivered: dict) -> None:
    assert count_quarantined(pipeline) == delivered["rejected"]


def test_identities_resolve_into_exactly_one_profile_per_person(pipeline: LocalPipeline, delivered: dict,
                                                                dataset: Dataset) -> None:
    # Other tests on this stack add profiles of their own: keep those holding the dataset's identifiers.
    known = set().union(*dataset.expected_profiles)
    profiles = {pid: ids for pid, ids in live_profiles(pipeline).items() if ids & known}
    assert identity_problems(dataset.expected_profiles, profiles) == []
    assert sorted(map(sorted, profiles.values())) == sorted(map(sorted, dataset.expected_profiles))
    assert len(profiles) == len(dataset.expected_profiles) == sum(1 for p in dataset.persons if p.identifiers)


def test_the_repeat_buyers_segment_holds_the_people_with_two_recent_orders(pipeline: LocalPipeline,
                                                                           delivered: dict, dataset: Dataset) -> None:
    must, may = expected_repeat_buyers(dataset, ran_from=delivered["ran_from"], ran_until=delivered["ran_until"])
    assert must, "the dataset should have repeat buyers"
    owners = owners_of(dataset.expected_profiles, live_profiles(pipeline))
    members = segment_members(pipeline, "repeat-buyers")
    assert membership_problems("repeat-buyers", members, owners, must=must, may=may) == []


def test_segment_entries_each_get_exactly_one_email(pipeline: LocalPipeline, delivered: dict) -> None:
    assert delivered["entered"] > 0
    assert emails_sent(pipeline) - campaign_emails_sent(pipeline) == email_entries(pipeline) > 0


def test_running_the_schedule_again_sends_no_second_email(pipeline: LocalPipeline, delivered: dict) -> None:
    before = emails_sent(pipeline)
    pipeline.run_schedules("SegmentFunction")
    pipeline.wait_drained(timeout_s=120)
    assert emails_sent(pipeline) == before


def test_a_profile_is_found_by_email_over_http_with_the_admin_token(pipeline: LocalPipeline,
                                                                   delivered: dict, dataset: Dataset) -> None:
    person = _identified(dataset, devices=2)
    status, body = _get(pipeline, f"/v1/profiles/{_email(person)}")
    assert status == 200
    assert body["identifiers"] == by_type(person.identifiers)
    assert body["event_count"] == len(person.message_ids)
    holder = [pid for pid, ids in live_profiles(pipeline).items() if _email(person) in ids]
    assert holder == [body["profile_id"]]


def test_the_profile_api_refuses_a_missing_token(pipeline: LocalPipeline) -> None:
    status, body = _get(pipeline, "/v1/profiles/user_id:user-00001", token=None)
    assert status == 401
    assert "profile_id" not in body and body["success"] is False


def test_an_unknown_profile_is_404(pipeline: LocalPipeline) -> None:
    status, body = _get(pipeline, "/v1/profiles/email:nobody@nowhere.example")
    assert status == 404
    assert body["reason"] == "profile_not_found"


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
    from cdp_infra.template import load_template

    assert body["namespace"] == load_template()["Mappings"]["Observability"]["Metrics"]["Namespace"]


def test_the_local_metrics_route_refuses_a_missing_token(pipeline: LocalPipeline) -> None:
    status, body = _get(pipeline, "/v1/metrics", token=None)
    assert status == 401 and body["error"] == "unauthorized"


def test_an_operator_token_opens_the_routes_of_its_scopes_only_over_http(pipeline: LocalPipeline) -> None:
    token = pipeline.add_operator("e2e-support", ["profiles:read"])

    assert _get(pipeline, "/v1/profiles/email:nobody@nowhere.example", token=token)[0] == 404  # authorised
    assert _get(pipeline, "/v1/profiles/email:nobody@nowhere.example/timeline", token=token)[0] == 404
    status, body = _get(pipeline, "/v1/metrics", token=token)
    assert (status, body["reason"], body["scope"]) == (403, "scope_required", "metrics:read")
    assert _get(pipeline, "/v1/privacy/requests/pr_0", token=token)[0] == 403
    assert _get(pipeline, "/v1/profiles/email:nobody@nowhere.example", token=token[:-2] + "zz")[0] == 401


def test_cdp_profile_view_with_an_operator_token_prints_a_link_signed_for_that_operator(
        pipeline: LocalPipeline, capsys: pytest.CaptureFixture[str]) -> None:
    from urllib.parse import parse_qs, urlsplit

    from cdp.operators import operator_id_of
    from cdp_infra import cli

    token = pipeline.add_operator("e2e-viewer", ["profiles:read"])
    assert cli.main(["profile", "view", "email:nobody@nowhere.example", "--url", pipeline.url,
                     "--token", token, "--minutes", "5"]) == 0
    link = capsys.readouterr().out.strip()

    assert token not in link and parse_qs(urlsplit(link).query)["operator"] == [operator_id_of(token)]
    status, body = _get(pipeline, link.removeprefix(pipeline.url), token=None)
    assert (status, body["reason"]) == (404, "profile_not_found")  # the link was accepted


def test_a_revoked_operator_is_refused_by_the_local_routes_at_once(pipeline: LocalPipeline) -> None:
    from cdp.adapters.operators import DynamoOperatorStore
    from cdp.operators import operator_id_of

    token = pipeline.add_operator("e2e-metrics", ["metrics:read"])
    assert _get(pipeline, "/v1/metrics", token=token)[0] == 200
    DynamoOperatorStore(pipeline.settings).revoke(str(operator_id_of(token)))
    assert _get(pipeline, "/v1/metrics", token=token)[0] == 401


def test_malformed_json_gets_400_with_a_reason_and_the_server_keeps_serving(pipeline: LocalPipeline) -> None:
    client = TrackingClient(pipeline.url, WRITE_KEY)
    auth = "Basic " + base64.b64encode(f"{WRITE_KEY}:".encode()).decode()
    status, _, body = client.request("POST", "/v1/track", b"{not json", {"Authorization": auth,
                                                                        "Content-Type": "application/json"})
    assert status == 400
    assert json.loads(body)["reason"] == "invalid_json"
    ok = client.batch([{"type": "track", "event": "After", "anonymousId": "a-1"}])
    client.close()
    assert ok.status == 200 and ok.accepted == 1


def test_an_unknown_write_key_gets_401(pipeline: LocalPipeline) -> None:
    client = TrackingClient(pipeline.url, "not-a-key")
    result = client.batch([{"type": "track", "event": "X", "anonymousId": "a"}])
    client.close()
    assert result.status == 401
    assert result.accepted == 0 and result.body["reason"] == "unknown_write_key"


def test_an_event_without_any_id_is_rejected_with_a_reason(pipeline: LocalPipeline) -> None:
    client = TrackingClient(pipeline.url, WRITE_KEY)
    result = client.batch([{"type": "track", "event": "X"}])
    client.close()
    assert result.status == 400 and result.rejected == 1
    assert result.body["reason"] == "all_events_rejected"
    assert result.body["rejected"] == [{"index": 0, "reason": "missing_identity"}]


def test_an_unknown_route_is_refused_like_api_gateway(pipeline: LocalPipeline) -> None:
    status, body = _get(pipeline, "/v1/nowhere")
    assert status == 403
    assert "profile_id" not in body


def test_explain_shows_the_evidence_that_linked_an_identifier(pipeline: LocalPipeline, delivered: dict,
                                                              dataset: Dataset) -> None:
    person = _identified(dataset, devices=2)
    user_id = next(i for i in person.identifiers if i.startswith("user_id:"))
    status, body = _get(pipeline, f"/v1/profiles/{user_id}/explain")
    assert status == 200
    assert body["identifiers"] == by_type(person.identifiers)
    assert set(body["why"]) == person.identifiers
    for identifier, evidence in body["why"].items():
        # Each identifier was linked by one of this person's own events, and by nothing else.
        assert evidence, identifier
        assert {e["message_id"] for e in evidence} <= person.message_ids, identifier


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
    # An event goes with its highest-priority identifier: kiosk-2's identify carries the email, so it
    # stays with kiosk-1; only kiosk-2's two tracks are rebuilt onto the detached profile.
    assert (detached["event_count"], rest["event_count"]) == (2, 3)
    assert detached["identifiers"] == {"anonymous_id": ["kiosk-2"]}
    assert rest["identifiers"] == {"anonymous_id": ["kiosk-1"], "email": ["front-desk@example.com"]}


def test_a_realtime_segment_entry_reaches_activation_without_a_scheduled_run(
        pipeline: LocalPipeline, delivered: dict) -> None:
    from cdp.adapters.membership import DynamoMembershipStore

    before, campaigns_before = emails_sent(pipeline), campaign_emails_sent(pipeline)
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
    # One per-segment email (pro-plan-engaged), one campaign email (a new customer: new-customer-welcome).
    assert (emails_sent(pipeline) - before, campaign_emails_sent(pipeline) - campaigns_before) == (2, 1)


def test_unmerging_an_unknown_identifier_fails_with_a_reason(pipeline: LocalPipeline,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    from cdp_infra.cli import main

    assert main(["profile", "unmerge", "email:nobody@nowhere.example"]) == 1
    error = json.loads(capsys.readouterr().err)
    assert error["error"] == "not_found" and error["identifier"] == "email:nobody@nowhere.example"


def test_the_customer_view_of_a_repeat_buyer_lists_their_events_segment_and_email(
        pipeline: LocalPipeline, delivered: dict, dataset: Dataset) -> None:
    members = segment_members(pipeline, "repeat-buyers")
    profiles = live_profiles(pipeline)
    person, profile_id = next((p, pid) for p in dataset.persons for pid in members
                              if p.identifiers and profiles.get(pid) == p.identifiers)
    identifier = sorted(person.identifiers)[0]

    status, view = _get(pipeline, f"/v1/profiles/{identifier}/timeline?limit=500")

    assert status == 200 and view["profile_id"] == profile_id
    assert {e["messageId"] for e in view["events"]} == person.message_ids
    times = [e["timestamp"] for e in view["events"]]
    assert times == sorted(times)
    assert "repeat-buyers" in {s["segment"] for s in view["segments"]}
    assert [(m["channel"], m["segment"]) for m in view["messages"] if m["segment"] == "repeat-buyers"] == [
        ("email", "repeat-buyers")]


def test_an_access_request_archive_of_a_repeat_buyer_downloads_from_its_link(
        pipeline: LocalPipeline, delivered: dict, dataset: Dataset, capsys: pytest.CaptureFixture[str]) -> None:
    import io
    import urllib.request
    import zipfile

    from cdp_infra.cli import main

    members = segment_members(pipeline, "repeat-buyers")
    profiles = live_profiles(pipeline)
    person, profile_id = next((p, pid) for p in dataset.persons for pid in members
                              if p.identifiers and profiles.get(pid) == p.identifiers)
    capsys.readouterr()
    api = ["--url", pipeline.url, "--token", TOKEN]
    # When an export request for them is made with the CLI and the privacy function runs it
    assert main(["privacy", "request", "export", sorted(person.identifiers)[0], *api, "--json"]) == 0
    request_id = json.loads(capsys.readouterr().out)["request_id"]
    pipeline.wait_drained(timeout_s=120)
    # Then its status is done and shows the archive's link
    assert main(["privacy", "status", request_id, *api]) == 0
    assert "/exports/" in capsys.readouterr().out
    assert main(["privacy", "status", request_id, *api, "--json"]) == 0
    view = json.loads(capsys.readouterr().out)
    assert view["status"] == "done", view
    result = view["result"]
    # And the link downloads the archive over HTTP: every event of theirs, their segment and email
    with urllib.request.urlopen(result["url"], timeout=30) as response:  # noqa: S310 - the local stack
        body = response.read()
    with zipfile.ZipFile(io.BytesIO(body)) as archive:
        document = json.loads(archive.read("profile.json"))
        events = [json.loads(line) for line in archive.read("events.jsonl").splitlines()]
    assert result["key"] == f"exports/{request_id}.zip" and result["profile_id"] == profile_id
    assert {e["messageId"] for e in events} == person.message_ids
    assert document["profile"]["profile_id"] == profile_id and document["events"]["complete"] is True
    assert "repeat-buyers" in {s["segment"] for s in document["segments"]}
    assert ("email", "repeat-buyers") in {(m["channel"], m["segment"]) for m in document["messages"]}
    assert set(document["provenance"]["identifiers"]) == {i for i in person.identifiers}


def test_consent_sent_as_an_event_shows_in_the_profile_api_and_keeps_the_person_from_email(
        pipeline: LocalPipeline, delivered: dict) -> None:
    # Two requests: statements are ordered by when they were received (one request, one time).
    client = TrackingClient(pipeline.url, WRITE_KEY)
    first = client.batch([{"type": "identify", "userId": "consent-1", "traits": {"email": "c1@example.com"},
                           "context": {"consent": {"categoryPreferences": {"Analytics": True, "Email": True}}}}])
    second = client.batch([{"type": "track", "userId": "consent-1", "event": "Consent Updated",
                            "properties": {"categoryPreferences": {"email": False}}}])
    client.close()
    assert first.accepted == second.accepted == 1
    pipeline.wait_drained(timeout_s=120)
    status, profile = _get(pipeline, "/v1/profiles/user_id:consent-1")
    assert status == 200 and profile["consent"] == {"analytics": True, "email": False}
    assert profile["consent_statements"]["email"]["granted"] is False
    assert profile["consent_statements"]["email"]["received_at"]
    assert profile["activation"] == {"ads": {"allowed": False, "reason": "opt_in_required"},
                                     "email": {"allowed": False, "reason": "denied"}}


def test_the_lake_is_on_local_disk_where_the_query_engine_reads_it(pipeline: LocalPipeline,
                                                                       delivered: dict) -> None:
    from pathlib import Path

    import pyarrow.parquet as pq

    from cdp.adapters.lake import lake_root

    files = list((Path(lake_root(pipeline.settings)) / "events").rglob("*.parquet"))
    ids = {i for f in files for i in pq.read_table(f, columns=["message_id"]).column("message_id").to_pylist()}
    assert len(ids) == count_lake_events(pipeline) >= delivered["accepted"]


def test_events_sent_after_the_stream_is_trimmed_still_reach_the_lake(pipeline: LocalPipeline,
                                                                      delivered: dict) -> None:
    # Given a drained stream whose processed records are forgotten
    pipeline.wait_drained(timeout_s=120)
    pipeline.trim_streams()
    before = count_lake_events(pipeline)
    # When more events arrive
    more = generate(people=5, events=60, seed=99, invalid_ratio=0.0)
    accepted = send_batches(pipeline.url, WRITE_KEY, more.batches, workers=1).accepted
    pipeline.wait_drained(timeout_s=120)
    # Then every consumer sees them: the shard's sequence numbers went on from where they were
    assert count_lake_events(pipeline) == before + accepted


def test_with_the_lake_on_disk_reports_still_go_to_the_bucket(pipeline: LocalPipeline, delivered: dict,
                                                               tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Given a working directory of our own
    monkeypatch.chdir(tmp_path)
    # When the report job runs
    pipeline.run_schedules("ReportFunction")
    # Then its files are in the lake bucket, beside the quarantine, and nothing is written here
    s3 = pipeline.client("s3")
    listed = s3.list_objects_v2(Bucket=pipeline.settings.lake_bucket, Prefix="reports/")
    assert listed.get("KeyCount", 0) > 0
    assert list(tmp_path.iterdir()) == []
