"""The reports on the local stack: the ReportFunction on its schedule, `cdp report`, the admin page."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cdp.adapters.dynamo_profiles import DynamoIdentityStore
from cdp_infra.cli import main
from cdp_infra.client import TrackingClient
from cdp_infra.dataset import generate
from cdp_infra.demo import send_batches
from cdp_infra.local import LocalConfig, LocalPipeline

pytestmark = pytest.mark.e2e
WRITE_KEY = "report-write-key"
TOKEN = "report-admin-token-0123456789"


@pytest.fixture(scope="module")
def pipeline() -> Iterator[LocalPipeline]:
    with LocalPipeline(LocalConfig(write_key=WRITE_KEY, admin_token=TOKEN, run_schedules=False)) as p:
        yield p


@pytest.fixture(scope="module")
def reported(pipeline: LocalPipeline) -> dict[str, Any]:
    """Given a dataset drained through the stack, segments run, then the ReportFunction's schedule fired."""
    send_batches(pipeline.url, WRITE_KEY, generate(people=30, events=500, seed=11).batches, workers=2)
    pipeline.wait_drained(timeout_s=300)
    pipeline.run_schedules("SegmentFunction")
    [meta] = pipeline.run_schedules("ReportFunction")
    return meta


def _get(pipeline: LocalPipeline, path: str, token: str | None) -> tuple[int, bytes]:
    client = TrackingClient(pipeline.url, WRITE_KEY)
    status, _, body = client.request("GET", path, headers={"Authorization": f"Bearer {token}"} if token else {})
    client.close()
    return status, body


def test_the_scheduled_report_counts_the_lake_and_serves_its_dashboard_to_the_admin(
    pipeline: LocalPipeline, reported: dict[str, Any]
) -> None:
    assert reported["events"] > 0 and reported["journey_error"] is None
    status, body = _get(pipeline, "/v1/reports/latest", TOKEN)
    assert status == 200 and body.startswith(b"<!doctype html>")
    assert f'data-events="{reported["events"]}"'.encode() in body
    assert _get(pipeline, "/v1/reports/latest", None)[0] == 401


def test_cdp_report_show_prints_the_stage_counts_of_the_profiles(
    pipeline: LocalPipeline, reported: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["report", "show", "funnel"]) == 0
    lines = capsys.readouterr().out.splitlines()[2:]
    shown = {line.split()[0]: int(line.split()[1].replace(",", "")) for line in lines if int(line.split()[1]) > 0}
    live = [p for p in DynamoIdentityStore(pipeline.settings).scan_profiles() if not p.is_tombstone]
    assert shown == dict(Counter(p.lifecycle.stage for p in live))


def test_cdp_report_run_then_open_writes_the_new_dashboard_to_a_local_file(
    pipeline: LocalPipeline, reported: dict[str, Any], capsys: pytest.CaptureFixture[str],
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["report", "run", "--from", "2020-01-01", "--by", "month"]) == 0
    ran = json.loads(capsys.readouterr().out)
    assert ran["from"] == "2020-01-01" and ran["events"] >= reported["events"]  # a wider range
    assert main(["report", "open"]) == 0
    opened = Path(capsys.readouterr().out.strip().removeprefix("file://"))
    assert opened.is_file() and ran["run_id"] in str(opened)
    assert "<svg" in opened.read_text()
