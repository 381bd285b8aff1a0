"""Destinations without I/O: normalisation and hashing per platform, config files, webhook signing."""

from __future__ import annotations

import base64
import hashlib
import hmac

import pytest

from cdp.activation.audiences.normalise import (
    META_SCHEMA,
    PersonKeys,
    google_email,
    google_phone,
    google_user_identifiers,
    meta_name,
    meta_phone,
    meta_row,
    person_keys,
)
from cdp.activation.audiences.sync import may_send_ads
from cdp.activation.destinations import parse_destination
from cdp.activation.webhooks import WEBHOOK_SCHEDULE, backoff, classify, message_id, secret_key, sign
from cdp.adapters.http import check_host, check_url
from cdp.errors import InvalidConfig, UnsafeEndpoint
from cdp.segments.membership import MembershipChange

SECRET = "whsec_" + base64.b64encode(b"k" * 32).decode()


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


# ---------------------------------------------------------------- normalisation


def test_google_removes_dots_and_plus_suffix_only_for_gmail_and_googlemail() -> None:
    assert google_email(" Cloudy.SanFrancisco+shopping@GMAIL.com ") == "cloudysanfrancisco@gmail.com"
    assert google_email("a.b+x@googlemail.com") == "ab@googlemail.com"
    assert google_email("User.Name+NYC@Example.com") == "user.name+nyc@example.com"
    assert google_email("no-at-sign") is None


def test_google_phone_is_e164_with_the_plus_and_meta_phone_is_digits_without_leading_zeros() -> None:
    assert google_phone("+1 (800) 555-0100") == "+18005550100"
    assert google_phone("800 555 0100") is None  # no country code: not sent
    assert meta_phone("+44 0844 412 4653") == "4408444124653"
    assert meta_phone("0044 844") is None


def test_meta_names_are_lower_case_without_punctuation_and_keep_accents() -> None:
    assert meta_name(" Émilie-Anne ") == "émilieanne"
    assert meta_name("O'Brien") == "obrien"


def test_a_meta_row_follows_the_schema_order_with_every_value_hashed_and_unknowns_empty() -> None:
    keys = PersonKeys("p1", emails=("Jane.Doe@Example.com",), phones=("+15551234567",), first_name="Jane",
                      last_name="Doe", country="US", postal_code="94103-1234", gender="female")
    row = meta_row(keys)
    assert row is not None and len(row) == len(META_SCHEMA)
    values = dict(zip(META_SCHEMA, row, strict=True))
    assert values["EMAIL"] == sha("jane.doe@example.com")
    assert values["PHONE"] == sha("15551234567")
    assert values["FN"] == sha("jane") and values["LN"] == sha("doe")
    assert values["ZIP"] == sha("94103") and values["COUNTRY"] == sha("us") and values["GEN"] == sha("f")
    assert values["CT"] == "" and values["ST"] == ""


def test_a_person_without_email_or_phone_gives_no_meta_row_and_no_google_identifier() -> None:
    keys = PersonKeys("p1", first_name="Jane")
    assert meta_row(keys) is None and google_user_identifiers(keys) == []


def test_google_identifiers_hash_the_normalised_email_and_add_an_address_only_when_complete() -> None:
    keys = PersonKeys("p1", emails=("j.doe+ads@gmail.com",), first_name="Jane", last_name="Doe",
                      country="us", postal_code="94103")
    identifiers = google_user_identifiers(keys)
    assert identifiers[0] == {"emailAddress": sha("jdoe@gmail.com")}
    assert identifiers[1] == {"address": {"givenName": sha("jane"), "familyName": sha("doe"),
                                          "regionCode": "US", "postalCode": "94103"}}


def test_keys_come_from_validated_identifiers_and_traits() -> None:
    view = {"profile_id": "p1", "identifiers": {"email": ["jane@example.com", "not-an-email"], "phone": ["+15551234567"]},
            "traits": {"firstName": "Jane", "address": {"country": "US", "postal_code": "94103"}}}
    keys = person_keys(view)
    assert keys.emails == ("jane@example.com",) and keys.phones == ("+15551234567",)
    assert keys.first_name == "Jane" and keys.country == "US" and keys.postal_code == "94103"


@pytest.mark.parametrize(("consent", "allowed"), [({"ads": True}, True), ({"ads": False}, False), ({}, False),
                                                   ({"email": True}, False), (None, False)])
def test_only_people_who_granted_ads_consent_may_be_sent(consent: object, allowed: bool) -> None:
    assert may_send_ads({"consent": consent}) is allowed


# ---------------------------------------------------------------- config


def test_a_valid_destination_parses_with_its_options() -> None:
    d = parse_destination("type: google_audience\nsegments: [vip]\nsecret: google-ads\naccount_id: 123-456-7890\n"
                          "user_list_id: '555'\n", "config/destinations/g.yaml")
    assert (d.name, d.type, d.segments, d.options["account_id"], d.options["account_type"]) == (
        "g", "google_audience", ("vip",), "123-456-7890", "GOOGLE_ADS")


