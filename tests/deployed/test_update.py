"""A second `sam deploy` with a changed template keeps the data: the profiles and the lake are
intact and no stateful resource was replaced."""

from __future__ import annotations

import json
import time
from typing import Any

import boto3
import pytest

from cdp_infra.stateful import stateful_resources

from .conftest import TIMINGS, eventually
from .test_smoke import _get

USER = f"update-{int(time.time())}"

pytestmark = pytest.mark.e2e


def _physical_ids(stack_name: str) -> dict[str, str]:
    resources = boto3.client("cloudformation").describe_stack_resources(StackName=stack_name)["StackResources"]
    return {r["LogicalResourceId"]: r["PhysicalResourceId"] for r in resources}


def _table_creation(stack: dict[str, str]) -> dict[str, Any]:
    dynamodb = boto3.client("dynamodb")
    return {name: dynamodb.describe_table(TableName=stack[name])["Table"]["CreationDateTime"]
            for name in ("PROFILES_TABLE", "IDENTITY_TABLE", "MEMBERSHIP_TABLE", "SOURCES_TABLE")}


def test_an_update_with_a_changed_parameter_keeps_profiles_lake_and_stateful_resources(
        deployment: Any, stack: dict[str, str], admin_token: str, write_key: str) -> None:
    from segment.analytics.client import Client

    from cdp_infra.deployed import deploy

    client = Client(write_key, host=stack["CDP_URL"], sync_mode=True, max_retries=2, timeout=120)
    # Given a stack that holds a profile and lake data
    client.identify(USER, {"email": f"{USER}@example.com"})
    client.flush()

    def stored() -> Any:
        status, body = _get(f"{stack['CDP_URL']}/v1/profiles/user_id:{USER}", admin_token)
        return body if status == 200 else None

    before = eventually(stored)

    def lake_files() -> set[str]:
        return {o["Key"] for o in boto3.client("s3").list_objects_v2(
            Bucket=stack["LAKE_BUCKET"], Prefix="events/").get("Contents", [])}

    lake_before = eventually(lake_files)
    ids_before, tables_before = _physical_ids(deployment.stack), _table_creation(stack)
    # When the template changes (a parameter that reaches a schedule and the API's throttling) and
    # is deployed again
    started = time.monotonic()
    deploy(deployment.stack, {"SegmentSchedule": "rate(30 minutes)", "ThrottleRateLimit": "1500"})
    TIMINGS["update deploy"] = round(time.monotonic() - started, 1)
    # Then no stateful resource has a new physical id and no table was re-created
    ids_after = _physical_ids(deployment.stack)
    stateful = set(stateful_resources())
    assert {k: ids_after.get(k) for k in stateful} == {k: ids_before.get(k) for k in stateful}
    assert _table_creation(stack) == tables_before
    # And the profile, the write key and the lake files are all still there
    status, after = _get(f"{stack['CDP_URL']}/v1/profiles/user_id:{USER}", admin_token)
    assert status == 200 and json.dumps(after) == json.dumps(before)
    assert lake_before <= lake_files()
    # And the updated stack still takes events with the same write key
    client.track(USER, "Order Completed", {"revenue": 30})
    client.flush()

    def counted() -> bool:
        status, body = _get(f"{stack['CDP_URL']}/v1/profiles/user_id:{USER}", admin_token)
        return status == 200 and json.dumps(body) != json.dumps(before)

    eventually(counted)
