"""The edge table: typed errors to HTTP statuses and bodies; the admin-only profile read."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

import pytest

from cdp.collect import IngestResult, Rejection
from cdp.collect.http import RETRY_AFTER_SECONDS, HttpResponse, error_response, status_for, success_response
from cdp.collect.profiles import AdminAccess, audit_record, profile_response, require_bearer
from cdp.errors import (
    CdpError,
    ConcurrentUpdate,
    EventsRejected,
    IdentifierTaken,
    MalformedRequest,
    NotFound,
    PayloadTooLarge,
    QueryFailed,
    ServiceThrottled,
    StoreError,
    StreamUnavailable,
    Throttled,
    Unauthorized,
    WriteKeyRejected,
)


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (WriteKeyRejected("unknown_write_key"), 401),
        (Unauthorized(), 401),
        (NotFound(), 404),
        (PayloadTooLarge("request_too_large"), 400),
        (EventsRejected("all_events_rejected"), 400),
        (MalformedRequest("invalid_json"), 400),
        (Throttled(), 429),
        (StreamUnavailable(), 503),
        (StoreError(), 503),
        (CdpError(), 500),
    ],
)
def test_each_typed_error_maps_to_its_status(error: CdpError, status: int) -> None:
    assert status_for(error) == status


def test_an_error_body_names_the_code_and_the_reason() -> None:
    response = error_response(MalformedRequest("invalid_json"))
    assert response.body == {
        "success": False,
        "error": "malformed_request",
        "reason": "invalid_json",
        "code": "invalid_json",
        "message": "malformed_request: invalid_json",
    }


def test_a_limit_error_names_the_limit() -> None:
    response = error_response(
        PayloadTooLarge("request_too_large", limit="500 KB per request", limit_bytes=512000)
    )
    assert response.body["limit"] == "500 KB per request"


def test_an_all_rejected_error_lists_the_rejections() -> None:
    response = error_response(EventsRejected("all_events_rejected", rejected=[{"index": 0, "reason": "x"}]))
    assert response.body["rejected"] == [{"index": 0, "reason": "x"}]


@pytest.mark.parametrize("error", [StreamUnavailable(), Throttled()])
def test_retryable_errors_say_when_to_retry(error: CdpError) -> None:
    assert error_response(error).headers["Retry-After"] == str(RETRY_AFTER_SECONDS) != "0"


def test_success_counts_the_accepted_and_names_the_rejected() -> None:
    response = success_response(IngestResult(accepted=2, rejected=(Rejection(1, "missing_event"),)))
    assert (response.status, response.body) == (
        200,
        {"success": True, "accepted": 2, "rejected": [{"index": 1, "reason": "missing_event"}]},
    )


@pytest.mark.parametrize(
    "header", [None, "", "Bearer", "Bearer wrong-token-000000", "Basic admin-token-0123456789"]
)
def test_the_profile_read_requires_the_admin_bearer_token(header: str | None) -> None:
    with pytest.raises(Unauthorized):
        require_bearer(header, "admin-token-0123456789")


def test_an_empty_admin_token_lets_nobody_in() -> None:
    with pytest.raises(Unauthorized):
        require_bearer("Bearer ", "")


@dataclass
class Profile:
    profile_id: str
    identifiers: set[str]


def test_a_known_profile_is_returned_as_json() -> None:
    response = profile_response(
        "email%3Aa%40example.com",
        authorization="Bearer admin-token-0123456789",
        access=AdminAccess(None, "admin-token-0123456789"),
        lookup=lambda ident: Profile("p1", {ident}) if ident == "email:a@example.com" else None,
    )[0]
    assert (response.status, response.body) == (
        200,
        {"profile_id": "p1", "identifiers": ["email:a@example.com"]},
    )


def test_an_unknown_profile_is_404() -> None:
    response = profile_response(
        "nobody",
        authorization="Bearer admin-token-0123456789",
        access=AdminAccess(None, "admin-token-0123456789"),
        lookup=lambda _: None,
    )[0]
    assert response.status == 404


def test_a_wrong_token_is_401_without_a_lookup() -> None:
    def lookup(_: str) -> None:
        raise AssertionError("looked up without authorisation")

    response = profile_response(
        "u1", authorization="Bearer nope", access=AdminAccess(None, "admin-token-0123456789"), lookup=lookup
    )[0]
    assert response.status == 401


@pytest.mark.parametrize("error", [ServiceThrottled("sources_unavailable"), ConcurrentUpdate("x"),
                                   IdentifierTaken("x"), QueryFailed("x"), StoreError("x", retryable=False)])
def test_every_store_failure_is_503_with_retry_after_under_the_documented_code(error: StoreError) -> None:
    response = error_response(error)
    assert response.status == 503 and int(response.headers["Retry-After"]) > 0
    assert response.body["error"] == "store_error" and response.body["reason"] == error.reason


def test_the_admin_token_getter_is_not_called_for_a_request_without_a_bearer_token() -> None:
    def token() -> str:
        raise AssertionError("read the secret for an anonymous request")

    with pytest.raises(Unauthorized):
        require_bearer("Basic d2s6", token)


def test_the_admin_token_may_come_from_a_getter() -> None:
    require_bearer("Bearer admin-token-0123456789", lambda: "admin-token-0123456789")


def test_an_unreadable_admin_token_is_503_not_a_way_in() -> None:
    def token() -> str:
        raise StoreError("secret_unavailable")

    response, _ = profile_response("u1", authorization="Bearer x", access=AdminAccess(None, token), lookup=lambda _: {})
    assert (response.status, response.body["reason"]) == (503, "secret_unavailable")


def test_the_audit_record_names_the_identifier_type_and_hash_never_its_value() -> None:
    response = HttpResponse(200, {"profile_id": "p1", "traits": {"email": "a@example.com"}})
    record = audit_record("profile", "email%3Aa%40example.com", response, caller="198.51.100.7")
    assert record == {
        "audit": "profile_read", "route": "profile", "operator": None, "scope": "profiles:read",
        "caller": "198.51.100.7", "identifier_type": "email",
        "identifier_sha256": hashlib.sha256(b"email:a@example.com").hexdigest(), "profile_id": "p1", "status": 200,
    }
    assert "a@example.com" not in json.dumps(record) and "a%40example.com" not in json.dumps(record)


def test_the_audit_record_of_a_refused_read_has_no_profile_and_an_unknown_type_stays_unknown() -> None:
    record = audit_record("explain", "alice@example.com", HttpResponse(401, {"reason": "x"}), caller=None)
    assert (record["identifier_type"], record["profile_id"], record["status"]) == ("unknown", None, 401)
