"""The deployed stack works end to end, seen only from outside: a Segment SDK sends to the
CollectorUrl output, the admin API reads the profile, Parquet is in the lake, a segment run
records its run and sends its email, and no failure destination holds anything."""

from __future__ import annotations

import io
import json
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest

from .conftest import TIMINGS, eventually

# The stack's fixtures point boto3 at the emulator with its own fake credentials: the root
# conftest leaves e2e tests' environment alone.
pytestmark = pytest.mark.e2e

USER = f"smoke-{int(time.time())}"
EMAIL = f"{USER}@example.com"


def _get(url: str, token: str) -> tuple[int, Any]:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, None


@pytest.fixture(scope="module")
def sent(stack: dict[str, str], write_key: str) -> dict[str, Any]:
    from segment.analytics.client import Client

    errors: list[Exception] = []
    client = Client(write_key, host=stack["CDP_URL"], sync_mode=True, max_retries=2, timeout=120,
                    on_error=lambda error, _batch: errors.append(error))
    started = time.monotonic()
    client.identify(USER, {"email": EMAIL, "first_name": "Sam"})
    for revenue in (10, 20):
        client.track(USER, "Order Completed", {"revenue": revenue})
    client.flush()
    assert errors == []
    return {"started": started}


def _profile(stack: dict[str, str], admin_token: str) -> Any:
    def profile() -> Any:
        status, body = _get(f"{stack['CDP_URL']}/v1/profiles/user_id:{USER}", admin_token)
        return body if status == 200 else None

    return eventually(profile)


def test_events_sent_with_the_segment_sdk_become_a_profile_read_through_the_admin_api(
        stack: dict[str, str], sent: dict[str, Any], admin_token: str) -> None:
    body = _profile(stack, admin_token)
    TIMINGS["event to profile"] = round(time.monotonic() - sent["started"], 1)
    assert EMAIL in json.dumps(body)


def test_the_admin_api_refuses_a_wrong_token(stack: dict[str, str]) -> None:
    status, _ = _get(f"{stack['CDP_URL']}/v1/profiles/user_id:{USER}", "not-the-token")
    assert status == 401


def test_the_admin_api_refuses_an_operator_without_the_scope(stack: dict[str, str], privacy_only_token: str) -> None:
    status, _ = _get(f"{stack['CDP_URL']}/v1/profiles/user_id:{USER}", privacy_only_token)
    assert status == 403


def test_the_break_glass_token_reads_the_profile_too(
        stack: dict[str, str], sent: dict[str, Any], admin_token: str, break_glass_token: str) -> None:
    _profile(stack, admin_token)  # stored (the operator's read waits for it)
    status, body = _get(f"{stack['CDP_URL']}/v1/profiles/user_id:{USER}", break_glass_token)
    assert status == 200 and EMAIL in json.dumps(body)


def test_the_events_are_archived_as_parquet_in_the_lake(stack: dict[str, str], sent: dict[str, Any]) -> None:
    import pyarrow.parquet as pq

    s3 = boto3.client("s3")

    def parquet_with_user() -> bool:
        listed = s3.list_objects_v2(Bucket=stack["LAKE_BUCKET"], Prefix="events/").get("Contents", [])
        for obj in listed:
            if obj["Key"].endswith(".parquet"):
                body = s3.get_object(Bucket=stack["LAKE_BUCKET"], Key=obj["Key"])["Body"].read()
                if USER in pq.read_table(io.BytesIO(body)).column("user_id").to_pylist():
                    return True
        return False

    eventually(parquet_with_user)
    TIMINGS["event to parquet"] = round(time.monotonic() - sent["started"], 1)


