"""The privacy table on moto: request records, the open list, the suppression list; the erasure's
DynamoDB deletes and the lake's object versions."""

from __future__ import annotations

from datetime import UTC, datetime

import boto3

from cdp.adapters.privacy import AwsErasureStores, DynamoPrivacyStore, LakeObjects
from cdp.privacy.matching import Needles
from cdp.privacy.requests import Person, new_request
from cdp.settings import Settings

NOW = datetime(2026, 3, 31, 8, 0, tzinfo=UTC)


def test_a_request_is_stored_whole_and_stays_on_the_open_list_until_done(stack_settings: Settings) -> None:
    store = DynamoPrivacyStore(stack_settings)
    request = new_request("erase", "email:a@x.io", now=NOW)
    request.person = Person(["email:a@x.io", "user_id:1"], ["p-1"], "2026-01-01T00:00:00.000Z", None)
    store.put_request(request)
    assert store.get_request(request.request_id) == request
    assert store.open_requests() == {request.request_id: "2026-04-30T08:00:00.000Z"}
    request.status = "done"
    store.put_request(request)
    assert store.open_requests() == {} and store.get_request("pr-unknown") is None


def test_suppression_keeps_only_hashes_and_names_the_request_that_asked(stack_settings: Settings) -> None:
    store = DynamoPrivacyStore(stack_settings)
    hashes = [f"{n:064x}" for n in range(60)]  # more than one BatchWriteItem
    store.suppress(hashes, request_id="pr-1", at="2026-03-31T08:00:00.000Z")
    assert store.suppressed_hashes() == set(hashes) and store.suppressed_by(hashes[0]) == "pr-1"
    store.unsuppress(hashes[:10])
    assert store.suppressed_hashes() == set(hashes[10:]) and store.suppressed_by(hashes[0]) is None


def test_erasing_items_deletes_the_persons_rows_in_every_table_and_leaves_the_others(
        stack_settings: Settings) -> None:
    s = stack_settings
    db = boto3.client("dynamodb", region_name=s.aws_region)
    for pid in ("p-1", "p-other"):
        db.put_item(TableName=s.profiles_table, Item={"profile_id": {"S": pid}})
        db.put_item(TableName=s.membership_table, Item={"segment": {"S": "vip"}, "profile_id": {"S": pid}})
        db.put_item(TableName=s.idempotency_table, Item={"id": {"S": f"email#vip#{pid}#r1"}})
        db.put_item(TableName=s.idempotency_table, Item={"id": {"S": f"sent#{pid}"}})
        db.put_item(TableName=s.merge_log_table, Item={"profile_id": {"S": pid}, "entry_id": {"S": "e1"},
                                                       "identifiers": {"L": []}, "other_profile_ids": {"L": []}})
    db.put_item(TableName=s.merge_log_table, Item={  # a refusal on another profile naming the person
        "profile_id": {"S": "p-other"}, "entry_id": {"S": "e2"},
        "identifiers": {"L": [{"S": "email:a@x.io"}]}, "other_profile_ids": {"L": []}})
    db.put_item(TableName=s.identity_table, Item={"identifier": {"S": "email:a@x.io"}, "profile_id": {"S": "p-1"}})
    db.put_item(TableName=s.identity_table, Item={"identifier": {"S": "email:b@x.io"}, "profile_id": {"S": "p-other"}})
    erasure = AwsErasureStores(s, engine=None, segments=["vip", "lifecycle-lead"])  # type: ignore[arg-type]
    person = Person(["email:a@x.io"], ["p-1"])
    removed = erasure.erase_items(person, Needles.of(person.identifiers, person.profile_ids))
    assert removed == {"dynamodb:membership": 1, "dynamodb:idempotency": 2, "dynamodb:merge_log": 2,
                       "dynamodb:identity": 1, "dynamodb:profiles": 1}
    assert db.scan(TableName=s.profiles_table)["Count"] == 1
    assert db.scan(TableName=s.idempotency_table)["Count"] == 2
    assert db.scan(TableName=s.merge_log_table)["Count"] == 1
    assert erasure.erase_items(person, Needles.of(person.identifiers, person.profile_ids)) == dict.fromkeys(
        removed, 0)  # again: nothing left to delete


def test_quarantine_lines_holding_the_person_go_with_every_old_version(stack_settings: Settings) -> None:
    s = stack_settings
    s3 = boto3.client("s3", region_name=s.aws_region)
    s3.put_bucket_versioning(Bucket=s.lake_bucket, VersioningConfiguration={"Status": "Enabled"})
    key = "quarantine/dt=2026-03-01/a.jsonl"
    theirs = '{"reason": "missing_event", "payload": {"userId": "alice-123"}}'
    others = '{"reason": "missing_event", "payload": {"userId": "bob-456"}}'
    s3.put_object(Bucket=s.lake_bucket, Key=key, Body=theirs.encode())  # an older version
    s3.put_object(Bucket=s.lake_bucket, Key=key, Body=f"{theirs}\n{others}\n".encode())
    erasure = AwsErasureStores(s, engine=None, segments=[])  # type: ignore[arg-type]
    removed = erasure.erase_objects(Needles.of(["user_id:alice-123"]))
    assert removed == {"lake:quarantine:objects": 1, "lake:quarantine:versions": 2}
    versions = list(LakeObjects(s).versions("quarantine/"))
    assert len(versions) == 1
    assert s3.get_object(Bucket=s.lake_bucket, Key=key)["Body"].read().decode() == others + "\n"
