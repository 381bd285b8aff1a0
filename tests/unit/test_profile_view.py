"""The customer view's pure parts: signed links, the limit, rendering, the sent-message journal, and
finding one person's events in a lake on disk."""

from __future__ import annotations

from pathlib import Path

import pyarrow.fs as pafs
import pytest

from cdp.errors import MalformedRequest, StoreError, Unauthorized
from cdp.lake.parquet import write_events
from cdp.lake.person import days_between, identifier_filter, person_events
from cdp.profiles.links import MAX_MINUTES, sign_view_link, verify_view_link
from cdp.profiles.messages import InMemoryMessageJournal, SentMessage, record_sent
from cdp.profiles.render import render_page, render_text
from cdp.profiles.timeline import DEFAULT_LIMIT, MAX_LIMIT, parse_limit

NOW = 1_714_564_800.0
TOKEN = "admin-token"


# ---------------------------------------------------------------- links
def test_a_signed_link_opens_the_page_of_its_identifier_until_it_expires() -> None:
    link = sign_view_link("email:a@x.io", TOKEN, now=NOW, minutes=10)

    verify_view_link("email:a@x.io", link["expires"], link["signature"], TOKEN, now=NOW + 599)
    with pytest.raises(Unauthorized, match="link_expired"):
        verify_view_link("email:a@x.io", link["expires"], link["signature"], TOKEN, now=NOW + 600)


def test_a_link_is_refused_for_another_identifier_expiry_or_token() -> None:
    link = sign_view_link("email:a@x.io", TOKEN, now=NOW)

    for identifier, expires, token in (("email:b@x.io", link["expires"], TOKEN),
                                       ("email:a@x.io", str(int(link["expires"]) + 1), TOKEN),
                                       ("email:a@x.io", link["expires"], "rotated-token"),
                                       ("email:a@x.io", "soon", TOKEN)):
        with pytest.raises(Unauthorized, match="link_invalid"):
            verify_view_link(identifier, expires, link["signature"], token, now=NOW)


def test_a_link_cannot_be_signed_or_accepted_for_longer_than_a_day() -> None:
    with pytest.raises(ValueError):
        sign_view_link("user_id:1", TOKEN, now=NOW, minutes=MAX_MINUTES + 1)
    link = sign_view_link("user_id:1", TOKEN, now=NOW, minutes=MAX_MINUTES)

    with pytest.raises(Unauthorized, match="link_invalid"):  # signed a day ahead, used early
        verify_view_link("user_id:1", link["expires"], link["signature"], TOKEN, now=NOW - 60)


def test_a_link_without_its_parameters_asks_for_the_admin_token() -> None:
    with pytest.raises(Unauthorized, match="admin_token_required"):
        verify_view_link("user_id:1", None, None, TOKEN, now=NOW)


# ---------------------------------------------------------------- limit
def test_the_limit_defaults_to_50_and_stays_between_1_and_500() -> None:
    assert parse_limit(None) == DEFAULT_LIMIT == 50
    assert parse_limit("1") == 1 and parse_limit("500") == MAX_LIMIT == 500
    for raw in ("0", "501", "-3", "ten", "1.5"):
        with pytest.raises(MalformedRequest, match="invalid_limit"):
            parse_limit(raw)


# ---------------------------------------------------------------- rendering
HOSTILE_VIEW = {
    "identifier": "user_id:<b>u</b>",
    "profile_id": "p-1",
    "identifiers": {"user_id": ["<b>u</b>"]},
    "traits": {"nickname": "<script>alert(1)</script>", "<img src=x>": "key"},
    "computed_traits": {},
    "consent": {"email": {"granted": False, "at": "2024-05-01T00:00:00.000Z", "message_id": "m1"}},
    "events": [{"messageId": "m1", "type": "track", "event": "</td><script>x()</script>",
                "timestamp": "2024-05-01T00:00:00.000Z", "properties": {"q": "\"><svg onload=x()>"}}],
}


