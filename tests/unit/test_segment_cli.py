"""``cdp segments ...``: validate, list, preview and sql over a local lake."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow.fs as pafs
import pytest

from cdp.lake.parquet import write_events, write_identity_snapshot
from cdp_infra.cli import main

NOW = datetime(2024, 3, 31, 12, 0, tzinfo=UTC)


@pytest.fixture
def defs(tmp_path: Path) -> Path:
    folder = tmp_path / "segments"
    folder.mkdir()
    (folder / "rb.yaml").write_text(
        "name: rb\ndescription: repeat buyers\nschedule: rate(1 hour)\n"
        "condition: {event: Order Completed, within_days: 30, min_count: 2}\n"
    )
    return folder


@pytest.fixture
def lake(tmp_path: Path) -> Path:
    root = tmp_path / "lake"
    fs = pafs.LocalFileSystem()
    ts = (NOW - timedelta(days=1)).isoformat()
    orders = [
        {"messageId": f"m{i}", "type": "track", "event": "Order Completed", "userId": user, "timestamp": ts}
        for i, user in enumerate(["u1", "u1", "u2"])
    ]
    write_events(orders, fs, str(root), "b1")
    write_identity_snapshot([("user_id:u1", "p1"), ("user_id:u2", "p2")], fs, str(root))
    return root


def test_validate_counts_the_valid_segments(defs: Path, capsys):
    code = main(["segments", "validate", "--dir", str(defs)])

    assert code == 0
    assert "8 segments valid" in capsys.readouterr().out


def test_validate_reports_file_line_and_reason(defs: Path, capsys):
    (defs / "bad.yaml").write_text("name: bad\ncondition:\n  event: A\n  within_days: often\n")

    code = main(["segments", "validate", "--dir", str(defs)])

    assert code == 1
    assert "bad.yaml:4: condition.within_days: must be a whole number" in capsys.readouterr().err


def test_list_shows_kind_and_schedule(defs: Path, capsys):
    main(["segments", "list", "--dir", str(defs), "--json"])

    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows["rb"]["schedule"] == "rate(1 hour)"
    assert rows["rb"]["kind"] == "scheduled"
    assert rows["lifecycle-lead"]["kind"] == "real-time + scheduled"


def test_preview_shows_count_sample_and_bytes(defs: Path, lake: Path, capsys):
    code = main(
        [
            "segments",
            "preview",
            "rb",
            "--dir",
            str(defs),
            "--lake",
            str(lake),
            "--now",
            NOW.isoformat(),
            "--json",
        ]
    )

    preview = json.loads(capsys.readouterr().out)
    assert code == 0
    assert (preview["count"], preview["sample"]) == (1, ["p1"])
    assert preview["bytes_scanned"] > 0


def test_preview_of_an_unknown_segment_fails(defs: Path, lake: Path, capsys):
    code = main(["segments", "preview", "nope", "--dir", str(defs), "--lake", str(lake)])

    assert code == 1
    assert "no segment named 'nope'" in capsys.readouterr().err


def test_sql_prints_the_athena_rendering(defs: Path, capsys):
    main(["segments", "sql", "rb", "--dir", str(defs), "--dialect", "athena", "--now", NOW.isoformat()])

    assert "\"e\".\"dt\" BETWEEN '2024-03-01' AND '2024-03-31'" in capsys.readouterr().out


def test_compact_merges_a_local_partition(lake: Path, capsys):
    fs = pafs.LocalFileSystem()
    ts = (NOW - timedelta(days=1)).isoformat()
    write_events([{"messageId": "m9", "type": "track", "event": "X", "timestamp": ts}], fs, str(lake), "b2")

    code = main(["segments", "compact", f"{NOW - timedelta(days=1):%Y-%m-%d}", "--lake", str(lake)])

    assert code == 0
    assert "2 files -> 1, 4 rows" in capsys.readouterr().out
