"""Reading a tracking request: the write key and the JSON body (gzip or plain)."""

from __future__ import annotations

import base64
import binascii
import json
import zlib

from cdp.errors import MalformedRequest, PayloadTooLarge, WriteKeyRejected

from .limits import object_from_pairs

#: Segment's documented limits.
MAX_REQUEST_BYTES = 500 * 1024
MAX_EVENT_BYTES = 32 * 1024


def write_key_from_authorization(header: str | None) -> str | None:
    """The write key of ``Authorization: Basic base64(writeKey:)``; None when no header is sent.

    Some clients put the key in the password instead of the user name; both are accepted.
    Raises :class:`WriteKeyRejected` for a header that is present but unreadable.
    """
    if header is None or not header.strip():
        return None
    scheme, _, credentials = header.strip().partition(" ")
    if scheme.lower() != "basic" or not credentials.strip():
        raise WriteKeyRejected("malformed_authorization")
    try:
        decoded = base64.b64decode(credentials.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError) as exc:
        raise WriteKeyRejected("malformed_authorization") from exc
    user, _, password = decoded.partition(":")
    key = user or password
    if not key:
        raise WriteKeyRejected("missing_write_key")
    return key


def decode_body(raw: bytes, content_encoding: str | None = None, *, limit: int = MAX_REQUEST_BYTES) -> object:
    """The JSON value of a request body, gunzipped when needed (by header or by magic bytes).

    The limit applies to the decompressed body, so a small gzip bomb cannot pass it.
    Raises :class:`MalformedRequest` or :class:`PayloadTooLarge`.
    """
    if not raw:
        raise MalformedRequest("empty_body")
    encoding = (content_encoding or "").strip().lower()
    if encoding in ("gzip", "x-gzip", "deflate") or raw[:2] == b"\x1f\x8b":
        raw = _inflate(raw, limit)
    elif encoding not in ("", "identity"):
        raise MalformedRequest("unsupported_content_encoding", encoding=encoding)
    if len(raw) > limit:
        raise PayloadTooLarge("request_too_large", limit="500 KB per request", limit_bytes=limit)
    # NaN, 1e400 and duplicate keys parse (the latter marked): each event holding one is refused
    # on its own, so one bad event cannot sink its batch.
    try:
        return json.loads(raw, object_pairs_hook=object_from_pairs)
    except UnicodeDecodeError as exc:
        raise MalformedRequest("invalid_encoding") from exc
    except (ValueError, RecursionError) as exc:
        raise MalformedRequest("invalid_json") from exc


def _inflate(raw: bytes, limit: int) -> bytes:
    # wbits 47 = auto-detect zlib or gzip headers; a raw deflate stream is tried next.
    for wbits in (47, -15):
        inflater = zlib.decompressobj(wbits)
        try:
            out = inflater.decompress(raw, limit + 1)
        except zlib.error:
            continue
        if len(out) > limit or inflater.unconsumed_tail:
            raise PayloadTooLarge("request_too_large", limit="500 KB per request", limit_bytes=limit)
        if not inflater.eof:
            raise MalformedRequest("invalid_gzip")
        return out
    raise MalformedRequest("invalid_gzip")
