"""Privacy requests, suppression and the erasure job on in-memory stores (no I/O).

The crash matrix of docs/architecture.md ("Erasure") is tested here: the job dies before, during
or after each step and is run again; finished steps are never redone and the result is complete.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from cdp.collect import IngestRequest, ingest
from cdp.errors import InvalidIdentifier, MalformedRequest
from cdp.identity.config import IdentityConfig
from cdp.identity.profile import Profile
from cdp.identity.store import InMemoryIdentityStore, MergeLogEntry
from cdp.jobs.privacy_job import RUNNERS, PrivacyStores, accept_request, overdue, run_request
from cdp.privacy.erase import STEPS, register_notice, registered_notices, run_erase
from cdp.privacy.matching import Needles, days_query
from cdp.privacy.requests import PrivacyRequest, new_request, one_month_after, parse_request, resolve_person
from cdp.privacy.suppression import SuppressionList, event_identifiers, identifier_hash
from tests.unit.collect_fakes import ListSink

NOW = datetime(2026, 1, 31, 9, 0, tzinfo=UTC)
CONFIG = IdentityConfig()


class Crash(BaseException):
    """A process dying: no ``except Exception`` catches it."""


class FakePrivacy:
    def __init__(self) -> None:
        self.requests: dict[str, dict[str, Any]] = {}
        self.suppressed: dict[str, str] = {}
        self.reads = 0
        self.crash_on_put: int | None = None
        self.puts = 0

    def put_request(self, request: PrivacyRequest) -> None:
        self.puts += 1
        if self.crash_on_put == self.puts:
            raise Crash
        self.requests[request.request_id] = json.loads(json.dumps(request.to_dict()))

    def get_request(self, request_id: str) -> PrivacyRequest | None:
        data = self.requests.get(request_id)
        return PrivacyRequest.from_dict(json.loads(json.dumps(data))) if data else None

    def open_requests(self) -> dict[str, str]:
        return {k: v["due_at"] for k, v in self.requests.items() if v["status"] != "done"}

    def suppressed_hashes(self) -> set[str]:
        self.reads += 1
        return set(self.suppressed)

    def suppressed_by(self, hash_: str) -> str | None:
        return self.suppressed.get(hash_)

    def suppress(self, hashes: Any, *, request_id: str, at: str) -> None:
        for h in hashes:
            self.suppressed[h] = request_id

    def unsuppress(self, hashes: Any) -> None:
        for h in hashes:
            self.suppressed.pop(h, None)


class FakeErasure:
    """Counts each store's erasure calls; ``crash`` names a call that dies (before or after acting)."""

    def __init__(self, crash: tuple[str, str] | None = None) -> None:
        self.calls: dict[str, int] = {}
        self.crash = crash
        self.erased = False

    def _call(self, name: str, result: dict[str, int]) -> dict[str, int]:
        if self.crash == (name, "before"):
            self.crash = None
            raise Crash
        self.calls[name] = self.calls.get(name, 0) + 1
        if self.crash == (name, "after"):
            self.crash = None
            raise Crash
        return result

    def lake_days(self, needles: Needles, days: list[str]) -> list[str]:
        return self._call("lake_days", {}) or days[:2]  # type: ignore[return-value]

    def erase_event_days(self, days: list[str], needles: Needles) -> dict[str, int]:
        return self._call("erase_event_days", {"lake:events:rows": 0 if self.erased else 7})

    def erase_snapshots(self, needles: Needles) -> dict[str, int]:
        return self._call("erase_snapshots", {"lake:identity:objects": 1})

    def erase_objects(self, needles: Needles) -> dict[str, int]:
        return self._call("erase_objects", {"lake:quarantine:objects": 1})

    def erase_items(self, person: Any, needles: Needles) -> dict[str, int]:
        result = self._call("erase_items", {"dynamodb:profiles": len(person.profile_ids)})
        self.erased = True
        return result


def _verify(needles: Needles, days: list[str]) -> dict[str, Any]:
    return {"stores_checked": 12, "remaining": 0, "by_store": {}, "findings": []}


