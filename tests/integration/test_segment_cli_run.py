"""``cdp segments run`` stores membership in DynamoDB and hands changes to the activation queue (moto)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import boto3
import pyarrow.fs as pafs

from cdp.lake.parquet import write_events, write_identity_snapshot
from cdp_infra.cli import main

NOW = datetime(2024, 3, 31, 12, 0, tzinfo=UTC)


def test_a_cli_run_publishes_entries_once_per_run_id(stack_environment, monkeypatch, tmp_path: Path, capsys):
    for key, value in stack_environment.items():
        monkeypatch.setenv(key, value)
    fs = pafs.LocalFileSystem()
    ts = (NOW - timedelta(days=1)).isoformat()
    orders = [
        {"messageId": f"m{i}", "type": "track", "event": "Order Completed", "userId": "u1", "timestamp": ts}
        for i in range(2)
    ]
    write_events(orders, fs, str(tmp_path), "b1")
    write_identity_snapshot([("user_id:u1", "p1")], fs, str(tmp_path))
    (tmp_path / "defs").mkdir()
    (tmp_path / "defs" / "rb.yaml").write_text(
        "name: rb\ncondition: {event: Order Completed, within_days: 30, min_count: 2}\n"
    )
    argv = [
        "segments",
        "run",
        "rb",
        "--dir",
        str(tmp_path / "defs"),
        "--lake",
        str(tmp_path),
        "--now",
        NOW.isoformat(),
        "--run-id",
        "r1",
        "--json",
    ]

    first = main(argv)
    second = main(argv)

    out = capsys.readouterr().out
    decoder, reports, at = json.JSONDecoder(), [], 0
    while out[at:].strip():
        report, at = decoder.raw_decode(out, at + (len(out[at:]) - len(out[at:].lstrip())))
        reports.append(report)
    sqs = boto3.client("sqs")
    messages = sqs.receive_message(
        QueueUrl=stack_environment["ACTIVATION_QUEUE_URL"], MaxNumberOfMessages=10
    )["Messages"]
    assert (first, second) == (0, 0)
    assert [r["replayed"] for r in reports] == [False, True]
    assert [json.loads(m["Body"])["profile_id"] for m in messages] == ["p1"]
