"""Access requests on the stack of template.yaml (moto): the archive, where it is stored, its link."""

from __future__ import annotations

import io
import json
import zipfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import boto3
import pyarrow.fs as pafs
import pytest

from cdp.adapters.exports import S3ExportArchives, stack_export_stores
from cdp.adapters.sources import DynamoSourceStore
from cdp.errors import InvalidIdentifier, MalformedRequest
from cdp.identity.config import load_identity_config
from cdp.lake.person import person_events
from cdp.privacy.export import ExportStores, InMemoryArchives, export_person, run_export
from cdp.settings import Settings
from tests.integration.profileview_support import (
    ACTIVATE_FILE,
    ALICE,
    NOW,
    REPO,
    build_history,
    load_module,
    sqs_record,
)


@dataclass(frozen=True)
class Request:
    id: str
    identifiers: tuple[str, ...] = ()
    profile_id: str | None = None


@pytest.fixture
def stores(stack_environment: dict[str, str], stack_settings: Settings, tmp_path: Path,
           monkeypatch: pytest.MonkeyPatch) -> tuple[ExportStores, dict[str, str]]:
    """Alice's and Bob's history on the stack, one email sent to Alice, the lake on disk."""
    for name, value in stack_environment.items():
        monkeypatch.setenv(name, value)
    ids = build_history(stack_settings, tmp_path / "lake")
    activate = load_module(ACTIVATE_FILE, "cdp_test_activate_for_export")
    activate.record_handler(sqs_record({"segment": "repeat-buyers", "profile_id": ids["alice"],
                                        "change": "entered", "run_id": "run-7", "at": "2024-05-05T00:00:00.000Z"}))
    fs, root = pafs.LocalFileSystem(), str(tmp_path / "lake")

    def read_events(identifiers: Any, first_seen: Any, last_seen: Any, limit: int) -> dict[str, Any]:
        return person_events(fs, root, identifiers, first_seen=first_seen, last_seen=last_seen, limit=limit).to_dict()

    # The stack's stores, but the lake on disk: pyarrow's S3 client cannot reach moto in this process.
    built = stack_export_stores(stack_settings, config=load_identity_config(REPO / "config" / "identity.yaml"),
                                segments=["repeat-buyers", "big-spenders"])
    return replace(built, read_events=read_events), ids


def unzip(body: bytes) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    with zipfile.ZipFile(io.BytesIO(body)) as archive:
        assert sorted(archive.namelist()) == ["events.jsonl", "profile.json"]
        document = json.loads(archive.read("profile.json"))
        events = [json.loads(line) for line in archive.read("events.jsonl").splitlines()]
    return document, events


def test_the_archive_holds_every_event_profile_consent_lifecycle_merge_segment_and_message(stores) -> None:
    export_stores, ids = stores
    archive = export_person("email:Alice@Example.com", export_stores, now=NOW)
    # Every event of the person and no one else's, oldest first
    assert [e["messageId"] for e in archive.events] == [e["messageId"] for e in ALICE]
    assert archive.document["events"]["complete"] is True and archive.document["events"]["count"] == len(ALICE)
    document = archive.document
    assert document["found"] is True and document["profile"]["profile_id"] == ids["alice"]
    assert document["profile"]["identifiers"]["email"] == ["alice@example.com"]
    assert document["profile"]["traits"]["first_name"] == "Alice"
    assert document["consent"]["email"]["granted"] is True
    assert [(c["purpose"], c["granted"], c["message_id"]) for c in document["consent_history"]] == [("email", True, "a3")]
    assert document["lifecycle_history"] and document["absorbed_profiles"]
    assert {e["kind"] for e in document["merge_log"]} >= {"link", "merge"}
    assert [s["segment"] for s in document["segments"]] == ["repeat-buyers"]
    assert [m["segment"] for m in document["messages"]] == ["repeat-buyers"]