def _merged_person() -> InMemoryIdentityStore:
    """alice: a live profile holding a tombstone merged into it (an earlier device)."""
    store = InMemoryIdentityStore()
    store.put_profile(Profile("p-alice", identifiers=["user_id:alice-1", "email:alice@example.com",
                                                      "anonymous_id:phone-a", "anonymous_id:tablet-a"],
                              first_seen="2026-01-02T10:00:00.000Z", last_seen="2026-01-20T10:00:00.000Z"))
    store.put_profile(Profile("p-tablet", identifiers=["anonymous_id:tablet-a"], merged_into="p-alice",
                              first_seen="2025-12-30T10:00:00.000Z", last_seen="2026-01-03T10:00:00.000Z"))
    store.claim_identifiers({i: "p-alice" for i in store.profiles["p-alice"].identifiers})
    store.append_merge_log([MergeLogEntry("p-alice", "merge", "2026-01-03T10:00:00.000Z",
                                          identifiers=("anonymous_id:tablet-a",), other_profile_ids=("p-tablet",))])
    return store


def _accepted(kind: str = "erase", identifier: str = "email:Alice@Example.com") -> tuple[PrivacyStores, str, list]:
    privacy, queued = FakePrivacy(), []
    stores = PrivacyStores(privacy=privacy, identity=_merged_person(), erasure=FakeErasure(), verify=_verify,
                           notices=[])
    request = accept_request({"kind": kind, "identifier": identifier}, config=CONFIG, privacy=privacy,
                             identity=stores.identity, enqueue=queued.append, now=NOW)
    return stores, request.request_id, queued


def _later() -> datetime:
    return NOW + timedelta(minutes=1)


# ---------------------------------------------------------------- requests


def test_a_request_resolves_the_identifier_to_the_whole_person_through_merges() -> None:
    person = resolve_person(["email:alice@example.com"], _merged_person())
    assert person.profile_ids == ["p-alice", "p-tablet"]
    assert "anonymous_id:tablet-a" in person.identifiers and len(person.identifiers) == 4
    assert (person.first_seen, person.last_seen) == ("2025-12-30T10:00:00.000Z", "2026-01-20T10:00:00.000Z")


def test_request_ids_are_recognised_and_anything_else_is_not() -> None:
    from cdp.privacy.requests import is_request_id

    assert is_request_id(new_request("erase", "user_id:1", now=NOW).request_id)
    assert not is_request_id("pr-" + "x" * 3000) and not is_request_id("request#pr-1")


def test_the_due_date_is_one_month_out_and_the_end_of_a_short_month_caps_it() -> None:
    assert one_month_after(NOW) == datetime(2026, 2, 28, 9, 0, tzinfo=UTC)
    assert one_month_after(datetime(2026, 12, 15, tzinfo=UTC)) == datetime(2027, 1, 15, tzinfo=UTC)


@pytest.mark.parametrize(("body", "error", "reason"), [
    ({"kind": "erase", "identifier": "email:nope"}, InvalidIdentifier, "not a valid email"),
    ({"kind": "erase", "identifier": "iban:FR76"}, InvalidIdentifier, "unknown identifier type 'iban'"),
    ({"kind": "erase", "identifier": 42}, InvalidIdentifier, "identifier is missing: give <type>:<value>"),
    ({"kind": "delete", "identifier": "user_id:1"}, MalformedRequest,
     "kind must be one of erase, export, suppress, unsuppress"),
    (["erase"], MalformedRequest, "body must be a JSON object with kind and identifier"),
])
def test_a_malformed_request_names_the_problem(body: Any, error: type, reason: str) -> None:
    with pytest.raises(error) as raised:
        parse_request(body, config=CONFIG)
    assert raised.value.reason == reason


