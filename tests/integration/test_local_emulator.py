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


def test_queue_counts_and_retention_are_moto_s_answers_in_one_pass() -> None:
    # Given a queue holding visible, delayed and in-flight messages, and an old message
    from moto import mock_aws
    from moto.sqs.models import sqs_backends

    from cdp_infra import emulator as module

    with mock_aws():
        sqs = boto3.client("sqs", region_name="us-east-1")
        url = sqs.create_queue(QueueName="q", Attributes={"MessageRetentionPeriod": "60"})["QueueUrl"]
        for i in range(6):
            sqs.send_message(QueueUrl=url, MessageBody=str(i), DelaySeconds=30 if i < 2 else 0)
        sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=3, VisibilityTimeout=30)
        backend = sqs_backends["123456789012"]["us-east-1"]
        queue = backend.get_queue("q")
        old = queue._messages[-1]
        old_sent, old.sent_timestamp = old.sent_timestamp, old.sent_timestamp - 61_000
        # When the emulator counts them in one pass and checks retention from the queue's setting
        counts = module._sqs_counts(queue)
        expected = tuple(getattr(queue, name) for name in module._SQS_COUNTS)
        valid = [backend.is_message_valid_based_on_retention_period("q", m) for m in queue._messages]
        moto_attributes = queue.attributes
        saved = {name: queue.__class__.__dict__[name] for name in ("attributes", *module._SQS_COUNTS)}
        retention = type(backend).is_message_valid_based_on_retention_period
        module._patch_sqs()
        try:
            patched_valid = [backend.is_message_valid_based_on_retention_period("q", m) for m in queue._messages]
            patched_attributes = queue.attributes
        finally:
            for name, value in saved.items():
                setattr(queue.__class__, name, value)
            type(backend).is_message_valid_based_on_retention_period = retention
            old.sent_timestamp = old_sent
    # Then every answer is moto's own
    assert counts == expected == (1, 2, 3)
    assert patched_valid == valid == [True] * 5 + [False]
    assert patched_attributes == moto_attributes


def test_stream_reads_and_puts_are_the_same_json_as_moto_serialises() -> None:
    # Given moto's own Kinesis responses, and the emulator's direct JSON for GetRecords and PutRecords
    import json

    from moto import mock_aws
    from moto.core.responses import BaseResponse
    from moto.kinesis import responses

    from cdp_infra import emulator as module

    originals = {name: getattr(responses.KinesisResponse, name) for name in ("get_records", "put_records")}
    serialized = BaseResponse.serialized
    written: list[tuple[int, dict[str, str], object]] = []

    def keep(self, result):  # type: ignore[no-untyped-def]
        status, headers, body = serialized(self, result)
        # The Date header is the clock's, which may tick between the two calls compared.
        written.append((status, {k: v for k, v in headers.items() if k.lower() != "date"}, json.loads(body)))
        return status, headers, body

    def both_ways(call):  # type: ignore[no-untyped-def]
        out = []
        for patched in (False, True):
            if patched:
                module._patch_kinesis_responses()
            written.clear()
            call()
            out.append(written[-1])
            for name, method in originals.items():
                setattr(responses.KinesisResponse, name, method)
        return out

    BaseResponse.serialized = keep  # type: ignore[method-assign]
    try:
        with mock_aws():
            kinesis = boto3.client("kinesis", region_name="us-east-1")
            kinesis.create_stream(StreamName="s", ShardCount=2)
            # When records (binary, empty-ish, unicode) are put, and read back from the start
            records = [{"Data": data, "PartitionKey": key} for data, key in
                       ((b"\x00\xff binary", "a"), (b"x", "b"), ("é ü".encode(), "c"), (b"{}" * 300, "d"))]
            puts = both_ways(lambda: kinesis.put_records(StreamName="s", Records=records))
            shards = [s["ShardId"] for s in kinesis.list_shards(StreamName="s")["Shards"]]
            reads = []
            for shard in shards:
                iterator = kinesis.get_shard_iterator(StreamName="s", ShardId=shard,
                                                      ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
                reads.append(both_ways(lambda it=iterator: kinesis.get_records(ShardIterator=it, Limit=3)))
    finally:
        BaseResponse.serialized = serialized  # type: ignore[method-assign]
        for name, method in originals.items():
            setattr(responses.KinesisResponse, name, method)
    # Then both wrote the same status, headers and JSON (the second put's records numbered after the first's)
    def numbered_apart(out):  # type: ignore[no-untyped-def]
        status, headers, body = out
        return status, headers, {**body, "Records": [{**r, "SequenceNumber": type(r["SequenceNumber"]).__name__}
                                                     for r in body["Records"]]}

    assert numbered_apart(puts[0]) == numbered_apart(puts[1])
    assert all(moto_out == direct for moto_out, direct in reads)
    assert sum(len(moto_out[2]["Records"]) for moto_out, _ in reads) == 6  # noqa: PLR2004 - 2 puts of 4, limit 3


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


def test_ses_v2_answers_the_emulated_accounts_send_quota_and_the_pacer_reads_it(emulator) -> None:
    from cdp.adapters.sesv2 import SesV2RawSender
    from cdp.settings import Settings
    from cdp_infra.emulator import SES_MAX_SEND_RATE

    # Given an SES v2 client of the emulator (moto itself has no GetAccount)
    sesv2 = boto3.client("sesv2", endpoint_url=f"http://{emulator.host}:{emulator.port}", region_name="us-east-1",
                         aws_access_key_id="testing", aws_secret_access_key="testing")
    # When the account is read, before and after a send
    before = sesv2.get_account()["SendQuota"]
    boto3.client("ses", endpoint_url=f"http://{emulator.host}:{emulator.port}", region_name="us-east-1",
                 aws_access_key_id="testing", aws_secret_access_key="testing").verify_email_identity(
        EmailAddress="from@example.com")
    sesv2.send_email(FromEmailAddress="from@example.com", Destination={"ToAddresses": ["to@example.com"]},
                     Content={"Simple": {"Subject": {"Data": "s"}, "Body": {"Text": {"Data": "b"}}}})
    after = sesv2.get_account()["SendQuota"]
    # Then it answers the local account's rate, and counts the send; the sender paces under that rate
    assert before["MaxSendRate"] == after["MaxSendRate"] == SES_MAX_SEND_RATE
    assert after["SentLast24Hours"] == before["SentLast24Hours"] + 1
    assert SesV2RawSender(Settings(), client=sesv2, default_rate=1.0).max_send_rate() == SES_MAX_SEND_RATE


def test_a_client_waiting_for_100_continue_gets_it_before_sending_its_body(emulator) -> None:
    # Given an S3 bucket (pyarrow's uploads ask for 100-continue before their body)
    from .collect_support import interim_then_final

    boto3.client("s3", endpoint_url=f"http://{emulator.host}:{emulator.port}",
                 region_name="us-east-1").create_bucket(Bucket="lake")
    # When a PUT waits for the interim answer before its body
    interim, final = interim_then_final(emulator.host, emulator.port, "PUT", "/lake/k.parquet", b"x" * 1000)
    # Then it gets it, and the object is stored
    assert interim == b"HTTP/1.1 100 Continue"
    assert final == b"HTTP/1.1 200 OK"