def test_a_segment_run_records_its_last_run_and_emails_the_new_member(
        stack: dict[str, str], outputs: dict[str, str], sent: dict[str, Any], admin_token: str) -> None:
    # Given the profile and its orders are stored (earlier tests waited for both)
    test_events_sent_with_the_segment_sdk_become_a_profile_read_through_the_admin_api(stack, sent, admin_token)
    profile = _profile(stack, admin_token)
    profile_id = profile.get("profile_id") or profile.get("id") or ""
    assert profile_id, profile
    # When the scheduled segment function runs (invoked as EventBridge would) at a tick where
    # repeat-buyers (rate(1 hour)) is due, even if an earlier run of this tier ran it already
    table = boto3.resource("dynamodb").Table(stack["MEMBERSHIP_TABLE"])
    previous = table.get_item(Key={"segment": "#last-run", "profile_id": "repeat-buyers"}).get("Item")
    tick_at = datetime.now(UTC)
    if previous is not None:
        tick_at = max(tick_at, datetime.fromisoformat(str(previous["at"]).replace("Z", "+00:00")) + timedelta(hours=1))
    now = tick_at.strftime("%Y-%m-%dT%H:%M:%SZ")
    tick = {"version": "0", "id": "smoke", "detail-type": "Scheduled Event", "source": "aws.events",
            "account": "000000000000", "time": now, "region": "us-east-1", "resources": [], "detail": {}}
    started = time.monotonic()
    answer = boto3.client("lambda").invoke(FunctionName=outputs["SegmentFunction"], Payload=json.dumps(tick).encode())
    report = json.loads(answer["Payload"].read())
    assert "FunctionError" not in answer, report
    TIMINGS["segment run"] = round(time.monotonic() - started, 1)
    # Then the run of the segment is recorded
    assert "repeat-buyers" not in report["skipped"], report
    last_run = table.get_item(Key={"segment": "#last-run", "profile_id": "repeat-buyers"}).get("Item")
    assert last_run is not None and json.loads(last_run["report"])["run_id"] == now
    # And the new member of an emailed segment gets its email through SES
    endpoint = stack["AWS_ENDPOINT_URL"]

    def email_to_member() -> list[dict[str, Any]]:
        with urllib.request.urlopen(f"{endpoint}/_ministack/ses/messages", timeout=10) as response:
            messages = [m for ms in json.loads(response.read())["messages"].values() for m in ms]
        # Sent raw through SES v2 to the To header: the emulator's listing keeps no recipient for a raw
        # message, so the email is found by its signed unsubscribe link (this profile, this segment).
        return [m for m in messages if f"p={profile_id}&c=segment-repeat-buyers" in str(m.get("BodyText"))]

    emails = eventually(email_to_member)
    assert "Sam" in (emails[0].get("Subject") or json.dumps(emails[0]))


def test_no_failure_destination_holds_anything(stack: dict[str, str], outputs: dict[str, str]) -> None:
    sqs = boto3.client("sqs")
    depths = {}
    for key in ("UnifyFailureQueueUrl", "ActivationDeadLetterQueueUrl", "ScheduleFailureQueueUrl"):
        attributes = sqs.get_queue_attributes(QueueUrl=outputs[key], AttributeNames=["ApproximateNumberOfMessages"])
        depths[key] = int(attributes["Attributes"]["ApproximateNumberOfMessages"])
    assert depths == dict.fromkeys(depths, 0)


def test_cdp_status_reports_the_stack_healthy_with_the_segment_run(
        deployment: Any, stack: dict[str, str], outputs: dict[str, str]) -> None:
    import subprocess
    import sys

    result = subprocess.run([sys.executable, "-m", "cdp_infra.cli", "--stack", deployment.stack, "status", "--json"],
                            capture_output=True, text=True, check=False)
    status = json.loads(result.stdout)
    assert result.returncode == 0, result.stdout + result.stderr
    assert status["healthy"] is True and status["alarms_in_alarm"] == []
    assert "repeat-buyers" in status["last_segment_runs"]


def test_cdp_logs_shows_the_functions_log_lines(deployment: Any, stack: dict[str, str]) -> None:
    import subprocess
    import sys

    result = subprocess.run([sys.executable, "-m", "cdp_infra.cli", "--stack", deployment.stack, "logs", "segment",
                             "--since", "1h"], capture_output=True, text=True, check=True)
    assert "segments run" in result.stdout
