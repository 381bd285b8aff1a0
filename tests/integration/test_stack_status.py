"""`cdp --stack NAME status`: what a deployed stack's health report shows, on moto."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import boto3
import pytest
from moto import mock_aws

from cdp_infra.stack_cli import format_status, function_name, parse_since, stack_status

STACK = "cdp-test"


@pytest.fixture
def aws() -> dict[str, object]:
    with mock_aws():
        sqs = boto3.client("sqs")
        outputs = {key: sqs.create_queue(QueueName=f"{STACK}-{name}")["QueueUrl"] for key, name in (
            ("UnifyFailureQueueUrl", "unify-failures"), ("ScheduleFailureQueueUrl", "schedule-failures"),
            ("ActivationDeadLetterQueueUrl", "activation-dlq"))}
        dynamodb = boto3.client("dynamodb")
        dynamodb.create_table(TableName=f"{STACK}-membership", BillingMode="PAY_PER_REQUEST",
                              AttributeDefinitions=[{"AttributeName": "segment", "AttributeType": "S"},
                                                    {"AttributeName": "profile_id", "AttributeType": "S"}],
                              KeySchema=[{"AttributeName": "segment", "KeyType": "HASH"},
                                         {"AttributeName": "profile_id", "KeyType": "RANGE"}])
        outputs |= {"MembershipTable": f"{STACK}-membership", "UnifyFunction": f"{STACK}-unify",
                    "ArchiveFunction": f"{STACK}-archive"}
        yield {"outputs": outputs, "sqs": sqs, "dynamodb": dynamodb, "cloudwatch": boto3.client("cloudwatch")}


def _status(aws: dict) -> dict:
    return stack_status(aws["outputs"], STACK, sqs=aws["sqs"], cloudwatch=aws["cloudwatch"],
                        dynamodb=aws["dynamodb"], now=datetime.now(UTC))


def test_a_quiet_stack_is_healthy_with_empty_failure_queues_and_no_runs(aws: dict) -> None:
    status = _status(aws)
    assert status["healthy"] is True
    assert {q["messages"] for q in status["failure_queues"].values()} == {0}
    assert status["last_segment_runs"] == {} and status["alarms_in_alarm"] == []
    assert status["stream_lag_seconds"] == {f"{STACK}-unify": None, f"{STACK}-archive": None}


def test_a_dead_lettered_message_and_an_alarm_make_the_stack_need_attention(aws: dict) -> None:
    aws["sqs"].send_message(QueueUrl=aws["outputs"]["ActivationDeadLetterQueueUrl"], MessageBody="{}")
    aws["cloudwatch"].put_metric_alarm(AlarmName=f"{STACK}-activation-dlq", MetricName="m", Namespace="n",
                                       Statistic="Sum", Period=60, EvaluationPeriods=1, Threshold=0,
                                       ComparisonOperator="GreaterThanThreshold")
    aws["cloudwatch"].set_alarm_state(AlarmName=f"{STACK}-activation-dlq", StateValue="ALARM", StateReason="1 message")
    status = _status(aws)
    assert status["healthy"] is False
    assert status["failure_queues"][f"{STACK}-activation-dlq"]["messages"] == 1
    assert [a["name"] for a in status["alarms_in_alarm"]] == [f"{STACK}-activation-dlq"]
    assert "NEEDS ATTENTION" in format_status(status)


def test_the_last_run_of_each_segment_is_read_from_the_membership_table(aws: dict) -> None:
    report = {"segment": "repeat-buyers", "members": 3, "entered": 1, "exited": 0}
    aws["dynamodb"].put_item(TableName=f"{STACK}-membership", Item={
        "segment": {"S": "#last-run"}, "profile_id": {"S": "repeat-buyers"},
        "at": {"S": "2026-11-30T10:00:00Z"}, "report": {"S": json.dumps(report)}})
    aws["dynamodb"].put_item(TableName=f"{STACK}-membership", Item={
        "segment": {"S": "repeat-buyers"}, "profile_id": {"S": "p-1"}})
    status = _status(aws)
    assert status["last_segment_runs"] == {
        "repeat-buyers": {"at": "2026-11-30T10:00:00Z", "members": 3, "entered": 1, "exited": 0}}


def test_durations_and_function_names_as_an_operator_types_them() -> None:
    assert parse_since("10m") == timedelta(minutes=10) and parse_since("2h") == timedelta(hours=2)
    outputs = {"UnifyFunction": "cdp-dev-unify", "CollectFunction": "cdp-dev-collect"}
    assert function_name(outputs, "unify") == function_name(outputs, "UnifyFunction") == "cdp-dev-unify"
    with pytest.raises(SystemExit, match="collect, unify"):
        function_name(outputs, "nope")
