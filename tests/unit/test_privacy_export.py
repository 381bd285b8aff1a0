"""Access-request archives on in-memory stores: the archive's shape, provenance, and the crash matrix."""

from __future__ import annotations

import io
import json
import zipfile
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

import pytest

from cdp.errors import InvalidConfig, StoreError
from cdp.identity import IdentityConfig, InMemoryIdentityStore, resolve_batch
from cdp.privacy.export import ExportStores, InMemoryArchives, provenance, run_export
from cdp.profiles.messages import InMemoryMessageJournal
from cdp.segments.membership import InMemoryMembershipStore

NOW = datetime(2024, 5, 10, tzinfo=UTC)


def ev(mid: str, ts: str, **fields: Any) -> dict[str, Any]:
    return {"messageId": mid, "type": "identify", "timestamp": ts, "receivedAt": ts, "sourceId": "src_web", **fields}


EVENTS = [ev("m1", "2024-05-01T10:00:00.000Z", anonymousId="a1", traits={"plan": "free"}),
          ev("m2", "2024-05-02T10:00:00.000Z", userId="u1", anonymousId="a1",
             traits={"plan": "pro", "email": "u1@example.com"}, sourceId="src_crm")]


@dataclass(frozen=True)
class Request:
    id: str
    identifiers: tuple[str, ...]


class Sources:
    def list_sources(self) -> list[Any]:
        @dataclass
        class Source:
            source_id: str
            name: str

        return [Source("src_web", "web shop"), Source("src_crm", "crm import")]


class FlakyArchives(InMemoryArchives):
    """Dies once at the named step: ``before_put`` (nothing stored) or ``after_put`` (stored, no link)."""

    def __init__(self, die: str) -> None:
        super().__init__()
        self.die = die

    def put(self, key: str, body: bytes) -> None:
        if self.die == "before_put":
            self.die = ""
            raise StoreError("export_store_unavailable", retryable=True)
        super().put(key, body)

    def presigned_url(self, key: str, seconds: int) -> str:
        if self.die == "after_put":
            self.die = ""
            raise StoreError("export_store_unavailable", retryable=True)
        return super().presigned_url(key, seconds)


@pytest.fixture
def stores() -> ExportStores:
    store, config = InMemoryIdentityStore(), IdentityConfig()
    resolve_batch(EVENTS, store, config=config, now=NOW)

    def read_events(identifiers: Any, first_seen: Any, last_seen: Any, limit: int) -> dict[str, Any]:
        return {"events": EVENTS[-limit:], "matched": len(EVENTS), "more": False, "days_read": {}}

    return ExportStores(store=store, memberships=InMemoryMembershipStore(), journal=InMemoryMessageJournal(),
                        read_events=read_events, archives=InMemoryArchives(), config=config, sources=Sources())


def unzip(body: bytes) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    with zipfile.ZipFile(io.BytesIO(body)) as archive:
        return (json.loads(archive.read("profile.json")),
                [json.loads(line) for line in archive.read("events.jsonl").splitlines()])


def test_the_archive_is_a_json_document_and_the_events_as_json_lines(stores: ExportStores) -> None:
    result = run_export(Request("r1", ("user_id:u1",)), stores, now=NOW)
    document, events = unzip(stores.archives.objects["exports/r1.zip"])  # type: ignore[attr-defined]
    assert document["format"] == "cdp-export/1" and document["found"] is True
    assert document["profile"]["traits"] == {"plan": "pro", "email": "u1@example.com"}
    assert [e["messageId"] for e in events] == ["m1", "m2"] and result.events == 2
    assert document["not_included"] and result.expires_at == "2024-05-10T00:15:00.000Z"


def test_provenance_tells_which_source_sent_each_identifier_and_trait_and_when() -> None:
    found = provenance(EVENTS, {"anonymous_id": ["a1"], "user_id": ["u1"]}, {"src_web": "web shop"},
                       IdentityConfig())
    assert found["identifiers"]["anonymous_id:a1"] == {
        "sources": ["web shop", "src_crm"], "events": 2,
        "first_seen": "2024-05-01T10:00:00.000Z", "last_seen": "2024-05-02T10:00:00.000Z"}
    assert found["traits"]["plan"]["source"] == "src_crm" and found["traits"]["plan"]["message_id"] == "m2"
    assert found["traits"]["plan"]["first_seen"] == "2024-05-01T10:00:00.000Z"
    assert found["sources"]["src_web"] == {"name": "web shop", "events": 1, "first_seen": "2024-05-01T10:00:00.000Z",
                                           "last_seen": "2024-05-01T10:00:00.000Z"}


@pytest.mark.parametrize("die", ["before_put", "after_put"])
def test_an_export_that_died_is_finished_by_its_retry_with_one_archive(stores: ExportStores, die: str) -> None:
    archives = FlakyArchives(die)
    stores = replace(stores, archives=archives)
    with pytest.raises(StoreError):
        run_export(Request("r2", ("user_id:u1",)), stores, now=NOW)
    assert list(archives.objects) == ([] if die == "before_put" else ["exports/r2.zip"])
    result = run_export(Request("r2", ("user_id:u1",)), stores, now=NOW)
    assert list(archives.objects) == ["exports/r2.zip"] and result.url.startswith("memory://exports/r2.zip")


def test_an_export_run_again_after_it_finished_overwrites_its_own_archive(stores: ExportStores) -> None:
    first = run_export(Request("r3", ("user_id:u1",)), stores, now=NOW)
    again = run_export(Request("r3", ("user_id:u1",)), stores, now=NOW)
    assert list(stores.archives.objects) == ["exports/r3.zip"]  # type: ignore[attr-defined]
    assert first.bytes == again.bytes


def test_the_link_lives_an_hour_at_most(stores: ExportStores) -> None:
    result = run_export(Request("r4", ("user_id:u1",)), replace(stores, link_seconds=86_400), now=NOW)
    assert result.url.endswith("expires=3600") and result.expires_at == "2024-05-10T01:00:00.000Z"


def test_stores_without_the_exports_are_a_configuration_error(stores: ExportStores) -> None:
    with pytest.raises(InvalidConfig):
        run_export(Request("r5", ("user_id:u1",)), object(), now=NOW)