@pytest.mark.parametrize(("text", "where"), [
    ("type: meta_audience\nsegments: [vip]\nsecret: s\n", "d.yaml:1: audience_id: is required"),
    ("type: meta_audience\nsegments: [vip]\nsecret: s\naudience_id: abc\n", "d.yaml:4: audience_id: must be"),
    ("type: webhook\nsegments: [vip]\nsecret: s\nurl: http://example.com/x\n", "d.yaml:4: url: must be an https"),
    ("type: webhook\nsegments: []\nsecret: s\nurl: https://e.com\n", "d.yaml:2: segments:"),
    ("type: webhook\nsegments: [vip]\nsecret: s\nurl: https://e.com\nchanges: [moved]\n", "d.yaml:5: changes:"),
    ("type: webhook\nsegments: [vip]\nsecret: s\nurl: https://e.com\nheaders: {}\n", "d.yaml:5: headers: unknown"),
    ("type: sms\n", "d.yaml:1: type: must be one of"),
    ("type: webhook\ntype: webhook\n", "d.yaml:2: type: duplicate key"),
    ("type: [webhook\n", "d.yaml:"),
])
def test_an_invalid_destination_fails_with_its_file_and_line(text: str, where: str) -> None:
    with pytest.raises(InvalidConfig) as caught:
        parse_destination(text, "d.yaml")
    assert str(caught.value).startswith(where), str(caught.value)


# ---------------------------------------------------------------- webhooks


def test_the_signature_is_v1_base64_hmac_sha256_of_id_timestamp_and_body() -> None:
    body = b'{"a":1}'
    expected = base64.b64encode(hmac.new(b"k" * 32, b"msg_1.1700000000." + body, hashlib.sha256).digest()).decode()
    assert sign(SECRET, "msg_1", 1700000000, body) == f"v1,{expected}"


def test_the_standardwebhooks_package_verifies_our_signature_when_installed() -> None:
    standardwebhooks = pytest.importorskip("standardwebhooks")
    import time

    now = int(time.time())
    body = b'{"type":"segment.entered"}'
    headers = {"webhook-id": "msg_1", "webhook-timestamp": str(now),
               "webhook-signature": sign(SECRET, "msg_1", now, body)}
    assert standardwebhooks.Webhook(SECRET).verify(body, headers) == {"type": "segment.entered"}


@pytest.mark.parametrize("secret", ["k" * 40, "whsec_not base64!", "whsec_" + base64.b64encode(b"short").decode()])
def test_a_malformed_or_short_secret_is_refused(secret: str) -> None:
    with pytest.raises(InvalidConfig):
        secret_key(secret)


def test_the_message_id_is_stable_per_destination_and_change() -> None:
    change = MembershipChange("vip", "p1", "entered", "r1", "2024-01-01T00:00:00Z")
    assert message_id("a", change) == message_id("a", change) != message_id("b", change)


@pytest.mark.parametrize(("status", "action"), [(410, "disable"), (429, "slow_down"), (503, "retry"),
                                                 (500, "retry"), (400, "abort"), (401, "abort"), (404, "abort")])
def test_answers_are_classed(status: int, action: str) -> None:
    assert classify(status) == action


def test_backoff_follows_the_schedule_with_jitter_then_gives_up() -> None:
    assert backoff(1, WEBHOOK_SCHEDULE, rand=lambda: 0.5) == 5
    assert backoff(2, WEBHOOK_SCHEDULE, rand=lambda: 0.0) == 240  # 300 - 20 %
    assert backoff(7, WEBHOOK_SCHEDULE, rand=lambda: 1.0) == 43200  # 36000 + 20 %
    assert backoff(len(WEBHOOK_SCHEDULE) + 1, WEBHOOK_SCHEDULE) is None
    assert sum(WEBHOOK_SCHEDULE) / 3600 > 24  # "for hours": about 28


def test_a_maximum_step_cuts_every_longer_step_but_keeps_the_number_of_attempts() -> None:
    assert backoff(1, WEBHOOK_SCHEDULE, rand=lambda: 0.5, max_step=3) == 3
    assert backoff(7, WEBHOOK_SCHEDULE, rand=lambda: 1.0, max_step=3) == 3.6  # jittered after the cut
    assert backoff(len(WEBHOOK_SCHEDULE) + 1, WEBHOOK_SCHEDULE, max_step=3) is None
    assert backoff(1, WEBHOOK_SCHEDULE, rand=lambda: 0.5, max_step=36000) == 5


def test_a_retry_after_still_wins_over_a_maximum_step() -> None:
    assert backoff(1, WEBHOOK_SCHEDULE, retry_after=120, rand=lambda: 0.5, max_step=3) == 120


def test_a_retry_after_longer_than_the_step_wins_but_is_capped() -> None:
    assert backoff(1, WEBHOOK_SCHEDULE, retry_after=120, rand=lambda: 0.5) == 120
    assert backoff(1, WEBHOOK_SCHEDULE, retry_after=10**9, rand=lambda: 0.5) == 12 * 3600