def test_provenance_names_the_source_and_first_and_last_seen_of_each_datum(stores, stack_settings) -> None:
    export_stores, _ = stores
    source_id = DynamoSourceStore(stack_settings).register_write_key("web shop", "wk-web").source_id
    events = [{**e, "sourceId": source_id} for e in ALICE]
    export_stores = replace(export_stores, read_events=lambda *args: {"events": events, "matched": len(events)})
    provenance = export_person("user_id:u-alice", export_stores, now=NOW).document["provenance"]
    anon = provenance["identifiers"]["anonymous_id:anon-1"]
    assert anon["sources"] == ["web shop"] and anon["first_seen"] < anon["last_seen"]
    assert anon["events"] == 3
    assert provenance["traits"]["first_name"]["source"] == "web shop"
    assert provenance["traits"]["first_name"]["message_id"] == "a3"
    assert provenance["sources"][source_id]["name"] == "web shop"
    assert provenance["sources"][source_id]["events"] == len(ALICE)


def test_an_export_is_stored_under_exports_once_and_handed_out_by_a_short_lived_link(stores, stack_settings) -> None:
    export_stores, ids = stores
    for _ in range(2):  # a retried export overwrites its own archive
        result = run_export(Request("req-1", ("email:alice@example.com",)), export_stores, now=NOW)
    listed = boto3.client("s3").list_objects_v2(Bucket=stack_settings.lake_bucket, Prefix="exports/")
    assert [o["Key"] for o in listed["Contents"]] == ["exports/req-1.zip"]
    assert result.key == "exports/req-1.zip" and result.found and result.profile_id == ids["alice"]
    body = boto3.client("s3").get_object(Bucket=stack_settings.lake_bucket, Key=result.key)["Body"].read()
    document, events = unzip(body)
    assert document["request_id"] == "req-1" and len(events) == len(ALICE)
    query = parse_qs(urlsplit(result.url).query)
    assert query["X-Amz-Algorithm"] == ["AWS4-HMAC-SHA256"] and query["X-Amz-Expires"] == ["900"]
    assert urlsplit(result.url).path.endswith("/exports/req-1.zip")


def test_a_request_id_that_is_no_object_name_or_a_malformed_identifier_is_refused(stores) -> None:
    for request_id in ("", "../profiles/x", "a/b", "x" * 129):
        with pytest.raises(MalformedRequest):
            run_export(Request(request_id, ("user_id:u-alice",)), stores[0], now=NOW)
    with pytest.raises(InvalidIdentifier):
        run_export(Request("req-5", ("email",)), stores[0], now=NOW)


def test_the_link_signer_is_sigv4_whatever_the_default_client(stack_settings) -> None:
    url = S3ExportArchives(stack_settings).presigned_url("exports/x.zip", 60)
    assert "X-Amz-Signature=" in url and "AWSAccessKeyId=" not in url


@dataclass
class Person:
    identifiers: list[str]
    profile_ids: list[str]


@dataclass
class PrivacyRequestRecord:
    """The shape of a privacy request record: ``request_id``, ``identifier`` and the resolved ``person``."""

    request_id: str
    identifier: str
    person: Person


@dataclass
class Holder:
    export: ExportStores


def test_the_person_is_found_by_profile_id_or_request_record_and_an_unknown_one_is_told_so(stores) -> None:
    export_stores, ids = stores
    archives = InMemoryArchives()
    export_stores = replace(export_stores, archives=archives)
    by_id = run_export(Request("req-2", profile_id=ids["alice"]), export_stores, now=NOW)
    assert by_id.found and by_id.profile_id == ids["alice"] and by_id.events == len(ALICE)
    # A privacy request record, with stores that hold the export's
    record = PrivacyRequestRecord("req-6", "email:alice@example.com",
                                  Person(["email:alice@example.com"], [ids["alice"]]))
    from_record = run_export(record, Holder(export_stores), now=NOW)
    assert from_record.request_id == "req-6" and from_record.profile_id == ids["alice"]
    # Nobody: an archive all the same, that says nothing was found
    nobody = run_export(Request("req-3", ("email:nobody@example.com",)), export_stores, now=NOW)
    document, events = unzip(archives.objects["exports/req-3.zip"])
    assert not nobody.found and document["found"] is False and events == []