def test_accepting_an_erase_suppresses_every_identifier_of_the_person_at_once_and_queues_the_job() -> None:
    stores, request_id, queued = _accepted()
    assert queued == [request_id]
    person = stores.privacy.get_request(request_id).person  # type: ignore[union-attr]
    assert set(stores.privacy.suppressed) == {identifier_hash(i) for i in person.identifiers}  # type: ignore[attr-defined]


def test_the_request_record_and_its_view_never_show_a_plain_identifier_in_the_audit_trail() -> None:
    stores, request_id, _ = _accepted()
    view = stores.privacy.get_request(request_id).view()  # type: ignore[union-attr]
    assert "alice" not in json.dumps(view["audit"]) and "alice" not in json.dumps(view)


def test_an_unknown_identifier_is_accepted_with_nothing_found_and_still_suppressed() -> None:
    stores, request_id, _ = _accepted("suppress", "user_id:nobody")
    request = stores.privacy.get_request(request_id)
    assert request.status == "done" and request.result == {"nothing_found": True}  # type: ignore[union-attr]
    assert identifier_hash("user_id:nobody") in stores.privacy.suppressed  # type: ignore[attr-defined]


def test_unsuppress_lifts_the_suppression_of_the_whole_person() -> None:
    stores, _, _ = _accepted("suppress")
    accept_request({"kind": "unsuppress", "identifier": "user_id:alice-1"}, config=CONFIG, privacy=stores.privacy,
                   identity=stores.identity, enqueue=lambda _: None, now=NOW)
    assert stores.privacy.suppressed == {}  # type: ignore[attr-defined]


def test_an_export_request_stores_the_persons_archive_and_records_its_link_and_is_done() -> None:
    from cdp.privacy.export import ExportStores, InMemoryArchives
    from cdp.profiles.messages import InMemoryMessageJournal
    from cdp.segments.membership import InMemoryMembershipStore

    # Given an accepted export request about alice (the whole person resolved when accepted)
    stores, request_id, queued = _accepted("export")
    assert queued == [request_id] and set(RUNNERS) == {"erase", "export", "suppress", "unsuppress"}
    archives = InMemoryArchives()
    stores.export = ExportStores(
        store=stores.identity, memberships=InMemoryMembershipStore(), journal=InMemoryMessageJournal(),
        read_events=lambda ids, first, last, limit: {"events": [], "more": False, "days_read": {}},
        archives=archives, config=CONFIG)
    # When the job runs it, twice (a redelivery)
    run_request(request_id, stores, now=_later)
    request = run_request(request_id, stores, now=_later)
    # Then one archive under the request's name, and the record holds its link and is done
    assert request is not None and request.status == "done"
    assert list(archives.objects) == [f"exports/{request_id}.zip"]
    stored = stores.privacy.get_request(request_id)
    assert stored is not None and stored.status == "done"
    assert stored.result["key"] == f"exports/{request_id}.zip" and stored.result["profile_id"] == "p-alice"
    assert stored.result["url"].startswith("memory://exports/") and stored.result["found"] is True
    assert stored.view()["result"]["expires_at"] == "2026-01-31T09:16:00.000Z"  # 15 minutes after the run
    assert [a["what"] for a in stored.audit].count("exported") == 2


def test_an_open_request_past_its_due_date_is_overdue() -> None:
    stores, request_id, _ = _accepted()
    assert overdue(stores.privacy, now=NOW + timedelta(days=27)) == []
    assert overdue(stores.privacy, now=NOW + timedelta(days=29)) == [request_id]


# ---------------------------------------------------------------- suppression


class CountingStore:
    def __init__(self, hashes: set[str]) -> None:
        self.hashes, self.reads = hashes, 0

    def suppressed_hashes(self) -> set[str]:
        self.reads += 1
        return self.hashes


def test_the_suppression_list_is_read_once_per_ttl_not_per_event() -> None:
    clock = [0.0]
    store = CountingStore({identifier_hash("user_id:u1")})
    suppression = SuppressionList(store, ttl_s=30, clock=lambda: clock[0])  # type: ignore[arg-type]
    assert all(suppression.any_suppressed(["user_id:u1"]) for _ in range(100))
    assert store.reads == 1
    clock[0] = 31.0
    suppression.any_suppressed(["user_id:u2"])
    assert store.reads == 2


