"""When AWS does not answer: every adapter raises a retryable StoreError, and the collector says 503.

"AWS" here is a loopback port bound but never listening, so every connection is refused at once;
one attempt, short timeouts. Nothing answers, so the resource names are never looked up.
"""

from __future__ import annotations

import base64
import json
import socket
from collections.abc import Callable, Iterator
from dataclasses import replace
from types import ModuleType
from typing import Any

import pytest

from cdp.collect import OutgoingRecord, QuarantineEntry
from cdp.collect.ingest import Source
from cdp.errors import StoreError
from cdp.segments.membership import MembershipChange
from cdp.settings import Settings

from .collect_support import ADMIN_TOKEN, WRITE_KEY, basic, load_app, proxy_event, response_json

NAMES = {
    # Every variable the template gives a function (the handlers refuse to start without one).
    "QUERY_ENGINE": "duckdb",
    "EMAIL_SENDER": "cdp@example.com",
    "EVENTS_STREAM": "outage-events",
    "PROFILES_TABLE": "outage-profiles",
    "IDENTITY_TABLE": "outage-identity",
    "MERGE_LOG_TABLE": "outage-merge-log",
    "IDEMPOTENCY_TABLE": "outage-idempotency",
    "SOURCES_TABLE": "outage-sources",
    "MEMBERSHIP_TABLE": "outage-membership",
    "AUDIENCE_HOLDINGS_TABLE": "outage-audience-holdings",
    "LAKE_BUCKET": "outage-lake",
    "ACTIVATION_QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/123456789012/outage-activation",
    "DESTINATION_QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/123456789012/outage-destinations",
    "FAILURE_QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/123456789012/outage-unify-failures",
    "GLUE_DATABASE": "outage",
    "ATHENA_WORKGROUP": "outage",
    "ADMIN_TOKEN_SECRET_ARN": "arn:aws:secretsmanager:us-east-1:123456789012:secret:outage/admin-token",
    "OPERATORS_TABLE": "outage-operators",
    "PRIVACY_TABLE": "outage-privacy",
    "PRIVACY_QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/123456789012/outage-privacy",
}


