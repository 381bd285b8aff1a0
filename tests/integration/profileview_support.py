"""A person's history on the stack of template.yaml (moto) and a lake on disk, for the customer view."""

from __future__ import annotations

import importlib.util
import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import Any

import pyarrow.fs as pafs

from cdp.adapters.dynamo_profiles import DynamoIdentityStore
from cdp.adapters.membership import DynamoMembershipStore
from cdp.identity import resolve_batch
from cdp.identity.config import load_identity_config
from cdp.lake.parquet import write_events
from cdp.segments.membership import Member
from cdp.settings import Settings

REPO = Path(__file__).resolve().parents[2]
APP_FILE = REPO / "functions" / "profileview" / "app.py"
ACTIVATE_FILE = REPO / "functions" / "activate" / "handler.py"
NOW = datetime(2024, 5, 10, tzinfo=UTC)
HOSTILE = "<script>alert('x')</script>"


def load_module(path: Path, name: str) -> ModuleType:
    """A fresh copy of a function's module (as on a cold start)."""
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def event(mid: str, day: int, hour: int, kind: str = "track", **fields: Any) -> dict[str, Any]:
    ts = datetime(2024, 5, day, hour, tzinfo=UTC).isoformat().replace("+00:00", "Z")
    return {"messageId": mid, "type": kind, "timestamp": ts, "receivedAt": ts, **fields}


#: Alice: anonymous on the 1st, signs up as u-alice (another device) on the 2nd, the two profiles
#: merge on the 3rd, orders on the 4th. Bob shares the days. An event of Alice's user id from long
#: ago never reached unify (its profile's first_seen is later): the view does not read that day.
ALICE = [
    event("a1", 1, 9, "page", anonymousId="anon-1", name="Home"),
    event("a2", 1, 10, event="Product Viewed", anonymousId="anon-1", properties={"name": "Lamp"}),
    event("a3", 2, 8, "identify", userId="u-alice", anonymousId="anon-2",
          traits={"email": "alice@example.com", "first_name": "Alice", "nickname": HOSTILE},
          context={"consent": {"categoryPreferences": {"email": True}}}),
    event("a4", 3, 12, event="Cart Viewed", userId="u-alice", anonymousId="anon-1"),
    event("a5", 4, 18, event="Order Completed", userId="u-alice", properties={"revenue": 42}),
]
BOB = [event("b1", 2, 9, event="Product Viewed", userId="u-bob"),
       event("b2", 3, 13, "identify", userId="u-bob", traits={"email": "bob@example.com"})]
UNRESOLVED = [event("old", 1, 1, event="Ancient", userId="u-alice") | {"timestamp": "2023-01-01T00:00:00Z",
                                                                          "receivedAt": "2023-01-01T00:00:00Z"}]


def build_history(settings: Settings, lake_root: Path) -> dict[str, str]:
    """Resolve the events into profiles, archive them (one file per day and batch), add Alice to a
    segment and Bob to another. Returns the profile ids by person."""
    config = load_identity_config(REPO / "config" / "identity.yaml")
    store = DynamoIdentityStore(settings)
    for batch in (ALICE[:2] + BOB[:1], ALICE[2:3], ALICE[3:] + BOB[1:]):
        outcome = resolve_batch(batch, store, config=config, now=NOW)
        assert not outcome.failed and not outcome.rejected, outcome
    fs = pafs.LocalFileSystem()
    for n, batch in enumerate((ALICE[:3], BOB, ALICE[3:], UNRESOLVED)):
        write_events(batch, fs, str(lake_root), f"batch-{n}")
    ids = {"alice": outcome.profile_of["a5"], "bob": outcome.profile_of["b2"]}
    members = DynamoMembershipStore(settings)
    members.apply("repeat-buyers", [Member(ids["alice"], "run-7", "2024-05-05T00:00:00.000Z")], [])
    members.apply("big-spenders", [Member(ids["bob"], "run-7", "2024-05-05T00:00:00.000Z")], [])
    return ids


def sqs_record(body: dict[str, Any]) -> Any:
    from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

    return SQSRecord({"messageId": "m-1", "receiptHandle": "r", "body": json.dumps(body), "attributes": {},
                      "messageAttributes": {}, "md5OfBody": "", "eventSource": "aws:sqs",
                      "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:q", "awsRegion": "us-east-1"})