def test_an_event_is_checked_by_user_id_anonymous_id_and_a_lower_cased_email() -> None:
    event = {"userId": " 42 ", "anonymousId": "a-1", "context": {"traits": {"email": "Bob@X.io"}}}
    assert event_identifiers(event) == ["user_id:42", "anonymous_id:a-1", "email:bob@x.io"]


def test_the_collector_drops_and_counts_events_about_a_suppressed_person_and_quarantines_none_of_them() -> None:
    from tests.unit.test_collect_ingest import FakeSources, ListQuarantine, auth

    suppression = SuppressionList(CountingStore({identifier_hash("email:bob@x.io")}))  # type: ignore[arg-type]
    body = {"batch": [{"type": "track", "userId": "u1", "event": "Kept"},
                      {"type": "identify", "userId": "u2", "traits": {"email": "BOB@x.io"}},
                      {"type": "track", "anonymousId": "z", "context": {"traits": {"email": "bob@x.io"}}}]}
    sink, quarantine = ListSink(), ListQuarantine()
    result = ingest(IngestRequest(route="batch", body=json.dumps(body).encode(), authorization=auth()),
                    sources=FakeSources(), sink=sink, quarantine=quarantine, now=NOW, suppression=suppression)
    assert (result.accepted, result.suppressed, result.rejected) == (1, 2, ())
    assert [r.event["userId"] for r in sink.records] == ["u1"] and quarantine.entries == []


def test_unify_drops_events_about_a_suppressed_person_by_any_identifier_it_extracts() -> None:
    from cdp.jobs.unify_job import unify_records
    from cdp.streams import DeliveredRecord

    def record(n: int, event: dict[str, Any]) -> DeliveredRecord:
        return DeliveredRecord(shard_id="s", sequence_number=str(n), partition_key="k",
                               data=json.dumps(event).encode())

    store = InMemoryIdentityStore()
    suppression = SuppressionList(CountingStore({identifier_hash("phone:+33612345678")}))  # type: ignore[arg-type]
    events = [{"type": "identify", "messageId": "m1", "userId": "u9", "traits": {"phone": "+33 6 12 34 56 78"},
               "timestamp": "2026-01-01T00:00:00.000Z"},
              {"type": "track", "messageId": "m2", "userId": "u8", "event": "E", "timestamp": "2026-01-01T00:00:00.000Z"}]
    result = unify_records([record(n, e) for n, e in enumerate(events, 1)], store, config=CONFIG, now=NOW,
                           suppression=suppression)
    assert result.suppressed == 1 and list(result.outcome.applied) == ["m2"]
    assert store.get_pointers(["user_id:u9"]) == {}


# ---------------------------------------------------------------- the lake query


def test_the_lake_query_is_one_query_over_the_persons_days_with_hostile_values_quoted() -> None:
    sql = days_query(Needles.of(["user_id:o'brien", "email:a@x.io"]), ["2026-01-02", "2026-01-01", "2026-01-03"])
    assert sql is not None and sql.count("SELECT") == 1
    assert "dt BETWEEN '2026-01-01' AND '2026-01-03'" in sql
    assert "user_id IN ('o''brien')" in sql and "email IN ('a@x.io')" in sql
    assert "strpos(traits, '\"o''brien\"') > 0" in sql
    assert days_query(Needles.of(["user_id:x"]), []) is None


# ---------------------------------------------------------------- the erasure job and its crash matrix


def _erase(stores: PrivacyStores, request_id: str) -> PrivacyRequest:
    request = stores.privacy.get_request(request_id)
    assert request is not None
    return run_erase(request, requests=stores.privacy, suppression=stores.privacy,  # type: ignore[arg-type]
                     identity=stores.identity, stores=stores.erasure, verify=_verify,  # type: ignore[arg-type]
                     now=_later, notices=stores.notices)


