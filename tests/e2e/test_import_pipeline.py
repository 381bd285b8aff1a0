"""Bulk import through the whole local stack: `cdp import` -> stream -> unify -> profiles, and the lake."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from cdp_infra.cli import main
from cdp_infra.client import TrackingClient
from cdp_infra.demo import count_lake_events, count_quarantined
from cdp_infra.local import LocalConfig, LocalPipeline

pytestmark = pytest.mark.e2e
TOKEN = "e2e-import-token-0123456789"
SAMPLE = Path(__file__).resolve().parents[2] / "examples" / "imports" / "crm-contacts.csv"


@pytest.fixture(scope="module")
def pipeline() -> Iterator[LocalPipeline]:
    with LocalPipeline(LocalConfig(write_key="e2e-import-key", admin_token=TOKEN, run_schedules=False)) as p:
        yield p


def _import(capsys: pytest.CaptureFixture[str]) -> dict:
    assert main(["import", str(SAMPLE), "--mapping", "crm-contacts", "--rate", "0", "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def _profile(pipeline: LocalPipeline, identifier: str) -> tuple[int, dict]:
    client = TrackingClient(pipeline.url, "")
    status, _, body = client.request("GET", f"/v1/profiles/{identifier}",
                                     headers={"Authorization": f"Bearer {TOKEN}"})
    client.close()
    return status, json.loads(body or b"{}")


def test_imported_rows_become_profiles_with_their_traits(pipeline: LocalPipeline,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    report = _import(capsys)
    pipeline.wait_drained(timeout_s=300)
    assert (report["accepted"], report["rejected"]) == (3, 3)
    status, ada = _profile(pipeline, "user_id:c-1001")
    assert status == 200
    assert ada["traits"]["plan"] == "pro" and ada["traits"]["lifetime_value"] == 1520.5
    assert ada["traits"]["newsletter"] is True
    status, alan = _profile(pipeline, "email:alan@example.org")
    assert status == 200 and alan["traits"]["last_name"] == "Turing"
    assert count_lake_events(pipeline) == 3
    assert count_quarantined(pipeline) == 3


def test_importing_the_file_again_changes_no_profile_and_adds_nothing_to_the_lake(
        pipeline: LocalPipeline, capsys: pytest.CaptureFixture[str]) -> None:
    _, before = _profile(pipeline, "user_id:c-1001")
    assert _import(capsys)["accepted"] == 3
    pipeline.wait_drained(timeout_s=300)
    _, after = _profile(pipeline, "user_id:c-1001")
    assert after["event_count"] == before["event_count"] == 1
    assert count_lake_events(pipeline) == 3
