"""The local stack's AWS emulator: moto in its own process, with a stream that can be trimmed."""

from __future__ import annotations

from collections.abc import Iterator

import boto3
import pytest

from cdp_infra.local import EmulatorServer


@pytest.fixture(scope="module")
def emulator() -> Iterator[EmulatorServer]:
    server = EmulatorServer().start()
    yield server
    server.stop()


def _kinesis(emulator: EmulatorServer):  # type: ignore[no-untyped-def]
    return boto3.client("kinesis", endpoint_url=f"http://{emulator.host}:{emulator.port}", region_name="us-east-1")


def _records_from_the_start(kinesis, shard: str) -> list[str]:  # type: ignore[no-untyped-def]
    iterator = kinesis.get_shard_iterator(StreamName="s", ShardId=shard,
                                          ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
    return [r["Data"].decode() for r in kinesis.get_records(ShardIterator=iterator)["Records"]]


def test_trimming_a_shard_forgets_the_processed_records_and_sequence_numbers_go_on(emulator) -> None:
    # Given a shard with three records
    kinesis = _kinesis(emulator)
    kinesis.create_stream(StreamName="s", ShardCount=1)
    shard = kinesis.list_shards(StreamName="s")["Shards"][0]["ShardId"]
    sequences = [kinesis.put_record(StreamName="s", Data=f"r{i}".encode(), PartitionKey="k")["SequenceNumber"]
                 for i in range(3)]
    # When every record is trimmed, and one more is put
    dropped = emulator.trim_kinesis(account="123456789012", region="us-east-1", stream="s", shard=shard,
                                    through=sequences[-1])
    after = kinesis.put_record(StreamName="s", Data=b"r3", PartitionKey="k")["SequenceNumber"]
    # Then only the new record is left, numbered after the trimmed ones
    assert dropped == 3
    assert int(after) > int(sequences[-1])
    assert _records_from_the_start(kinesis, shard) == ["r3"]


def test_the_emulator_counts_the_requests_it_serves_and_reports_its_memory(emulator) -> None:
    kinesis = _kinesis(emulator)
    kinesis.list_streams()
    stats = emulator.stats()
    assert stats["calls"]["Kinesis_20131202.ListStreams"][0] >= 1
    assert stats["rss_bytes"] > 0


def test_trimmed_records_and_overwritten_items_do_not_stay_in_the_emulators_memory() -> None:
    # Given an emulator of its own, its memory's baseline taken
    server = EmulatorServer().start()
    try:
        kinesis, dynamodb = _kinesis(server), _dynamodb(server)
        kinesis.create_stream(StreamName="m", ShardCount=1)
        shard = kinesis.list_shards(StreamName="m")["Shards"][0]["ShardId"]
        dynamodb.create_table(TableName="t", BillingMode="PAY_PER_REQUEST",
                              AttributeDefinitions=[{"AttributeName": "k", "AttributeType": "S"}],
                              KeySchema=[{"AttributeName": "k", "KeyType": "HASH"}])
        server.memory()
        # When 300 records are put and trimmed, and one item is written 300 times
        last = ""
        for i in range(300):
            last = kinesis.put_record(StreamName="m", Data=b"x" * 500, PartitionKey="k")["SequenceNumber"]
            dynamodb.put_item(TableName="t", Item={"k": {"S": "one"}, "n": {"N": str(i)}})
        server.trim_kinesis(account="123456789012", region="us-east-1", stream="m", shard=shard, through=last)
        grown = {entry["where"][0]: entry["count"] for entry in server.memory()["top"]}
    finally:
        server.stop()
    # Then neither the records nor the item's old versions are still held
    assert grown.get("moto.kinesis.models.Record", 0) <= 0
    assert grown.get("moto.dynamodb.models.dynamo_type.Item", 0) <= 1
    assert grown.get("moto.cloudwatch.models.MetricDatum", 0) <= 0


def _dynamodb(emulator: EmulatorServer):  # type: ignore[no-untyped-def]
    return boto3.client("dynamodb", endpoint_url=f"http://{emulator.host}:{emulator.port}", region_name="us-east-1")


def test_a_cancelled_transaction_leaves_every_item_as_it_was(emulator) -> None:
    # Given a table with one item
    dynamodb = _dynamodb(emulator)
    dynamodb.create_table(TableName="t", KeySchema=[{"AttributeName": "k", "KeyType": "HASH"}],
                          AttributeDefinitions=[{"AttributeName": "k", "AttributeType": "S"}],
                          BillingMode="PAY_PER_REQUEST")
    dynamodb.put_item(TableName="t", Item={"k": {"S": "a"}, "v": {"S": "old"}})
    # When a transaction updates it, adds another and then fails a condition
    with pytest.raises(dynamodb.exceptions.TransactionCanceledException):
        dynamodb.transact_write_items(TransactItems=[
            {"Update": {"TableName": "t", "Key": {"k": {"S": "a"}}, "UpdateExpression": "SET v = :n",
                        "ExpressionAttributeValues": {":n": {"S": "new"}}}},
            {"Put": {"TableName": "t", "Item": {"k": {"S": "b"}}}},
            {"Put": {"TableName": "t", "Item": {"k": {"S": "c"}}, "ConditionExpression": "attribute_exists(k)"}},
        ])
    # Then nothing of it stays
    assert dynamodb.get_item(TableName="t", Key={"k": {"S": "a"}})["Item"]["v"] == {"S": "old"}
    assert "Item" not in dynamodb.get_item(TableName="t", Key={"k": {"S": "b"}})


def test_a_transaction_that_passes_applies_every_item(emulator) -> None:
    dynamodb = _dynamodb(emulator)
    dynamodb.transact_write_items(TransactItems=[
        {"Put": {"TableName": "t", "Item": {"k": {"S": "d"}}, "ConditionExpression": "attribute_not_exists(k)"}},
        {"Put": {"TableName": "t", "Item": {"k": {"S": "e"}}}},
    ])
    assert all("Item" in dynamodb.get_item(TableName="t", Key={"k": {"S": k}}) for k in "de")


def test_reading_a_shard_from_a_position_returns_the_records_after_it_in_order(emulator) -> None:
    # Given a shard with twenty records, the first five trimmed
    kinesis = _kinesis(emulator)
    kinesis.create_stream(StreamName="positions", ShardCount=1)
    shard = kinesis.list_shards(StreamName="positions")["Shards"][0]["ShardId"]
    sequences = [kinesis.put_record(StreamName="positions", Data=f"r{i}".encode(), PartitionKey="k")["SequenceNumber"]
                 for i in range(20)]
    emulator.trim_kinesis(account="123456789012", region="us-east-1", stream="positions", shard=shard,
                          through=sequences[4])
    # When it is read from the start in pages of four, and after the tenth record
    iterator = kinesis.get_shard_iterator(StreamName="positions", ShardId=shard,
                                          ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
    pages = []
    for _ in range(5):
        out = kinesis.get_records(ShardIterator=iterator, Limit=4)
        pages.append([r["Data"].decode() for r in out["Records"]])
        iterator = out["NextShardIterator"]
    after = kinesis.get_shard_iterator(StreamName="positions", ShardId=shard, ShardIteratorType="AFTER_SEQUENCE_NUMBER",
                                       StartingSequenceNumber=sequences[9])["ShardIterator"]
    # Then every record kept comes once, in order, and nothing after the last
    assert pages == [[f"r{i}" for i in range(s, s + 4)] for s in (5, 9, 13)] + [["r17", "r18", "r19"], []]
    assert [r["Data"].decode() for r in kinesis.get_records(ShardIterator=after)["Records"]] == [
        f"r{i}" for i in range(10, 20)]


def test_item_results_are_the_same_json_as_moto_serialises() -> None:
    # Given moto's own serialiser and the emulator's direct JSON for item results
    import json

    from moto import mock_aws
    from moto.dynamodb import responses

    from cdp_infra import emulator as module

    serialiser = responses.DynamoResult.execute_result
    module._patch_dynamodb_responses()
    direct = responses.DynamoResult.execute_result
    compared: list[str] = []

    def both(self, context):  # type: ignore[no-untyped-def]
        expected = serialiser(self, context)
        if context.operation_model.name in module._ITEM_OPERATIONS:
            assert json.loads(direct(self, context)[2]) == json.loads(expected[2])
            compared.append(context.operation_model.name)
        return expected

    responses.DynamoResult.execute_result = both
    try:
        with mock_aws():
            # When items of every attribute type are written and read back in every way
            ddb = boto3.client("dynamodb", region_name="us-east-1")
            ddb.create_table(TableName="t", BillingMode="PAY_PER_REQUEST",
                             KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"},
                                        {"AttributeName": "sk", "KeyType": "RANGE"}],
                             AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"},
                                                   {"AttributeName": "sk", "AttributeType": "S"}])
            for i in range(12):
                ddb.put_item(TableName="t", Item={
                    "pk": {"S": f"p{i % 3}"}, "sk": {"S": str(i)}, "n": {"N": "1.50"}, "ss": {"SS": ["a", "b"]},
                    "l": {"L": [{"S": "x"}, {"M": {"a": {"BOOL": True}, "b": {"NULL": True}}}]},
                    "bin": {"B": b"\x00\x01"}})
            key = {"pk": {"S": "p1"}, "sk": {"S": "1"}}
            ddb.get_item(TableName="t", Key=key)
            ddb.get_item(TableName="t", Key={"pk": {"S": "p1"}, "sk": {"S": "none"}})
            ddb.query(TableName="t", KeyConditionExpression="pk = :p", Limit=2,
                      ExpressionAttributeValues={":p": {"S": "p1"}})
            ddb.scan(TableName="t", Limit=5, ReturnConsumedCapacity="TOTAL")
            ddb.update_item(TableName="t", Key=key, UpdateExpression="SET n = n + :one",
                            ExpressionAttributeValues={":one": {"N": "1"}}, ReturnValues="ALL_NEW")
            ddb.batch_get_item(RequestItems={"t": {"Keys": [key, {"pk": {"S": "p2"}, "sk": {"S": "2"}}]}})
            ddb.delete_item(TableName="t", Key=key, ReturnValues="ALL_OLD")
    finally:
        responses.DynamoResult.execute_result = serialiser
    # Then both wrote the same JSON for each
    assert {"PutItem", "GetItem", "Query", "Scan", "UpdateItem", "BatchGetItem", "DeleteItem"} <= set(compared)


def test_a_raw_ses_v2_email_keeps_its_tags_and_configuration_set_as_ses_publishes_them(emulator) -> None:
    # Given an identity and a configuration set
    sesv2 = boto3.client("sesv2", endpoint_url=f"http://{emulator.host}:{emulator.port}", region_name="us-east-1")
    boto3.client("ses", endpoint_url=f"http://{emulator.host}:{emulator.port}",
                 region_name="us-east-1").verify_email_identity(EmailAddress="news@shop.test")
    # When a raw email is sent with tags
    sent = sesv2.send_email(FromEmailAddress="news@shop.test", ConfigurationSetName="campaigns",
                            Content={"Raw": {"Data": b"From: news@shop.test\r\nTo: a@x.io\r\nSubject: s\r\n\r\nhi"}},
                            EmailTags=[{"Name": "campaign", "Value": "welcome"}, {"Name": "ledger", "Value": "Y2Ft"}])
    # Then the emulator lists it with them (the Send event's ``mail.tags``)
    [message] = [m for m in emulator.raw_emails() if m["id"] == sent["MessageId"]]
    assert message["tags"] == {"campaign": "welcome", "ledger": "Y2Ft"} and message["configuration_set"] == "campaigns"