def test_an_erasure_runs_every_step_once_and_reports_what_it_removed_per_store() -> None:
    stores, request_id, _ = _accepted()
    request = _erase(stores, request_id)
    assert request.status == "done" and list(request.steps) == list(STEPS)
    assert request.result["removed"] == {"lake:events:rows": 7, "lake:identity:objects": 1,
                                         "lake:quarantine:objects": 1, "dynamodb:profiles": 2}
    assert request.result["remaining"] == 0
    assert stores.erasure.calls == dict.fromkeys(  # type: ignore[union-attr]
        ["lake_days", "erase_event_days", "erase_snapshots", "erase_objects", "erase_items"], 1)


ERASE_CALLS = ["lake_days", "erase_event_days", "erase_snapshots", "erase_objects", "erase_items"]
STEP_OF = {"lake_days": "lake_events", "erase_event_days": "lake_events", "erase_snapshots": "lake_snapshots",
           "erase_objects": "lake_objects", "erase_items": "tables"}


@pytest.mark.parametrize("when", ["before", "after"])
@pytest.mark.parametrize("call", ERASE_CALLS)
def test_a_crash_before_or_after_any_store_is_erased_is_resumed_without_redoing_finished_steps(
        call: str, when: str) -> None:
    stores, request_id, _ = _accepted()
    stores.erasure = FakeErasure(crash=(call, when))
    with pytest.raises(Crash):
        _erase(stores, request_id)
    # The record holds the finished steps; the crashed one is not among them.
    saved = stores.privacy.get_request(request_id)
    assert saved is not None and saved.status == "running"
    done_before = ERASE_CALLS[:ERASE_CALLS.index(call)]
    request = _erase(stores, request_id)
    assert request.status == "done" and request.result["remaining"] == 0
    for name in ERASE_CALLS:
        # Finished steps ran once. The crashed step runs again whole: what of it had acted before
        # the crash (the lake query and the rewrite are one step) acts twice, idempotently.
        acted = ERASE_CALLS.index(name) < ERASE_CALLS.index(call) or (name == call and when == "after")
        again = STEP_OF[name] == STEP_OF[call] and acted
        assert stores.erasure.calls[name] == 1 + again, (name, done_before)  # type: ignore[union-attr]


@pytest.mark.parametrize("step", range(1, len(STEPS) + 1))
def test_a_crash_while_saving_a_checkpoint_redoes_only_that_step(step: int) -> None:
    stores, request_id, _ = _accepted()
    privacy: FakePrivacy = stores.privacy  # type: ignore[assignment]
    privacy.crash_on_put = privacy.puts + step
    with pytest.raises(Crash):
        _erase(stores, request_id)
    privacy.crash_on_put = None
    request = _erase(stores, request_id)
    assert request.status == "done" and list(request.steps) == list(STEPS)
    assert all(n <= 2 for n in stores.erasure.calls.values())  # type: ignore[union-attr]


def test_a_resumed_erasure_still_knows_the_person_after_their_profiles_are_gone() -> None:
    stores, request_id, _ = _accepted()
    stores.erasure = FakeErasure(crash=("erase_items", "after"))
    with pytest.raises(Crash):
        _erase(stores, request_id)
    stores.identity = InMemoryIdentityStore()  # the profiles were deleted before the crash
    request = _erase(stores, request_id)
    assert request.person.profile_ids == ["p-alice", "p-tablet"] and request.status == "done"


def test_running_a_finished_erasure_again_does_nothing() -> None:
    stores, request_id, _ = _accepted()
    _erase(stores, request_id)
    stores.erasure = FakeErasure(crash=("lake_days", "before"))
    assert _erase(stores, request_id).status == "done"
    assert stores.erasure.calls == {}  # type: ignore[union-attr]


