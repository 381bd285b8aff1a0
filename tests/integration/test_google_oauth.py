"""Google access tokens from a refresh token: exchanged at the token endpoint (the fake checks the
documented request), kept until shortly before they expire, refreshed once on a 401, never logged."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import pytest

from cdp.activation.audiences.google import GoogleAudience, GoogleOAuth
from cdp.activation.audiences.normalise import PersonKeys
from cdp.adapters.http import Urllib3Transport
from cdp.errors import DestinationRefused
from cdp_infra.fakes import GoogleFake

ANN = PersonKeys("p1", emails=("ann@example.com",))


@pytest.fixture
def google() -> Iterator[GoogleFake]:
    with GoogleFake(client_id="cid", client_secret="csecret", refresh_token="rtoken") as fake:
        yield fake
    assert fake.violations == []


def _client(fake: GoogleFake, clock: list[float], refresh_token: str = "rtoken") -> GoogleAudience:
    oauth = GoogleOAuth("cid", "csecret", refresh_token, Urllib3Transport(), token_url=f"{fake.url}/token",
                        clock=lambda: clock[0])
    return GoogleAudience("1234567890", "777", oauth, Urllib3Transport(), base_url=fake.url)


def test_the_refresh_token_is_exchanged_once_and_the_access_token_kept_until_near_expiry(google: GoogleFake) -> None:
    clock = [1000.0]
    client = _client(google, clock)
    client.add([ANN])
    client.remove([ANN])
    token_calls = [r for r in google.requests if r["path"] == "/token"]
    assert len(token_calls) == 1
    form = dict(p.split("=", 1) for p in token_calls[0]["body"].decode().split("&"))
    assert form == {"client_id": "cid", "client_secret": "csecret", "refresh_token": "rtoken",
                    "grant_type": "refresh_token"}
    clock[0] += 3599 - 299  # within 5 minutes of the expiry: refreshed before it runs out
    client.add([ANN])
    assert google.issued == 2


def test_a_401_refreshes_the_token_once_and_the_request_goes_through(google: GoogleFake) -> None:
    client = _client(google, [0.0])
    client.add([ANN])
    google.expire_tokens()  # revoked or expired early
    assert client.add([ANN]).received == 1
    assert google.issued == 2 and len(google.members("777")) == 1


def test_a_token_refused_again_after_the_refresh_aborts(google: GoogleFake) -> None:
    from cdp_infra.fakes import google_error

    client = _client(google, [0.0])
    client.add([ANN])
    status, answer = google_error(401, "UNAUTHENTICATED", "Request had invalid authentication credentials.")
    google.fail_next(status, answer)  # the request with the cached token
    google.fail_next(200, {"access_token": "ya29.new", "expires_in": 3599, "token_type": "Bearer"})
    google.fail_next(status, answer)  # and the one after the refresh
    with pytest.raises(DestinationRefused) as caught:
        client.add([ANN])
    assert caught.value.action == "abort" and caught.value.details["code"] == "UNAUTHENTICATED"


def test_a_revoked_refresh_token_aborts_and_no_token_is_in_the_error_or_the_logs(
        google: GoogleFake, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    client = _client(google, [0.0], refresh_token="revoked-refresh-secret")
    with pytest.raises(DestinationRefused) as caught:
        client.add([ANN])
    assert caught.value.action == "abort" and caught.value.details["code"] == "invalid_grant"
    shown = " ".join([str(caught.value), repr(caught.value), json.dumps(caught.value.details, default=str),
                      repr(client.tokens), caplog.text])
    assert "revoked-refresh-secret" not in shown and "csecret" not in shown


def test_a_failing_token_endpoint_is_retried_later(google: GoogleFake) -> None:
    google.fail_next(503, {"error": "temporarily_unavailable"})
    with pytest.raises(DestinationRefused) as caught:
        _client(google, [0.0]).add([ANN])
    assert caught.value.action == "retry"