def test_hostile_values_render_as_text_on_the_page() -> None:
    page = render_page(HOSTILE_VIEW)

    assert "<script>" not in page and "<svg" not in page and "<img" not in page and "<b>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "&lt;img src=x&gt;" in page


def test_the_page_has_a_section_for_each_part_of_the_view_and_loads_nothing() -> None:
    page = render_page(HOSTILE_VIEW)

    for title in ("Identifiers", "Traits", "Computed traits", "Consent", "Lifecycle history", "Segments",
                  "Messages sent", "Merges", "Events"):
        assert f"<h2>{title}</h2>" in page
    assert "src=" not in page.replace("&lt;img src=x&gt;", "") and "href=" not in page and "@import" not in page


def test_the_terminal_text_shows_control_characters_instead_of_obeying_them() -> None:
    text = render_text({**HOSTILE_VIEW, "traits": {"name": "\x1b]0;pwned\x07\x1b[2J\rAlice"}})

    assert "\x1b" not in text and "\r" not in text and "\x07" not in text
    assert "\\x1b]0;pwned\\x07\\x1b[2J\\x0dAlice" in text


# ---------------------------------------------------------------- sent messages
def message_args(key: str = "email#vip#p1#r1") -> dict[str, str]:
    return {"key": key, "profile_id": "p1", "segment": "vip", "run": "r1", "entered_at": "2024-05-01T00:00:00.000Z",
            "sent_at": "2024-05-01T00:01:00.000Z"}


def test_a_sent_email_is_recorded_under_its_profile_once_whatever_the_retries() -> None:
    journal = InMemoryMessageJournal()

    assert record_sent(journal, sent=["email#vip#p1#r1"], **message_args())
    assert record_sent(journal, sent=["email#vip#p1#r1"], **message_args())

    assert [m.key for m in journal.sent_to(["p1", "p2"])] == ["email#vip#p1#r1"]


def test_a_skipped_or_duplicate_email_is_not_recorded() -> None:
    journal = InMemoryMessageJournal()

    assert not record_sent(journal, sent=[], **message_args())
    assert journal.sent_to(["p1"]) == []


def test_a_journal_failure_does_not_fail_the_sent_email() -> None:
    class Broken(InMemoryMessageJournal):
        def record(self, message: SentMessage) -> None:
            raise StoreError("down")

    assert record_sent(Broken(), sent=["email#vip#p1#r1"], **message_args()) is False


# ---------------------------------------------------------------- the person's events in the lake
def ev(mid: str, ts: str, **ids: str) -> dict[str, str]:
    return {"messageId": mid, "type": "track", "event": "E", "timestamp": ts, **ids}


@pytest.fixture
def lake(tmp_path: Path) -> tuple[pafs.FileSystem, str]:
    fs, root = pafs.LocalFileSystem(), str(tmp_path)
    write_events([ev("m1", "2024-05-01T10:00:00Z", userId="u1"),
                  ev("x1", "2024-05-01T11:00:00Z", userId="u2"),
                  ev("m2", "2024-05-02T09:00:00Z", anonymousId="a1")], fs, root, "f1")
    write_events([ev("m3", "2024-05-03T08:00:00Z", userId="u1"),
                  ev("m3", "2024-05-03T08:00:00Z", userId="u1"),  # redelivered
                  ev("m4", "2024-05-09T08:00:00Z", userId="u1")], fs, root, "f2")
    return fs, root


def test_the_persons_events_come_oldest_first_by_any_of_their_identifiers(lake) -> None:
    found = person_events(*lake, ["user_id:u1", "anonymous_id:a1"], first_seen="2024-05-01T10:00:00.000Z",
                          last_seen="2024-05-09T08:00:00.000Z", limit=50)

    assert [e["messageId"] for e in found.events] == ["m1", "m2", "m3", "m4"]
    assert found.events[0]["userId"] == "u1" and found.more is False and found.matched == 4