def test_a_second_erase_of_an_erased_person_is_a_no_op_that_names_the_first() -> None:
    stores, first, _ = _accepted()
    _erase(stores, first)
    stores.identity = InMemoryIdentityStore()
    again = accept_request({"kind": "erase", "identifier": "email:alice@example.com"}, config=CONFIG,
                           privacy=stores.privacy, identity=stores.identity, enqueue=lambda _: None, now=NOW)
    assert again.result == {"nothing_found": True, "already_erased_by": first}
    done = run_request(again.request_id, stores, now=_later)
    assert done is not None and done.status == "done" and done.result["already_erased_by"] == first


def test_remaining_traces_after_an_erasure_fail_the_request() -> None:
    stores, request_id, _ = _accepted()
    request = stores.privacy.get_request(request_id)
    assert request is not None
    failed = run_erase(request, requests=stores.privacy, suppression=stores.privacy,  # type: ignore[arg-type]
                       identity=stores.identity, stores=stores.erasure,  # type: ignore[arg-type]
                       verify=lambda n, d: {"remaining": 3, "stores_checked": 12}, now=_later, notices=[])
    assert failed.status == "failed" and failed.result["remaining"] == 3
    # The stores are all done again on the next run (something wrote the person back meanwhile).
    assert list(failed.steps) == ["suppress", "resolve", "notices"]
    again = _erase(stores, request_id)
    assert again.status == "done" and stores.erasure.calls["erase_items"] == 2  # type: ignore[union-attr]


class ListNotice:
    name = "test-list"

    def __init__(self) -> None:
        self.told: list[tuple[str, list[str]]] = []

    def notify(self, request_id: str, person: Any) -> dict[str, Any]:
        self.told.append((request_id, list(person.identifiers)))
        return {"removed": 1}


def test_registered_destinations_are_told_of_the_erasure_with_every_identifier_of_the_person() -> None:
    notice = ListNotice()
    register_notice(notice)
    try:
        stores, request_id, _ = _accepted()
        stores.notices = None
        request = _erase(stores, request_id)
    finally:
        registered_notices().clear()
        from cdp.privacy import erase

        erase._NOTICES.clear()
    assert notice.told == [(request_id, request.person.identifiers)]
    assert request.steps["notices"]["destinations"] == 1


class FakeAudience:
    def __init__(self, removed: list[tuple[str, Any]], name: str) -> None:
        self.removed, self.name = removed, name

    def remove(self, people: Any, **_: Any) -> Any:
        self.removed.extend((self.name, p) for p in people)


class FakeTargets:
    """meta-ads has a token; google-ads' secret does not exist."""

    def __init__(self) -> None:
        self.removed: list[tuple[str, Any]] = []

    def audience(self, destination: Any) -> FakeAudience:
        from cdp.errors import StoreError

        if destination.secret == "google-ads":
            raise StoreError("secret_not_found", retryable=False)
        return FakeAudience(self.removed, destination.name)


def test_an_erasure_takes_the_person_out_of_each_ad_audience_and_names_those_it_could_not_tell() -> None:
    from cdp.activation.audiences.sync import StoreProfileViews
    from cdp.activation.destinations import AudienceErasureNotice, parse_destination

    files = {"m": "type: meta_audience\nsegments: [vip]\nsecret: meta-ads\naudience_id: '1234'\n",
             "g": "type: google_audience\nsegments: [vip]\nsecret: google-ads\naccount_id: '1234567890'\n"
                  "user_list_id: '777'\n",
             "h": "type: webhook\nsegments: [vip]\nsecret: crm\nurl: https://e.com\n"}
    destinations = {n: parse_destination(t, f"{n}.yaml") for n, t in files.items()}
    # Given an erase request about alice and ad audience destinations (google's secret missing)
    stores, request_id, _ = _accepted()
    targets = FakeTargets()
    stores.notices = [AudienceErasureNotice(destinations, targets, StoreProfileViews(stores.identity))]
    # When the erasure runs
    request = _erase(stores, request_id)
    # Then meta was asked to remove her by her live profile's email, the webhook was not, and the
    # record names google as not told; the erasure still finished
    assert [(name, keys.emails) for name, keys in targets.removed] == [("m", ("alice@example.com",))]
    assert request.status == "done"
    told = request.steps["notices"]["notice:ad_audiences"]
    assert "'asked': ['m']" in told and "'g': 'no_credentials'" in told


