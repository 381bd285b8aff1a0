"""Bulk import on the template's stack in moto: files -> stream records, quarantine and a report."""

from __future__ import annotations

import gzip
import importlib.util
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from cdp.adapters.imports import S3Imports, checkpoint_key, report_key
from cdp.adapters.kinesis import KinesisSink
from cdp.adapters.quarantine import S3Quarantine
from cdp.collect.replay import list_quarantine
from cdp.identity.config import load_identity_config
from cdp.imports.files import read_rows
from cdp.imports.mapping import load_mapping
from cdp.jobs.import_job import import_file, import_object
from cdp.settings import Settings
from cdp_infra.cli import main

from .collect_support import stream_events

REPO = Path(__file__).resolve().parents[2]
IDENTITY = load_identity_config(REPO / "config" / "identity.yaml")
CONTACTS = load_mapping(REPO / "config" / "imports" / "crm-contacts.yaml", identity=IDENTITY)
SAMPLE = REPO / "examples" / "imports" / "crm-contacts.csv"
NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
MIXED = (
    "customer_id,email,plan,ltv,updated_at\n"
    "c-1,ada@example.org,pro,10,2026-10-01\n"
    "c-2,grace@example.org,free,lots,2026-10-02\n"
    "c-3,alan@example.org,\"pro, annual\",30,2026-10-03\n"
    "c-4,too,many,cells,here,2026-10-04\n"
    ",,free,0,2026-10-05\n"
    ",edsger@example.org,pro,5,2026-10-06\n"
)


def _import(settings: Settings, path: Path, **kwargs: Any):
    return import_file(path, mapping=CONTACTS, identity=IDENTITY, sink=KinesisSink(settings),
                       quarantine=S3Quarantine(settings), now=NOW, **kwargs)


def _message_ids(settings: Settings) -> list[str]:
    return [event["messageId"] for _, event in stream_events(settings)]


def test_a_csv_of_good_and_bad_rows_streams_the_good_and_quarantines_the_bad(
        stack_settings: Settings, tmp_path: Path) -> None:
    path = tmp_path / "contacts.csv"
    path.write_text(MIXED)
    report = _import(stack_settings, path)
    events = [event for _, event in stream_events(stack_settings)]
    assert sorted(e["context"]["import"]["row"] for e in events) == [1, 3, 6]
    assert {e.get("userId") for e in events} == {"c-1", "c-3", None}
    assert next(e for e in events if e.get("userId") == "c-3")["traits"]["plan"] == "pro, annual"
    quarantined = list_quarantine(S3Quarantine(stack_settings), source_id="crm")
    assert sorted((q.entry.index, q.entry.reason) for q in quarantined) == [
        (2, "invalid_number"), (4, "malformed_row"), (5, "missing_identity")]
    assert (report.rows_read, report.accepted, report.rejected, report.profiles_touched) == (6, 3, 3, 3)


def test_importing_the_same_file_again_sends_no_new_message_id(stack_settings: Settings, tmp_path: Path) -> None:
    path = tmp_path / "contacts.csv"
    path.write_text(MIXED)
    _import(stack_settings, path)
    first = set(_message_ids(stack_settings))
    quarantine_keys = S3Quarantine(stack_settings).keys()
    _import(stack_settings, path)
    assert set(_message_ids(stack_settings)) == first
    assert S3Quarantine(stack_settings).keys() == quarantine_keys  # the same rejects overwrite their object


def test_json_lines_parquet_and_gzip_read_the_same_rows(tmp_path: Path) -> None:
    rows = [{"customer_id": "c-1", "ltv": 1.5, "updated_at": datetime(2026, 1, 2, 3, 4, 5)},
            {"customer_id": "c-2", "ltv": None, "updated_at": None}]
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "a.parquet")
    lines = [json.dumps({**r, "updated_at": r["updated_at"] and r["updated_at"].isoformat()}) for r in rows]
    (tmp_path / "a.jsonl").write_text(lines[0] + "\n{broken\n" + lines[1] + "\n")
    (tmp_path / "a.csv.gz").write_bytes(gzip.compress(b"customer_id,ltv\nc-1,1.5\nc-2,\n"))
    parquet = list(read_rows(tmp_path / "a.parquet"))
    assert [(r.number, r.values["customer_id"]) for r in parquet] == [(1, "c-1"), (2, "c-2")]
    jsonl = list(read_rows(tmp_path / "a.jsonl"))
    assert [r.number for r in jsonl] == [1, 2, 3] and jsonl[1].malformed == "{broken"
    assert [r.values for r in read_rows(tmp_path / "a.csv.gz")] == [{"customer_id": "c-1", "ltv": "1.5"},
                                                                    {"customer_id": "c-2", "ltv": None}]


def test_a_parquet_file_imports_with_its_timestamps(stack_settings: Settings, tmp_path: Path) -> None:
    table = pa.Table.from_pylist([{"customer_id": "c-9", "ltv": 7.25, "updated_at": datetime(2026, 1, 2, 3, 4, 5)}])
    pq.write_table(table, tmp_path / "contacts.parquet")
    report = _import(stack_settings, tmp_path / "contacts.parquet")
    (event,) = [e for _, e in stream_events(stack_settings)]
    assert report.accepted == 1 and event["timestamp"] == "2026-01-02T03:04:05.000Z"
    assert event["traits"]["lifetime_value"] == 7.25


