"""Each Lambda handler, loaded as Lambda loads it, handles its sample event on the local stack.

These run against the moto server (not ``mock_aws``): pyarrow's S3 client is native code that
only an HTTP endpoint can serve.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from cdp.settings import Settings
from cdp_infra.local import LocalConfig, LocalPipeline
from cdp_infra.runtime import LocalFunction

EVENTS = Path(__file__).resolve().parents[2] / "events"


pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def pipeline() -> Iterator[LocalPipeline]:
    with LocalPipeline(LocalConfig(run_schedules=False)) as p:
        yield p


@pytest.fixture
def functions(pipeline: LocalPipeline) -> dict[str, LocalFunction]:
    return pipeline.functions


@pytest.fixture
def stack_settings(pipeline: LocalPipeline) -> Settings:
    return pipeline.settings


def _sample(name: str) -> dict:
    return json.loads((EVENTS / name).read_text())


def test_collect_accepts_the_sample_batch_and_writes_it_to_the_stream(pipeline, functions, stack_settings) -> None:
    from cdp.adapters.sources import DynamoSourceStore

    DynamoSourceStore(stack_settings).register_write_key("local", "local-write-key")
    response = functions["CollectFunction"].invoke(_sample("api-gateway-batch.json"))
    assert response["statusCode"] == 200, response
    kinesis = pipeline.client("kinesis")
    count = 0
    for shard in kinesis.list_shards(StreamName=stack_settings.events_stream)["Shards"]:
        it = kinesis.get_shard_iterator(StreamName=stack_settings.events_stream, ShardId=shard["ShardId"],
                                        ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
        count += len(kinesis.get_records(ShardIterator=it)["Records"])
    assert count == 2


def test_unify_builds_one_profile_from_the_sample_batch(functions, stack_settings) -> None:
    from cdp.adapters.dynamo_profiles import DynamoIdentityStore
    from cdp.identity.lookup import lookup_profile

    response = functions["UnifyFunction"].invoke(_sample("kinesis-batch.json"))
    assert response == {"batchItemFailures": []}
    profile = lookup_profile("email:alice@example.com", DynamoIdentityStore(stack_settings))
    assert profile is not None and profile["event_count"] == 2


def test_unify_redelivery_of_the_same_batch_has_no_second_effect(functions, stack_settings) -> None:
    from cdp.adapters.dynamo_profiles import DynamoIdentityStore
    from cdp.identity.lookup import lookup_profile

    functions["UnifyFunction"].invoke(_sample("kinesis-batch.json"))
    functions["UnifyFunction"].invoke(_sample("kinesis-batch.json"))
    profile = lookup_profile("user_id:user-42", DynamoIdentityStore(stack_settings))
    assert profile is not None and profile["event_count"] == 2


def test_archive_writes_the_sample_batch_to_the_lake(pipeline, functions, stack_settings) -> None:
    response = functions["ArchiveFunction"].invoke(_sample("kinesis-batch.json"))
    assert response == {"batchItemFailures": []}
    keys = [o["Key"] for o in pipeline.client("s3").list_objects_v2(
        Bucket=stack_settings.lake_bucket, Prefix="events/")["Contents"]]
    assert ("events/dt=2026-11-20/shardId-000000000000-"
            "49630000000000000000000000000000000000000000000000000000-"
            "49630000000000000000000000000000000000000000000000000001.parquet") in keys


def test_the_segment_job_runs_on_the_schedule_sample_and_reports_each_segment(functions, stack_settings) -> None:
    from cdp.adapters.dynamo_profiles import DynamoIdentityStore
    from cdp.segments.catalog import all_segments

    functions["UnifyFunction"].invoke(_sample("kinesis-batch.json"))
    functions["ArchiveFunction"].invoke(_sample("kinesis-batch.json"))
    report = functions["SegmentFunction"].invoke(_sample("schedule.json"))
    assert report["failures"] == {} and report["skipped"] == []
    live = [p for p in DynamoIdentityStore(stack_settings).scan_profiles() if not p.is_tombstone]
    assert report["profiles"] == len(live) >= 1 and report["run_id"] == "2026-11-20T11:00:00Z"
    # The first tick runs every segment the function ships with.
    shipped = {d.name for d in all_segments(EVENTS.parent / "segments")}
    assert {s["segment"] for s in report["segments"]} == shipped >= {"repeat-buyers"}


def test_activate_skips_an_unknown_profile_without_failing_the_message(pipeline, functions) -> None:
    ses = pipeline.client("ses")
    before = ses.get_send_quota()["SentLast24Hours"]
    response = functions["ActivateFunction"].invoke(_sample("sqs-activation.json"))
    assert response == {"batchItemFailures": []}
    assert ses.get_send_quota()["SentLast24Hours"] == before


def test_activate_reports_a_malformed_message_as_a_failure_for_redrive(functions) -> None:
    event = _sample("sqs-activation.json")
    event["Records"][0]["body"] = "{not json"
    response = functions["ActivateFunction"].invoke(event)
    assert response == {"batchItemFailures": [{"itemIdentifier": event["Records"][0]["messageId"]}]}


def test_a_failed_activation_message_is_counted_for_the_activation_failures_alarm(pipeline, functions) -> None:
    def failures() -> float:
        return pipeline.metrics.snapshot().get("ActivateFunction", {}).get("ActivationFailures", 0.0)

    before = failures()
    event = _sample("sqs-activation.json")
    event["Records"][0]["body"] = "{not json"
    functions["ActivateFunction"].invoke(event)
    assert failures() == before + 1


def test_compaction_merges_the_days_files_and_keeps_every_event_once(pipeline, functions) -> None:
    import json as _json

    day = _sample("kinesis-batch.json")
    functions["ArchiveFunction"].invoke(day)
    other = _json.loads(_json.dumps(day))
    for record in other["Records"]:  # the same events again, delivered under other sequence numbers
        record["kinesis"]["sequenceNumber"] = "7" + record["kinesis"]["sequenceNumber"][1:]
    functions["ArchiveFunction"].invoke(other)
    s3, bucket = pipeline.client("s3"), pipeline.settings.lake_bucket
    files = len(s3.list_objects_v2(Bucket=bucket, Prefix="events/dt=2026-11-20/")["Contents"])
    tick = {**_sample("schedule.json"), "detail": {"dt": "2026-11-20"}}
    report = functions["CompactFunction"].invoke(tick)
    assert report["files_before"] == files >= 2 and report["files_after"] == 1
    assert report["rows_after"] == 2 and report["duplicates_removed"] == report["rows_before"] - 2


def test_deliver_dead_letters_changes_for_destinations_whose_secret_does_not_exist(pipeline, functions) -> None:
    # The shipped destinations have no secret on a fresh stack: their deliveries are kept, not retried.
    response = functions["DeliverFunction"].invoke(_sample("sqs-destinations.json"))
    assert response == {"batchItemFailures": []}
    sqs = pipeline.client("sqs")
    url = pipeline.settings.destination_dead_letter_url
    kept = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
    reasons = sorted({json.loads(m["Body"])["reason"] for m in kept})
    assert reasons == ["no_credentials"]
