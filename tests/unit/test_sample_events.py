"""Every sample in events/ is parsed by the production code, so the samples cannot drift."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from aws_lambda_powertools.utilities.data_classes import APIGatewayProxyEvent, EventBridgeEvent, SQSEvent

from cdp.collect.body import decode_body, write_key_from_authorization
from cdp.segments.membership import MembershipChange
from cdp.streams import decode, stream_records
from cdp.times import parse_time

EVENTS = Path(__file__).resolve().parents[2] / "events"


def _load(name: str) -> dict:
    return json.loads((EVENTS / name).read_text())


def test_there_is_one_sample_per_trigger_of_the_template() -> None:
    assert {p.name for p in EVENTS.glob("*.json")} == {
        "api-gateway-batch.json", "kinesis-batch.json", "schedule.json", "sqs-activation.json",
        "s3-import-object-created.json", "sqs-destinations.json", "sqs-privacy.json",
        "sns-ses-feedback.json"}


def test_the_ses_feedback_sample_is_a_hard_bounce_that_suppresses_the_address() -> None:
    from cdp.campaigns.feedback import FeedbackReport, notifications, outcome_events

    report = FeedbackReport()
    events = [e for n in notifications(_load("sns-ses-feedback.json")) for e in outcome_events(n, report)]
    assert [e.get("event", e["type"]) for e in events] == ["Email Bounced", "identify"]
    assert report.suppressed == ["ada@shopper.io"] and events[0]["properties"]["campaign"] == "new-customer-welcome"


def test_the_api_gateway_sample_is_a_segment_batch_with_a_write_key() -> None:
    event = APIGatewayProxyEvent(_load("api-gateway-batch.json"))
    assert event.request_context.resource_path == "/v1/batch"
    body = decode_body(event.decoded_body.encode() if isinstance(event.decoded_body, str) else event.decoded_body)
    assert isinstance(body, dict) and len(body["batch"]) == 2
    assert write_key_from_authorization(event.headers["Authorization"]) == "local-write-key"


def test_the_kinesis_sample_decodes_to_collector_normalised_events() -> None:
    records = stream_records(_load("kinesis-batch.json"))
    events = [decode(r) for r in records]
    assert [e["type"] for e in events if e] == ["identify", "track"]
    assert records[0].shard_id == "shardId-000000000000"


def test_the_schedule_sample_has_a_time_the_segment_job_uses_as_run_id() -> None:
    tick = EventBridgeEvent(_load("schedule.json"))
    assert tick.detail_type == "Scheduled Event"
    assert parse_time(tick.time) == datetime(2026, 11, 20, 11, 0, tzinfo=UTC)


def test_the_sqs_sample_carries_a_membership_change_a_campaign_trigger_a_scheduled_message_and_a_page() -> None:
    from cdp.campaigns.scheduled import FANOUT_TYPE, MESSAGE_TYPE, FanOutPage, parse_message
    from cdp.campaigns.triggers import TriggerMessage

    change, trigger, scheduled, page = (json.loads(r.body) for r in SQSEvent(_load("sqs-activation.json")).records)
    assert page["type"] == FANOUT_TYPE and FanOutPage.from_body(page).key == "fanout#weekly-digest#2026-11-23T09:00:00Z#1"
    assert MembershipChange.from_dict(change).change == "entered"
    assert TriggerMessage.from_body(trigger).campaign == "checkout-reminder"
    assert scheduled["type"] == MESSAGE_TYPE and parse_message(scheduled)["campaign"] == "weekly-digest"


def test_the_destinations_sample_carries_a_change_and_a_retried_delivery() -> None:
    from cdp.activation.destinations import Delivery

    first, retry = (Delivery.from_dict(json.loads(r.body)) for r in SQSEvent(_load("sqs-destinations.json")).records)
    assert first.destination is None and first.change.change == "entered"
    assert (retry.destination, retry.attempt, retry.reason) == ("repeat-buyers-webhook", 1, "retry")


def test_the_privacy_queue_sample_names_a_request() -> None:
    from cdp.jobs.privacy_job import queued_request_id

    record = next(iter(SQSEvent(_load("sqs-privacy.json")).records))
    assert queued_request_id(record.body).startswith("pr-")


def test_the_s3_sample_names_a_file_to_import_in_the_folder_of_a_shipped_mapping() -> None:
    from cdp.adapters.imports import is_import_key, mapping_name, object_events

    sample = _load("s3-import-object-created.json")
    assert EventBridgeEvent(sample).detail_type == "Object Created"
    ((bucket, key),) = object_events(sample)
    assert bucket == sample["detail"]["bucket"]["name"] and is_import_key(key)
    assert (EVENTS.parent / "config" / "imports" / f"{mapping_name(key)}.yaml").is_file()