# ---------------------------------------------------------------- replays and unmerge respect suppression


def _is_bob(event: Any) -> bool:
    return event.get("userId") == "bob"


def test_quarantine_replay_leaves_events_about_a_suppressed_person_in_quarantine() -> None:
    from cdp.collect.replay import replay_quarantine
    from tests.unit.test_collect_replay import MemoryQuarantine, event_entry

    key = "quarantine/dt=2024-05-01/a.jsonl"
    bob = {"type": "track", "userId": "bob", "event": "E", "messageId": "m2"}
    ann = {"type": "track", "userId": "ann", "event": "E", "messageId": "m1"}
    store = MemoryQuarantine({key: [event_entry(ann), event_entry(bob)]})
    sink = ListSink()
    report = replay_quarantine(store, sink, suppressed=_is_bob)
    assert (report.replayed, report.suppressed) == (1, 1)
    assert [r.event["userId"] for r in sink.records] == ["ann"]


class MemoryFailures:
    def __init__(self, records: list[Any]) -> None:
        self.records = {r.key: r for r in records}

    def keys(self, function: str | None = None) -> list[str]:
        return sorted(self.records)

    def read(self, key: str) -> Any:
        return self.records[key]

    def delete(self, key: str) -> None:
        self.records.pop(key)


class RawWriter:
    def __init__(self) -> None:
        self.put: list[Any] = []

    def put_raw(self, records: Any) -> None:
        self.put.extend(records)


def test_failures_replay_does_not_put_records_about_a_suppressed_person_back_on_the_stream() -> None:
    from cdp.failures import FailedRecord, replay_failures

    def failed(seq: str, user: str) -> FailedRecord:
        data = json.dumps({"type": "track", "userId": user, "event": "E", "messageId": seq}).encode()
        return FailedRecord("unify", "s-0", seq, "k", data, "2026-01-01T00:00:00.000Z", "isolated", False, 1,
                            "2026-01-01T00:00:00.000Z", seq)

    writer = RawWriter()
    report = replay_failures(MemoryFailures([failed("1", "ann"), failed("2", "bob")]), None,  # type: ignore[arg-type]
                             None, writer, suppressed=_is_bob)  # type: ignore[arg-type]
    assert (report.replayed, report.suppressed) == (1, 1)
    assert [r.sequence_number for r in writer.put] == ["1"]


def test_an_unmerge_rebuild_replays_no_event_about_a_suppressed_person() -> None:
    from cdp.jobs.unmerge_job import _unsuppressed

    events = [{"userId": "ann"}, {"userId": "bob"}]
    assert _unsuppressed(events, _is_bob) == [{"userId": "ann"}]
    assert _unsuppressed(events, None) == events


class DownStore:
    def __init__(self) -> None:
        self.up = False
        self.reads = 0

    def suppressed_hashes(self) -> set[str]:
        from cdp.errors import StoreError

        self.reads += 1
        if not self.up:
            raise StoreError("could not read the suppression list")
        return {identifier_hash("user_id:u1")}


def test_the_collectors_list_fails_open_and_tries_again_soon_while_unifys_fails_closed() -> None:
    from cdp.errors import StoreError

    clock = [0.0]
    store = DownStore()
    collector = SuppressionList(store, clock=lambda: clock[0], fail_open=True)  # type: ignore[arg-type]
    assert collector.any_suppressed(["user_id:u1"]) is False and collector.read_failures == 1
    clock[0] = 1.0
    collector.any_suppressed(["user_id:u1"])
    assert store.reads == 1  # not a read per event while the table is down
    store.up, clock[0] = True, 6.0
    assert collector.any_suppressed(["user_id:u1"]) is True
    with pytest.raises(StoreError):
        SuppressionList(DownStore()).any_suppressed(["user_id:u1"])  # type: ignore[arg-type]