def test_the_latest_events_are_found_in_the_newest_days_without_reading_older_ones(lake) -> None:
    found = person_events(*lake, ["user_id:u1", "anonymous_id:a1"], first_seen="2024-04-01T00:00:00.000Z",
                          last_seen="2024-05-09T08:00:00.000Z", limit=1)

    assert [e["messageId"] for e in found.events] == ["m4"]
    assert found.more is True
    assert found.days_read[0] == "2024-05-10" and "2024-04-01" not in found.days_read


def test_days_outside_first_and_last_seen_are_not_read(lake) -> None:
    found = person_events(*lake, ["user_id:u1"], first_seen="2024-05-03T00:00:00.000Z",
                          last_seen="2024-05-03T23:00:00.000Z", limit=50)

    assert [e["messageId"] for e in found.events] == ["m3"]
    assert found.days_read == ["2024-05-04", "2024-05-03", "2024-05-02"]


def test_only_identifier_types_the_lake_has_a_column_for_are_searched() -> None:
    assert identifier_filter(["phone:+4420", "device_id:d"]) is None
    assert days_between(None, "2024-05-01T00:00:00Z") == []


# ---------------------------------------------------------------- the view, on in-memory stores
def test_the_view_asks_the_lake_for_every_identifier_and_finds_segments_and_messages_of_merged_profiles() -> None:
    from datetime import UTC, datetime
    from decimal import Decimal

    from cdp.identity import IdentityConfig, InMemoryIdentityStore, resolve_batch
    from cdp.profiles.timeline import build_timeline
    from cdp.segments.membership import Member

    store, config = InMemoryIdentityStore(), IdentityConfig()
    for batch in ([ev("m1", "2024-05-01T10:00:00Z", anonymousId="a1")],
                  [ev("m2", "2024-05-02T10:00:00Z", userId="u1")],
                  [ev("m3", "2024-05-03T10:00:00Z", userId="u1", anonymousId="a1")]):
        resolve_batch(batch, store, config=config, now=datetime(2024, 5, 4, tzinfo=UTC))
    live = store.get_pointers(["user_id:u1"])["user_id:u1"]
    absorbed = ({store.get_pointers(["anonymous_id:a1"])["anonymous_id:a1"]} | set(store.profiles)) - {live}
    (old,) = absorbed
    store.profiles[live].traits["score"] = Decimal("1.5")

    class Memberships:
        def members_of(self, keys):
            held = {("vip", old): Member(old, "r1", "2024-05-02T00:00:00.000Z"),
                    ("new", live): Member(live, "r2", "2024-05-03T00:00:00.000Z"),
                    ("vip", "someone-else"): Member("someone-else", "r1", "x")}
            return {k: held[k] for k in keys if k in held}

    journal = InMemoryMessageJournal()
    record_sent(journal, sent=["email#vip#" + old + "#r1"], **{**message_args("email#vip#" + old + "#r1"),
                                                             "profile_id": old})
    asked = []

    def read_events(identifiers, first_seen, last_seen, limit):
        asked.append((sorted(identifiers), first_seen, last_seen, limit))
        return {"events": [], "matched": 0, "more": False, "days_read": {}}

    view = build_timeline("user_id:u1", store=store, config=config, segments=["new", "vip"], memberships=Memberships(),
                          journal=journal, read_events=read_events, limit=7)

    assert asked == [(["anonymous_id:a1", "user_id:u1"], "2024-05-01T10:00:00.000Z", "2024-05-03T10:00:00.000Z", 7)]
    assert view["absorbed_profiles"] == [old]
    assert [(s["segment"], s["profile_id"]) for s in view["segments"]] == [("vip", old), ("new", live)]
    assert [m["profile_id"] for m in view["messages"]] == [old]
    assert view["traits"]["score"] == 1.5