# ---------------------------------------------------------------- SSRF


@pytest.mark.parametrize("url", ["http://example.com/hook", "ftp://example.com", "https://user:pw@example.com/",
                                 "http://10.0.0.1/", "https:///nohost"])
def test_only_https_urls_are_accepted_on_aws(url: str) -> None:
    with pytest.raises(UnsafeEndpoint):
        check_url(url, allow_local=False)


def test_http_to_loopback_is_accepted_only_when_running_locally() -> None:
    assert check_url("http://127.0.0.1:8080/h", allow_local=True) == ("http", "127.0.0.1", 8080)
    with pytest.raises(UnsafeEndpoint):
        check_url("http://127.0.0.1:8080/h", allow_local=False)


def _resolver(*addresses: str):  # type: ignore[no-untyped-def]
    return lambda host, port, type=0: [(2, 1, 6, "", (a, port)) for a in addresses]


@pytest.mark.parametrize("address", ["127.0.0.1", "10.1.2.3", "172.16.0.9", "192.168.1.1", "169.254.169.254",
                                     "::1", "fd00::1", "0.0.0.0", "100.64.0.1"])
def test_hosts_resolving_to_private_loopback_or_link_local_addresses_are_refused(address: str) -> None:
    with pytest.raises(UnsafeEndpoint):
        check_host("hooks.example.com", 443, allow_local=False, resolve=_resolver("93.184.216.34", address))


def test_a_public_host_is_pinned_to_its_checked_address() -> None:
    assert check_host("hooks.example.com", 443, allow_local=False, resolve=_resolver("93.184.216.34")) == "93.184.216.34"


# ---------------------------------------------------------------- the shipped files

REPO = __import__("pathlib").Path(__file__).resolve().parents[2]


def test_the_demo_destinations_are_valid_and_follow_existing_segments() -> None:
    from cdp.activation.destinations import load_destinations
    from cdp.segments.definition import load_segments

    names = [d.name for d in load_segments(REPO / "segments")]
    found = load_destinations(REPO / "examples" / "destinations", segments=names)
    assert {d.type for d in found.values()} == {"meta_audience", "google_audience", "webhook"}


def test_a_deployed_stack_ships_no_destination() -> None:
    from cdp.activation.destinations import load_destinations

    assert load_destinations(REPO / "functions" / "deliver" / "config" / "destinations") == {}


def test_destinations_load_from_several_folders_and_a_name_is_defined_once(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from cdp.activation.destinations import load_destinations

    for folder in ("mine", "demo"):
        (tmp_path / folder).mkdir()
    (tmp_path / "mine" / "a.yaml").write_text("type: webhook\nsegments: [v]\nsecret: s\nurl: https://e.com\n")
    (tmp_path / "demo" / "b.yaml").write_text("type: webhook\nsegments: [v]\nsecret: s\nurl: https://e.com\n")
    assert set(load_destinations([tmp_path / "mine", tmp_path / "demo", tmp_path / "absent"])) == {"a", "b"}
    (tmp_path / "demo" / "a.yaml").write_text("type: webhook\nsegments: [v]\nsecret: s\nurl: https://e.com\n")
    with pytest.raises(InvalidConfig, match="name: 'a' is already defined"):
        load_destinations([tmp_path / "mine", tmp_path / "demo"])


def test_a_destination_naming_an_unknown_segment_fails_with_its_line(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from cdp.activation.destinations import load_destinations

    (tmp_path / "hook.yaml").write_text("type: webhook\nsecret: s\nurl: https://e.com\nsegments:\n  - vip\n  - nope\n")
    with pytest.raises(InvalidConfig) as caught:
        load_destinations(tmp_path, segments=["vip"])
    assert str(caught.value) == f"{tmp_path / 'hook.yaml'}:6: segments: no segment named 'nope'"


def test_two_files_may_not_define_the_same_destination(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from cdp.activation.destinations import load_destinations

    for name in ("a", "b"):
        (tmp_path / f"{name}.yaml").write_text("name: x\ntype: webhook\nsegments: [v]\nsecret: s\nurl: https://e.com\n")
    with pytest.raises(InvalidConfig, match="b.yaml:1: name: 'x' is already defined"):
        load_destinations(tmp_path)


def test_cdp_destinations_validate_checks_the_users_and_the_demos_folders(capsys, monkeypatch, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from cdp_infra.cli import main

    monkeypatch.delenv("EXTRA_DESTINATIONS_DIR", raising=False)
    assert main(["destinations", "validate"]) == 0
    assert "3 destination(s) valid" in capsys.readouterr().out
    assert main(["destinations", "list"]) == 0
    assert capsys.readouterr().out == ""  # a stack that is not the local one reads config/destinations only
    (tmp_path / "bad.yaml").write_text("type: webhook\nsegments: [repeat-buyers]\nsecret: s\nurl: http://e.com\n")
    assert main(["destinations", "validate", "--dir", str(tmp_path)]) == 1
    assert f"{tmp_path / 'bad.yaml'}:4: url: must be an https:// URL" in capsys.readouterr().err