@pytest.fixture
def outage_env() -> Iterator[dict[str, str]]:
    """The environment of a function whose AWS endpoint refuses every connection."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as closed:
        closed.bind(("127.0.0.1", 0))  # bound, never listening: connections are refused
        port = closed.getsockname()[1]
        yield {
            **NAMES,
            "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}",
            "AWS_CONNECT_TIMEOUT": "0.5",
            "AWS_READ_TIMEOUT": "0.5",
            "AWS_MAX_ATTEMPTS": "1",
        }


@pytest.fixture
def outage(outage_env: dict[str, str]) -> Settings:
    return Settings.from_env(outage_env)


# ---------------------------------------------------------------- every adapter


def _sources(s: Settings) -> Any:
    from cdp.adapters.sources import DynamoSourceStore

    return DynamoSourceStore(s).authenticate(WRITE_KEY)


def _kinesis(s: Settings) -> Any:
    from cdp.adapters.kinesis import KinesisSink

    return KinesisSink(s, sleep=lambda _: None).put([OutgoingRecord({}, b"{}", "k")])


def _quarantine(s: Settings) -> Any:
    from cdp.adapters.quarantine import S3Quarantine

    return S3Quarantine(s).put([QuarantineEntry("invalid_type", "src_1", "2024-05-01T12:00:00Z", "batch", 0, {})])


def _ledger(s: Settings) -> Any:
    from cdp.adapters.idempotency import DynamoEffectLedger

    return DynamoEffectLedger(s).claim("email:vip:p1:r1")


def _ses(s: Settings) -> Any:
    from cdp.adapters.sesv2 import SesV2RawSender

    return SesV2RawSender(s, throttle_retries=0).send_raw(to="a@example.com", raw=b"Subject: s\r\n\r\nt", tags={})


def _sqs(s: Settings) -> Any:
    from cdp.adapters.sqs import SqsChangePublisher

    return SqsChangePublisher(s)([MembershipChange("vip", "p1", "entered", "r1", "2024-05-01T12:00:00Z")])


def _membership(s: Settings) -> Any:
    from cdp.adapters.membership import DynamoMembershipStore

    return DynamoMembershipStore(s).members("vip")


def _identity(s: Settings) -> Any:
    from cdp.adapters.dynamo_profiles import DynamoIdentityStore

    return DynamoIdentityStore(s).get_pointers(["user_id:u1"])


def _failure_records(s: Settings) -> Any:
    from cdp.adapters.failures import S3FailureStore

    return S3FailureStore(s).attempts(["failures/unify/dt=2024-05-01/shardId-0-1.jsonl"])


def _failure_queue(s: Settings) -> Any:
    from cdp.adapters.failures import SqsFailureQueue

    return SqsFailureQueue(s).peek()


def _stream_range(s: Settings) -> Any:
    from cdp.adapters.failures import KinesisRangeReader

    return KinesisRangeReader(s).read_range("shardId-0", "1", "2")


def _athena(s: Settings) -> Any:
    from cdp.adapters.engines import query_engine

    return query_engine(replace(s, query_engine="athena")).run("SELECT 1")


def _duckdb_on_s3(s: Settings) -> Any:
    from cdp.adapters.engines import query_engine

    return query_engine(replace(s, query_engine="duckdb")).run("SELECT count(*) FROM events")


def _privacy(s: Settings) -> Any:
    from cdp.adapters.privacy import DynamoPrivacyStore

    return DynamoPrivacyStore(s).suppressed_hashes()


def _privacy_queue(s: Settings) -> Any:
    from cdp.adapters.privacy import SqsPrivacyQueue

    return SqsPrivacyQueue(s)("pr-1")


def _lake_versions(s: Settings) -> Any:
    from cdp.adapters.privacy import LakeObjects

    return list(LakeObjects(s).versions("events/"))


def _operators(s: Settings) -> Any:
    from cdp.adapters.operators import DynamoOperatorStore

    return DynamoOperatorStore(s).get_operator("op_000000000000")


@pytest.mark.parametrize("call", [_operators, _sources, _kinesis, _quarantine, _ledger, _ses, _sqs, _membership, _identity,
                                  _failure_records, _failure_queue, _stream_range, _athena, _duckdb_on_s3,
                                  _privacy, _privacy_queue, _lake_versions])
def test_a_refused_connection_is_a_retryable_store_error(outage: Settings, call: Callable[[Settings], Any]) -> None:
    with pytest.raises(StoreError) as raised:
        call(outage)
    assert raised.value.retryable


# ---------------------------------------------------------------- the collector


class KnownSource:
    """Authenticates WRITE_KEY, so a request gets past the sources table to the next store."""

    def authenticate(self, write_key: str) -> Source | None:
        return Source("src_outage", "outage") if write_key == WRITE_KEY else None


class NoWrite:
    def put(self, items: object) -> None:
        return None


@pytest.fixture
def collector(outage_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    for name, value in {**outage_env, "ADMIN_TOKEN": ADMIN_TOKEN}.items():
        monkeypatch.setenv(name, value)
    return load_app("cdp_outage_collect_app")


OPERATOR_TOKEN = "cdp_op_0123456789ab_" + "A" * 43
VALID = {"batch": [{"type": "track", "anonymousId": "a1", "event": "Viewed"}]}
INVALID = {"batch": [{"type": "nope", "anonymousId": "a1"}]}


def _batch(body: dict[str, Any]) -> dict[str, Any]:
    return proxy_event("/v1/batch", body=body, headers={"Authorization": basic()})


def _profile(token: str = ADMIN_TOKEN) -> dict[str, Any]:
    return proxy_event("/v1/profiles/user_id:u1", method="GET", headers={"Authorization": f"Bearer {token}"},
                       resource="/v1/profiles/{identifier}", path_parameters={"identifier": "user_id:u1"})


@pytest.mark.parametrize(
    ("store_down", "working", "event", "error", "reason"),
    [
        ("sources", {}, _batch(VALID), "store_error", "sources_unavailable"),
        ("stream", {"sources": KnownSource}, _batch(VALID), "stream_unavailable", "stream_write_failed"),
        ("quarantine", {"sources": KnownSource, "sink": NoWrite}, _batch(INVALID), "store_error",
         "quarantine_unavailable"),
        ("admin secret", {}, _profile(), "store_error", "secret_unavailable"),
        ("operators table", {}, _profile(OPERATOR_TOKEN), "store_error", "operators_unavailable"),
        ("identity store", {"admin_token": lambda: ADMIN_TOKEN}, _profile(), "store_error",
         "identity index read failed"),
    ],
)
def test_a_store_that_does_not_answer_makes_the_collector_answer_503_with_retry_after(
    collector: ModuleType, monkeypatch: pytest.MonkeyPatch, store_down: str, working: dict[str, type],
    event: dict[str, Any], error: str, reason: str,
) -> None:
    for getter, fake in working.items():
        monkeypatch.setattr(collector, getter, fake)
    response = collector.app(event, None)
    assert response["statusCode"] == 503, (store_down, response)
    assert int(response["headers"]["Retry-After"]) > 0
    assert (response_json(response)["error"], response_json(response)["reason"]) == (error, reason)


def test_the_pixel_says_503_with_retry_after_when_the_sources_table_does_not_answer(collector: ModuleType) -> None:
    data = base64.b64encode(json.dumps({"writeKey": WRITE_KEY, **VALID["batch"][0]}).encode()).decode()
    event = proxy_event("/v1/pixel", method="GET", body=None)
    event["queryStringParameters"] = {"data": data}
    event["multiValueQueryStringParameters"] = {"data": [data]}
    response = collector.app(event, None)
    assert response["statusCode"] == 503 and int(response["headers"]["Retry-After"]) > 0
