"""Triggered campaigns on the stack of template.yaml (moto): the feed onto the activation queue, a long
wait as an EventBridge Scheduler one-time schedule fired as AWS fires it, and the send once."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import boto3

from cdp.adapters.scheduler import OneTimeSchedules, at_expression
from cdp.adapters.sqs import SqsTriggerPublisher
from cdp.campaigns.triggers import TriggerMessage, schedule_name
from cdp.settings import Settings
from cdp_infra.pollers import OneTimeSchedules as LocalOneTimeSchedules
from cdp_infra.pollers import one_time_due

DUE = datetime(2026, 11, 30, 13, 0, 0, 250_000, tzinfo=UTC)
MESSAGE = TriggerMessage("checkout-reminder", "p1", "m-1", "2026-11-30T12:00:00.000Z", "2026-11-30T13:00:00.250Z")


def _receive(settings: Settings) -> list[dict]:
    sqs = boto3.client("sqs")
    out = sqs.receive_message(QueueUrl=settings.activation_queue_url, MaxNumberOfMessages=10)
    return [json.loads(m["Body"]) for m in out.get("Messages", [])]


def test_the_feed_publishes_triggers_in_batches_with_their_own_delays(stack_settings: Settings) -> None:
    messages = [(TriggerMessage("c", f"p{i}", f"m-{i}", MESSAGE.at, MESSAGE.due), 0) for i in range(12)]
    SqsTriggerPublisher(stack_settings)(messages)
    bodies = _receive(stack_settings) + _receive(stack_settings)
    assert sorted(b["trigger"]["message_id"] for b in bodies) == sorted(f"m-{i}" for i in range(12))


def test_a_long_wait_is_one_schedule_in_the_stacks_group_created_once(stack_settings: Settings) -> None:
    schedules = OneTimeSchedules(stack_settings)
    name = schedule_name(MESSAGE)
    schedules(name, MESSAGE.to_body(), DUE)
    schedules(name, MESSAGE.to_body(), DUE)  # a redelivery: the name exists, nothing new

    scheduler = boto3.client("scheduler")
    [summary] = scheduler.list_schedules(GroupName=stack_settings.trigger_schedule_group)["Schedules"]
    detail = scheduler.get_schedule(GroupName=stack_settings.trigger_schedule_group, Name=summary["Name"])
    assert detail["ScheduleExpression"] == "at(2026-11-30T13:00:01)" == at_expression(DUE)  # never early
    assert detail["ActionAfterCompletion"] == "DELETE" and detail["FlexibleTimeWindow"] == {"Mode": "OFF"}
    assert detail["Target"]["Arn"] == stack_settings.activation_queue_arn
    assert detail["Target"]["RoleArn"] == stack_settings.trigger_scheduler_role_arn
    assert detail["Target"]["DeadLetterConfig"] == {"Arn": stack_settings.activation_dead_letter_arn}
    assert json.loads(detail["Target"]["Input"]) == MESSAGE.to_body()


def test_the_local_runtime_fires_a_due_schedule_to_its_queue_then_deletes_it(stack_settings: Settings) -> None:
    OneTimeSchedules(stack_settings)(schedule_name(MESSAGE), MESSAGE.to_body(), DUE)
    local = LocalOneTimeSchedules(boto3.client("scheduler"), boto3.client("sqs"),
                                  [stack_settings.trigger_schedule_group],
                                  lambda arn: stack_settings.activation_queue_url)

    assert local.fire_due(DUE - timedelta(minutes=1)) == 0 and _receive(stack_settings) == []
    assert local.fire_due(DUE + timedelta(seconds=1)) == 1
    assert _receive(stack_settings) == [MESSAGE.to_body()]
    assert local.pending() == [] and local.fire_due(DUE + timedelta(hours=1)) == 0  # deleted: fires once


def test_an_at_expression_reads_back_in_its_time_zone() -> None:
    assert one_time_due("at(2026-11-30T13:00:01)") == datetime(2026, 11, 30, 13, 0, 1, tzinfo=UTC)
    assert one_time_due("at(2026-11-30T14:00:01)", "Europe/Paris") == datetime(2026, 11, 30, 13, 0, 1, tzinfo=UTC)
    assert one_time_due("rate(1 hour)") is None
