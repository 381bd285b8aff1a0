"""The local stack is created from template.yaml with the template's own names."""

from __future__ import annotations

import boto3

from cdp.settings import Settings
from cdp_infra.template import load_template


def test_every_table_of_the_template_exists_under_its_template_name(stack_settings: Settings) -> None:
    # Given the stack created from template.yaml
    dynamodb = boto3.client("dynamodb")
    # When listing tables
    tables = set(dynamodb.list_tables()["TableNames"])
    # Then each name the functions receive is a real table
    for name in (stack_settings.profiles_table, stack_settings.identity_table, stack_settings.sources_table,
                 stack_settings.membership_table, stack_settings.idempotency_table,
                 stack_settings.merge_log_table):
        assert name in tables


def test_stream_bucket_and_queue_exist(stack_settings: Settings) -> None:
    shards = int(load_template()["Parameters"]["ShardCount"]["Default"])
    assert boto3.client("kinesis").describe_stream_summary(
        StreamName=stack_settings.events_stream)["StreamDescriptionSummary"]["OpenShardCount"] == shards
    boto3.client("s3").head_bucket(Bucket=stack_settings.lake_bucket)
    assert stack_settings.activation_queue_url.endswith("cdp-test-activation")


def test_idempotency_table_has_ttl_enabled(stack_settings: Settings) -> None:
    ttl = boto3.client("dynamodb").describe_time_to_live(TableName=stack_settings.idempotency_table)
    assert ttl["TimeToLiveDescription"]["AttributeName"] == "expires_at"
