"""Reading tracking requests: write keys from Basic auth, JSON bodies gzip or plain, limits."""

from __future__ import annotations

import base64
import gzip
import json
import zlib

import pytest

from cdp.collect import MAX_REQUEST_BYTES, decode_body, write_key_from_authorization
from cdp.collect.limits import AmbiguousObject
from cdp.errors import MalformedRequest, PayloadTooLarge, WriteKeyRejected


def basic(user: str, password: str = "") -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def test_write_key_is_the_basic_auth_user_name() -> None:
    assert write_key_from_authorization(basic("wk_123")) == "wk_123"


def test_write_key_may_be_sent_as_the_basic_auth_password() -> None:
    assert write_key_from_authorization(basic("", "wk_123")) == "wk_123"


def test_no_authorization_header_means_no_write_key() -> None:
    assert write_key_from_authorization(None) is None
    assert write_key_from_authorization("  ") is None


@pytest.mark.parametrize(
    "header", ["Bearer abc", "Basic", "Basic %%%", "Basic " + base64.b64encode(b"\xff:").decode()]
)
def test_an_unreadable_authorization_header_is_rejected(header: str) -> None:
    with pytest.raises(WriteKeyRejected) as raised:
        write_key_from_authorization(header)
    assert raised.value.reason == "malformed_authorization"


def test_basic_auth_with_neither_user_nor_password_is_a_missing_key() -> None:
    with pytest.raises(WriteKeyRejected) as raised:
        write_key_from_authorization(basic(""))
    assert raised.value.reason == "missing_write_key"


def test_a_plain_json_body_is_parsed() -> None:
    assert decode_body(b'{"a": 1}') == {"a": 1}


def test_a_gzip_body_is_parsed_when_the_header_says_so() -> None:
    assert decode_body(gzip.compress(b'{"a": 1}'), "gzip") == {"a": 1}


def test_a_gzip_body_is_recognised_by_its_magic_bytes_without_a_header() -> None:
    assert decode_body(gzip.compress(b'{"a": 1}')) == {"a": 1}


def test_a_deflate_body_is_parsed() -> None:
    assert decode_body(zlib.compress(b'{"a": 1}'), "deflate") == {"a": 1}


@pytest.mark.parametrize(
    ("body", "encoding", "reason"),
    [
        (b"", None, "empty_body"),
        (b"{not json", None, "invalid_json"),
        (b"\xff\xfe\xfa", None, "invalid_encoding"),
        (b"\x1f\x8b\x08garbage", None, "invalid_gzip"),
        (gzip.compress(b'{"a": 1}', mtime=0)[:-12], "gzip", "invalid_gzip"),
        (b'{"a": 1}', "br", "unsupported_content_encoding"),
        (b"[" * 100_000 + b"]" * 100_000, None, "invalid_json"),
    ],
)
def test_an_unreadable_body_is_malformed_with_a_reason(
    body: bytes, encoding: str | None, reason: str
) -> None:
    with pytest.raises(MalformedRequest) as raised:
        decode_body(body, encoding)
    assert raised.value.reason == reason


def test_a_body_over_500_kb_is_too_large_and_names_the_limit() -> None:
    body = json.dumps({"pad": "x" * MAX_REQUEST_BYTES}).encode()
    with pytest.raises(PayloadTooLarge) as raised:
        decode_body(body)
    assert raised.value.details["limit"] == "500 KB per request"


def test_a_small_gzip_bomb_is_too_large_once_inflated() -> None:
    bomb = gzip.compress(b'{"pad": "' + b"x" * (20 * MAX_REQUEST_BYTES) + b'"}')
    assert len(bomb) < 100_000
    with pytest.raises(PayloadTooLarge):
        decode_body(bomb, "gzip")


def test_numbers_json_cannot_store_are_read_so_the_event_holding_one_is_refused_alone() -> None:
    decoded = decode_body(b'{"a": NaN, "b": 1e999, "c": 123456789012345678901234567890}')
    assert isinstance(decoded, dict)
    assert decoded["a"] != decoded["a"]
    assert decoded["b"] == float("inf")


def test_an_object_with_a_duplicate_key_is_read_and_marked_ambiguous() -> None:
    decoded = decode_body(b'{"batch": [{"a": 1, "a": 2}, {"a": 1}]}')
    assert isinstance(decoded, dict)
    first, second = decoded["batch"]
    assert type(first) is AmbiguousObject and first == {"a": 2}
    assert type(second) is dict
