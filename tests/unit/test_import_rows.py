"""Bulk import: rows become the collector's events with stable ids; bad rows are quarantined, never dropped."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import pytest

from cdp.collect.ingest import QuarantineEntry
from cdp.errors import InvalidEvent
from cdp.identity.config import load_identity_config
from cdp.imports.mapping import parse_mapping
from cdp.imports.rows import message_id, row_to_event
from cdp.imports.run import ImportReport, Pacer, Row, import_rows

from .collect_fakes import ListSink

REPO = Path(__file__).resolve().parents[2]
IDENTITY = load_identity_config(REPO / "config" / "identity.yaml")
NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
CONTACTS = parse_mapping("""\
type: identify
source: crm
identifiers: {user_id: id, email: email, crm_id: ref}
traits:
  plan: plan
  ltv: {column: ltv, type: number}
  vip: {column: vip, type: boolean}
timestamp: updated
""", "contacts.yaml", identity=IDENTITY)
ORDERS = parse_mapping("""\
type: track
identifiers: {user_id: customer, email: email}
event: Order Completed
properties: {order_id: order, revenue: {column: total, type: number}}
message_id: [order]
""", "orders.yaml", identity=IDENTITY)


class ListQuarantine:
    def __init__(self) -> None:
        self.entries: list[QuarantineEntry] = []

    def put(self, entries: Sequence[QuarantineEntry]) -> None:
        self.entries.extend(entries)


def _event(row: dict, mapping=CONTACTS, number: int = 1, file_id: str = "contacts.csv") -> dict:
    return row_to_event(row, mapping=mapping, identity=IDENTITY, source_id=mapping.source_id, file_id=file_id,
                        row_number=number)


def _run(rows: list[Row], mapping=CONTACTS, report: ImportReport | None = None, **kwargs):
    sink, quarantine = ListSink(), ListQuarantine()
    report = report or ImportReport(source_id=mapping.source_id, mapping=mapping.name, file="contacts.csv")
    import_rows(rows, mapping=mapping, identity=IDENTITY, report=report, sink=sink, quarantine=quarantine,
                now=NOW, **kwargs)
    return report, sink, quarantine


def test_an_identify_row_puts_identifiers_and_traits_where_the_sdks_do() -> None:
    event = _event({"id": "42", "email": "ada@example.org", "ref": "CRM-1", "plan": "pro", "ltv": "10.5",
                    "vip": "yes", "updated": "2026-10-01"})
    assert event["type"] == "identify" and event["userId"] == "42"
    assert event["traits"] == {"email": "ada@example.org", "crm_id": "CRM-1", "plan": "pro", "ltv": 10.5,
                               "vip": True}
    assert event["timestamp"] == "2026-10-01"
    assert event["context"]["import"] == {"source": "crm", "file": "contacts.csv", "row": 1}


def test_a_track_row_carries_identifying_traits_in_its_context() -> None:
    event = _event({"customer": "7", "email": "a@example.org", "order": "o-1", "total": "12"}, ORDERS)
    assert event["event"] == "Order Completed" and event["properties"] == {"order_id": "o-1", "revenue": 12}
    assert event["context"]["traits"] == {"email": "a@example.org"}


def test_empty_cells_are_left_out_rather_than_set_empty() -> None:
    event = _event({"id": "42", "email": "", "plan": None, "ltv": " "})
    assert "traits" not in event


def test_a_row_with_only_an_email_gets_the_same_derived_anonymous_id_every_time() -> None:
    first = _event({"email": "ada@example.org"}, number=1)
    again = _event({"email": "ada@example.org", "plan": "pro"}, number=9, file_id="other.csv")
    assert first["anonymousId"] == again["anonymousId"]
    assert first["anonymousId"].startswith("import-") and "userId" not in first


@pytest.mark.parametrize(("column", "value", "reason"), [
    ("ltv", "lots", "invalid_number"), ("vip", "maybe", "invalid_boolean"), ("ltv", "nan", "invalid_number"),
])
def test_a_value_that_does_not_convert_is_refused_with_its_reason(column: str, value: str, reason: str) -> None:
    with pytest.raises(InvalidEvent) as caught:
        _event({"id": "42", column: value})
    assert caught.value.reason == reason and caught.value.details["column"] == column


def test_the_message_id_is_stable_and_depends_on_source_file_row_and_content() -> None:
    row = {"id": "42", "plan": "pro"}
    kwargs = {"source_id": "crm", "file_id": "a.csv", "row_number": 3, "row": row}
    same = message_id(CONTACTS, **kwargs)
    assert same == message_id(CONTACTS, **kwargs)
    assert same != message_id(CONTACTS, **{**kwargs, "source_id": "shop"})
    assert same != message_id(CONTACTS, **{**kwargs, "file_id": "b.csv"})
    assert same != message_id(CONTACTS, **{**kwargs, "row_number": 4})
    assert same != message_id(CONTACTS, **{**kwargs, "row": {"id": "42", "plan": "free"}})


def test_message_id_columns_make_the_same_order_one_event_in_any_file() -> None:
    first = message_id(ORDERS, source_id="orders", file_id="nov.csv", row_number=1, row={"order": "o-1", "total": 1})
    again = message_id(ORDERS, source_id="orders", file_id="dec.csv", row_number=8, row={"order": "o-1", "total": 2})
    assert first == again


def test_good_rows_reach_the_stream_and_bad_rows_the_quarantine_with_their_row_number() -> None:
    rows = [
        Row(1, {"id": "1", "plan": "pro", "updated": "2026-10-01T00:00:00Z"}),
        Row(2, {"id": "2", "updated": "last tuesday"}),
        Row(3, {"plan": "orphan"}),
        Row(4, malformed='"unterminated,row'),
        Row(5, {"id": "5", "ltv": "x"}),
        Row(6, {"email": "grace@example.org"}),
    ]
    report, sink, quarantine = _run(rows)
    assert [r.event["context"]["import"]["row"] for r in sink.records] == [1, 6]
    assert sink.records[0].event["timestamp"] == "2026-10-01T00:00:00.000Z"  # normalised as the collector does
    assert sink.records[0].event["sourceId"] == "crm"
    assert [(e.index, e.reason) for e in quarantine.entries] == [
        (2, "invalid_timestamp"), (3, "missing_identity"), (4, "malformed_row"), (5, "invalid_number")]
    assert quarantine.entries[2].payload["context"]["import"]["text"] == '"unterminated,row'
    assert quarantine.entries[3].payload["context"]["import"]["values"] == {"id": "5", "ltv": "x"}
    assert (report.rows_read, report.accepted, report.rejected) == (6, 2, 4)
    assert report.reasons == {"invalid_timestamp": 1, "missing_identity": 1, "malformed_row": 1, "invalid_number": 1}
    assert report.profiles_touched == 2 and report.complete


def test_a_quarantined_row_keeps_its_message_id_so_a_replay_is_the_same_event() -> None:
    _, _, quarantine = _run([Row(1, {"id": "2", "updated": "last tuesday"})])
    payload = quarantine.entries[0].payload
    assert payload["messageId"] == _event({"id": "2", "updated": "last tuesday"})["messageId"]
    assert quarantine.entries[0].route == "identify"


def test_importing_the_same_rows_again_sends_the_same_message_ids() -> None:
    rows = [Row(n, {"id": str(n), "plan": "pro"}) for n in range(1, 8)]
    _, first, _ = _run(rows)
    _, again, _ = _run(rows)
    assert [r.event["messageId"] for r in first.records] == [r.event["messageId"] for r in again.records]
    assert len({r.event["messageId"] for r in first.records}) == 7


def test_profiles_touched_counts_each_rows_highest_priority_identifier_once() -> None:
    rows = [Row(1, {"id": "1", "email": "a@x.org"}), Row(2, {"id": "1", "email": "b@x.org"}),
            Row(3, {"email": "A@x.org"}), Row(4, {"email": "a@x.org"})]
    report, _, _ = _run(rows)
    assert report.profiles_touched == 2


def test_a_run_stopped_between_batches_resumes_from_its_checkpoint_without_a_gap_or_a_repeat() -> None:
    rows = [Row(n, {"id": str(n)}) for n in range(1, 11)]
    commits: list[dict] = []
    report, first, _ = _run(rows, batch_rows=3, should_stop=lambda: True, commit=lambda r: commits.append(r.to_checkpoint()))
    assert not report.complete and report.next_row == 3 and len(first.records) == 3
    resumed = ImportReport.from_checkpoint(commits[-1])
    resumed, rest, _ = _run(rows, report=resumed, batch_rows=3)
    assert resumed.complete and resumed.rows_read == 10 and resumed.accepted == 10
    assert resumed.profiles_touched == 10
    rows_sent = [r.event["context"]["import"]["row"] for r in (*first.records, *rest.records)]
    assert rows_sent == list(range(1, 11))


def test_the_pacer_holds_the_average_rate_without_a_real_clock() -> None:
    now = [0.0]
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    pacer = Pacer(100, clock=lambda: now[0], sleep=sleep)
    for _ in range(4):
        pacer.sent(50)
    assert now[0] == pytest.approx(2.0) and len(slept) == 4
    Pacer(None, clock=lambda: 0.0, sleep=lambda s: pytest.fail("no limit, no sleep")).sent(10_000)


def test_a_batch_is_paced_by_the_records_it_sent() -> None:
    sent: list[int] = []

    class CountingPacer(Pacer):
        def sent(self, count: int) -> None:
            sent.append(count)

    _run([Row(n, {"id": str(n)} if n % 2 else {}) for n in range(1, 6)], pacer=CountingPacer(None), batch_rows=2)
    assert sent == [1, 1, 1]


@pytest.mark.parametrize(("key", "imported"), [
    ("imports/crm-contacts/contacts.csv", True),
    ("imports/crm-contacts/2026/11/contacts.csv.gz", True),
    ("imports/_reports/crm-contacts/contacts.csv.json", False),
    ("imports/_checkpoints/crm-contacts/contacts.csv.json", False),
    ("imports/contacts.csv", False),
    ("imports/crm-contacts/", False),
    ("quarantine/dt=2026-11-30/x.jsonl", False),
])
def test_only_files_in_a_mapping_folder_under_imports_are_imported(key: str, imported: bool) -> None:
    from cdp.adapters.imports import is_import_key

    assert is_import_key(key) is imported


def test_eventbridge_and_s3_notifications_name_the_same_object() -> None:
    from cdp.adapters.imports import object_events

    bridge = {"detail": {"bucket": {"name": "lake"}, "object": {"key": "imports/crm/a b.csv"}}}
    notification = {"Records": [{"s3": {"bucket": {"name": "lake"}, "object": {"key": "imports/crm/a+b.csv"}}}]}
    assert object_events(bridge) == object_events(notification) == [("lake", "imports/crm/a b.csv")]


def test_a_continuation_invokes_the_function_asynchronously_with_an_event_naming_the_same_object() -> None:
    import json

    from cdp.adapters.imports import LambdaContinuation, object_events
    from cdp.settings import Settings

    calls: list[dict] = []

    class FakeLambda:
        def invoke(self, **kwargs: object) -> None:
            calls.append(kwargs)

    LambdaContinuation(Settings(), "arn:aws:lambda:eu-west-1:1:function:cdp-import", client=FakeLambda())(
        "lake", "imports/crm/a b.csv")
    (call,) = calls
    assert call["InvocationType"] == "Event" and call["FunctionName"].endswith(":cdp-import")
    assert object_events(json.loads(call["Payload"])) == [("lake", "imports/crm/a b.csv")]
