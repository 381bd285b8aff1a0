"""Minimisation at collection: IP addresses truncated or hashed, named traits dropped, everywhere kept."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from cdp.collect import IngestRequest, ingest
from cdp.errors import InvalidConfig
from cdp.privacy.minimise import Minimiser, hash_ip, minimiser_from_settings, truncate_ip
from tests.unit.collect_fakes import ListSink
from tests.unit.test_collect_ingest import KEY, FakeSources, ListQuarantine, auth

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
HASH_KEY = b"k" * 32


@pytest.mark.parametrize(("address", "kept"), [
    ("203.0.113.77", "203.0.113.0"),
    ("2001:db8:1234:5678::1", "2001:db8:1234::"),
    ("::ffff:198.51.100.9", "198.51.100.0"),
    (" 10.1.2.3 ", "10.1.2.0"),
    ("not an address", None),
])
def test_truncation_keeps_the_network_only(address: str, kept: str | None) -> None:
    assert truncate_ip(address) == kept


def test_a_hash_is_stable_keyed_and_says_nothing_of_the_address() -> None:
    one = hash_ip("203.0.113.77", HASH_KEY)
    assert one == hash_ip("203.0.113.77", HASH_KEY) != hash_ip("203.0.113.78", HASH_KEY)
    assert one != hash_ip("203.0.113.77", b"another key of sixteen")
    assert one is not None and "203" not in one and len(one) == 32


def test_hashing_without_a_key_is_refused_at_configuration() -> None:
    with pytest.raises(InvalidConfig):
        minimiser_from_settings("hash", "", "")
    with pytest.raises(InvalidConfig):
        minimiser_from_settings("scramble", "", "")


def test_settings_text_becomes_options() -> None:
    options = minimiser_from_settings(" Truncate ", "", "birthday, gender,,")
    assert options == Minimiser("truncate", b"", frozenset({"birthday", "gender"}))
    assert not minimiser_from_settings("", "", "").active


def test_an_event_loses_its_named_traits_and_its_address_in_the_context() -> None:
    event = {"traits": {"email": "a@x.io", "birthday": "1990-01-01"},
             "context": {"ip": "203.0.113.77", "traits": {"birthday": "1990-01-01", "plan": "pro"}}}
    original_traits = event["traits"]
    Minimiser("truncate", drop_traits=frozenset({"birthday"})).event(event)
    assert event == {"traits": {"email": "a@x.io"},
                     "context": {"ip": "203.0.113.0", "traits": {"plan": "pro"}}}
    assert original_traits == {"email": "a@x.io", "birthday": "1990-01-01"}  # the sender's object untouched


def test_an_address_that_is_not_one_is_dropped_rather_than_kept() -> None:
    event = {"context": {"ip": "my secret name"}}
    Minimiser("hash", HASH_KEY).event(event)
    assert event == {"context": {}}


def _ingest(minimise: Minimiser, batch: list[dict]) -> tuple[ListSink, ListQuarantine]:
    sink, quarantine = ListSink(), ListQuarantine()
    request = IngestRequest(route="batch", body=json.dumps({"batch": batch}).encode(), authorization=auth(KEY),
                            ip="198.51.100.23")
    ingest(request, sources=FakeSources(), sink=sink, quarantine=quarantine, now=NOW, minimise=minimise)
    return sink, quarantine


def test_the_collector_streams_minimised_events_and_quarantines_minimised_rejects() -> None:
    good = {"type": "identify", "userId": "u1", "traits": {"ssn": "123", "plan": "pro"}}
    bad = {"type": "track", "userId": "u1", "traits": {"ssn": "123"}, "context": {"ip": "203.0.113.5"}}
    sink, quarantine = _ingest(Minimiser("truncate", drop_traits=frozenset({"ssn"})), [good, bad])
    (record,) = sink.records
    assert record.event["context"]["ip"] == "198.51.100.0" and record.event["traits"] == {"plan": "pro"}
    assert b"198.51.100.23" not in record.data and b"ssn" not in record.data
    (entry,) = quarantine.entries
    assert entry.ip == "198.51.100.0"
    assert entry.payload["context"]["ip"] == "203.0.113.0" and "ssn" not in entry.payload["traits"]


def test_without_options_the_collector_keeps_what_it_always_kept() -> None:
    sink, _ = _ingest(Minimiser(), [{"type": "track", "userId": "u1", "event": "E", "traits": {"ssn": "1"}}])
    assert sink.records[0].event["context"]["ip"] == "198.51.100.23"


def test_hash_mode_hashes_the_requests_address_once_in_the_event_and_the_quarantine() -> None:
    sink, quarantine = _ingest(Minimiser("hash", HASH_KEY), [{"type": "track", "userId": "u1", "event": "E"},
                                                             {"type": "track", "userId": "u1"}])
    expected = hash_ip("198.51.100.23", HASH_KEY)
    assert sink.records[0].event["context"]["ip"] == expected == quarantine.entries[0].ip