class _Context:
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:cdp-test-import"
    function_name = "cdp-test-import"
    memory_limit_in_mb = 1024
    aws_request_id = "00000000-0000-0000-0000-000000000000"

    def __init__(self, remaining_ms: int) -> None:
        self.remaining_ms = remaining_ms

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining_ms


def _handler(monkeypatch: pytest.MonkeyPatch, env: dict[str, str]) -> Any:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    spec = importlib.util.spec_from_file_location("cdp_import_handler", REPO / "functions" / "import" / "handler.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _dropped(bucket: str, key: str) -> dict[str, Any]:
    return {"version": "0", "source": "aws.s3", "detail-type": "Object Created",
            "detail": {"bucket": {"name": bucket}, "object": {"key": key}}}


def test_a_file_dropped_under_imports_is_imported_and_reported_beside_it(
        stack_environment: dict[str, str], stack_settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    s3 = boto3.client("s3")
    key = "imports/crm-contacts/crm-contacts.csv"
    s3.put_object(Bucket=stack_settings.lake_bucket, Key=key, Body=SAMPLE.read_bytes())
    handler = _handler(monkeypatch, stack_environment)
    result = handler.handler(_dropped(stack_settings.lake_bucket, key), _Context(800_000))
    report = S3Imports(stack_settings).read_report(key)
    assert result["imports"][0]["accepted"] == report["accepted"] == 3
    assert report["complete"] and report["rejected_by_reason"] == {
        "invalid_number": 1, "invalid_timestamp": 1, "missing_identity": 1}
    assert len(stream_events(stack_settings)) == 3
    assert "Contents" not in s3.list_objects_v2(Bucket=stack_settings.lake_bucket, Prefix=checkpoint_key(key))
    # The report it wrote under imports/ is not a file to import.
    assert handler.handler(_dropped(stack_settings.lake_bucket, report_key(key)), _Context(800_000)) == {"imports": []}


def test_an_import_near_the_time_limit_checkpoints_and_goes_on_in_a_new_invocation(
        stack_environment: dict[str, str], stack_settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    s3 = boto3.client("s3")
    key = "imports/crm-contacts/big.csv"
    body = "customer_id,plan\n" + "".join(f"c-{n},pro\n" for n in range(1, 1201))
    s3.put_object(Bucket=stack_settings.lake_bucket, Key=key, Body=body.encode())
    handler = _handler(monkeypatch, stack_environment)
    continued: list[tuple[str, str]] = []
    monkeypatch.setattr(handler, "LambdaContinuation", lambda *_a, **_k: lambda b, k: continued.append((b, k)))
    handler.handler(_dropped(stack_settings.lake_bucket, key), _Context(10_000))
    assert continued == [(stack_settings.lake_bucket, key)]
    checkpoint = json.loads(s3.get_object(Bucket=stack_settings.lake_bucket, Key=checkpoint_key(key))["Body"].read())
    assert checkpoint["next_row"] == 500 and not checkpoint["complete"]
    handler.handler({"continuation": True, **_dropped(stack_settings.lake_bucket, key)}, _Context(800_000))
    report = S3Imports(stack_settings).read_report(key)
    assert report["complete"] and report["rows_read"] == 1200 and report["invocations"] == 2
    ids = _message_ids(stack_settings)
    assert len(ids) == len(set(ids)) == 1200


def test_a_file_without_a_mapping_gets_a_report_naming_the_error(
        stack_settings: Settings, tmp_path: Path) -> None:
    key = "imports/nobody/x.csv"
    boto3.client("s3").put_object(Bucket=stack_settings.lake_bucket, Key=key, Body=b"a\n1\n")
    result = import_object(key, objects=S3Imports(stack_settings), mappings=REPO / "config" / "imports",
                           identity=IDENTITY, sink=KinesisSink(stack_settings),
                           quarantine=S3Quarantine(stack_settings), now=NOW)
    assert result.complete and result.report is None
    assert "nobody.yaml:0: cannot read" in S3Imports(stack_settings).read_report(key)["error"]


def test_cdp_import_sends_the_sample_and_prints_its_report(
        stack_environment: dict[str, str], stack_settings: Settings, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    for name, value in stack_environment.items():
        monkeypatch.setenv(name, value)
    assert main(["import", str(SAMPLE), "--mapping", "crm-contacts", "--rate", "0", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert (report["rows_read"], report["accepted"], report["rejected"]) == (6, 3, 3)
    assert len(stream_events(stack_settings)) == 3
    assert main(["import", str(SAMPLE), "--mapping", "crm-contacts", "--check"]) == 0
    assert "checked crm-contacts.csv" in capsys.readouterr().out
    assert len(stream_events(stack_settings)) == 3


def test_cdp_import_reports_a_bad_mapping_with_its_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    mapping = tmp_path / "bad.yaml"
    mapping.write_text("type: identify\nidentifiers:\n  fax: fax\n")
    assert main(["import", str(SAMPLE), "--mapping", str(mapping), "--check"]) == 2
    assert "bad.yaml:3: identifiers.fax: unknown identifier type" in capsys.readouterr().err
