"""``cdp failures list|replay`` against the template's stack in moto."""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest

from cdp.adapters.dynamo_profiles import DynamoIdentityStore
from cdp.adapters.failures import S3FailureStore
from cdp.jobs.unify_job import unify_records
from cdp.settings import Settings
from cdp.streams import DeliveredRecord
from cdp_infra.cli import main
from tests.identity_support import CONFIG, NOW

from .collect_support import stream_events


@pytest.fixture
def stack_env(stack_environment: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Settings:
    for name, value in stack_environment.items():
        monkeypatch.setenv(name, value)
    return Settings.from_env(stack_environment)


def _put(settings: Settings, *events: dict[str, Any]) -> list[DeliveredRecord]:
    """Events put on the stream, as the mapping would deliver them."""
    kinesis = boto3.client("kinesis")
    records = []
    for event in events:
        data = json.dumps(event).encode()
        key = f"k-{event.get('anonymousId', event['messageId'])}"
        out = kinesis.put_record(StreamName=settings.events_stream, Data=data, PartitionKey=key)
        records.append(DeliveredRecord(out["ShardId"], out["SequenceNumber"], data, key, NOW.timestamp()))
    return records


def _pointer(settings: Settings, records: list[DeliveredRecord]) -> None:
    """The on-failure message a Kinesis mapping sends after its retries (its shape, as pollers.py sends it)."""
    body = {"requestContext": {"functionArn": "arn:aws:lambda:us-east-1:1:function:cdp-archive",
                               "condition": "RetryAttemptsExhausted"},
            "timestamp": "2026-11-20T12:00:00.000Z",
            "KinesisBatchInfo": {"shardId": records[0].shard_id, "startSequenceNumber": records[0].sequence_number,
                                 "endSequenceNumber": records[-1].sequence_number, "batchSize": len(records)}}
    boto3.client("sqs").send_message(QueueUrl=settings.failure_queue_url, MessageBody=json.dumps(body))


def _json_lines(out: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in out.splitlines()]


def test_list_shows_kept_records_and_the_records_a_pointer_names_while_the_stream_has_them(
    stack_env: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a record unify kept, and an on-failure pointer to two records still in the stream
    bad = _put(stack_env, {"messageId": "bad", "type": "identify", "userId": "x" * 3000})
    unify_records(bad, DynamoIdentityStore(stack_env), config=CONFIG, now=NOW, failures=S3FailureStore(stack_env))
    _pointer(stack_env, _put(stack_env, {"messageId": "p1", "anonymousId": "a1"}, {"messageId": "p2", "anonymousId": "a1"}))
    # When the failures are listed with --fetch
    assert main(["failures", "list", "--fetch", "--json"]) == 0
    listed = _json_lines(capsys.readouterr().out)
    # Then both kinds appear, the pointer with its records read back from the stream
    assert [(x["kind"], x.get("messageId"), x.get("reason")) for x in listed] == [
        ("record", "bad", "identifier_too_long"), ("pointer", None, None)]
    assert [json.loads(r)["messageId"] for r in listed[1]["records"]] == ["p1", "p2"]


def test_replay_puts_the_same_records_back_and_removes_what_it_replayed(
    stack_env: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = _put(stack_env, {"messageId": "bad", "type": "identify", "userId": "x" * 3000})
    unify_records(bad, DynamoIdentityStore(stack_env), config=CONFIG, now=NOW, failures=S3FailureStore(stack_env))
    _pointer(stack_env, _put(stack_env, {"messageId": "p1", "anonymousId": "a1"}))
    before = stream_events(stack_env)
    assert main(["failures", "replay"]) == 0
    assert "replayed 2 record(s): 1 from kept records, 1 from the stream" in capsys.readouterr().out
    after = stream_events(stack_env)
    # The same bytes under the same partition keys: each record is on the stream twice now
    assert sorted(after) == sorted(before * 2)
    # Nothing is left to replay: the kept record is removed, the pointer and the notice deleted
    assert main(["failures", "list", "--json"]) == 0
    assert capsys.readouterr().out == ""
    assert main(["failures", "replay"]) == 0
    assert "replayed 0 record(s)" in capsys.readouterr().out


def test_a_pointer_to_records_the_stream_no_longer_has_falls_back_to_the_kept_records(
    stack_env: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a retried record unify kept (not yet final) and a pointer to it in another shard's numbering
    gone = DeliveredRecord("shardId-000000000009", "42", b'{"messageId":"old","userId":"u9"}', "u9", NOW.timestamp())
    from cdp.failures import FailedRecord

    S3FailureStore(stack_env).put([FailedRecord("unify", gone.shard_id, gone.sequence_number, gone.partition_key,
                                                gone.data, "2026-11-20T11:00:00.000Z", "service_throttled", True, 2,
                                                "2026-11-20T11:00:01.000Z", "old")])
    _pointer(stack_env, [gone])
    # When replayed
    assert main(["failures", "replay"]) == 0
    # Then the kept copy is what goes back on the stream
    assert stream_events(stack_env) == [("u9", {"messageId": "old", "userId": "u9"})]
    assert "1 from kept records, 0 from the stream" in capsys.readouterr().out


def test_a_pointer_nothing_can_serve_is_reported_and_kept(stack_env: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    _pointer(stack_env, [DeliveredRecord("shardId-000000000009", "42", b"{}")])
    assert main(["failures", "replay"]) == 1
    assert "neither in the stream nor kept" in capsys.readouterr().out
    assert main(["failures", "list", "--json"]) == 0
    assert [x["kind"] for x in _json_lines(capsys.readouterr().out)] == ["pointer"]
