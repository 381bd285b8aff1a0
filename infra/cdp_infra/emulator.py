"""The AWS emulator of the local stack: moto in server mode, in a process of its own, on loopback.

A process of its own, because moto's work (parsing, serialising, copying tables) then no longer
competes for the handlers' GIL: the handlers wait on a socket while moto runs on another core.

moto's backends are not thread-safe (a TransactWriteItems copies tables that a concurrent request
may be changing), so the requests to one service are served one at a time; services (each a
backend of its own) are served at once.

The server keeps connections open between requests (werkzeug's closes each after one response).
These things of moto are changed here, for a long-running local stack, and nothing else:

* every model instance moto ever made (item versions, stream records, messages) was kept in a list
  for its dashboard, and every put to a stream added metric data to its CloudWatch: neither is
  kept (``_patch_retention``), so memory follows what the services hold;

* a Kinesis shard keeps every record ever put, and finds the last sequence number by listing all
  of them: put and get grow with the stream's length, and memory grows without bound. The local
  stack trims what every consumer has processed (``POST /_local/kinesis/trim``), as retention
  would on AWS, and the shard remembers its last sequence number across trims;
* a DynamoDB transaction deep-copies every table it touches, to roll back if it fails: seconds
  per transaction once a table holds a few thousand items, and gigabytes of garbage. Only the
  items the transaction names are saved and put back;
* the request dispatcher lists moto's package directory on every request: listed once;
* DynamoDB item results (GetItem, Query, Scan...) are written as JSON directly: moto's
  model-driven serialiser took seconds per Scan page of profiles; so are Kinesis's GetRecords and
  PutRecords (tens of milliseconds per page of 500 records);
* a Kinesis read starts at its position instead of scanning the shard from its first record;
* an SQS queue's message counts are made in one pass, and the retention check reads the queue's
  setting: moto made three passes over every message held for each message sent or received.
* SES v2's GetAccount, which moto lacks, answers the emulated account's send quota
  (``SES_MAX_SEND_RATE``): the activation function paces its sends under the quota it reads, as on
  AWS, instead of falling back to a guess of 14 a second that nothing here imposes.

The GIL's switch interval is 1 ms (Python's: 5 ms): a request returning from its socket waits at
most that long behind another service's Python.

``GET /_local/stats`` answers the requests served per operation (count, seconds serving, the
slowest, seconds waiting for the service's turn) and the RSS;
``GET /_local/memory`` where its Python memory grew (when started with tracemalloc);
``GET /_local/ses/messages`` the raw emails SES has sent (moto keeps them in this process, where
the stack's own process cannot read them).

Run: ``python -m cdp_infra.emulator [--host H] [--port P]``; it prints ``ready HOST PORT``.
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import os
import re
import socket
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from typing import Any
from urllib.parse import unquote


def rss_bytes(pid: int | str = "self") -> int:
    """Resident set size of a process (Linux /proc; 0 where unavailable)."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def cpu_seconds(pid: int | str | None = "self") -> float:
    """User + system CPU time a process has used so far (Linux /proc; 0 where unavailable)."""
    if pid is None:
        return 0.0
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _patch_moto() -> None:
    from collections import OrderedDict

    from moto import backends
    from moto.kinesis import models

    def last_sequence(self: Any) -> int:
        return next(reversed(self.records)) if self.records else getattr(self, "trimmed_through", 0)

    def first_sequence(self: Any) -> int:
        return next(iter(self.records)) if self.records else 0

    def put_record(self: Any, partition_key: str, data: str, explicit_hash_key: str) -> str:
        sequence_number = last_sequence(self) + 1
        self.records[sequence_number] = models.Record(partition_key, data, sequence_number, explicit_hash_key)
        return str(sequence_number)

    def get_records(self: Any, last_sequence_id: str, limit: int | None) -> tuple[list[Any], int, int]:
        # Sequence numbers of a shard are consecutive (put_record above): read from the position
        # instead of scanning every record held from the first.
        if not self.records:
            return [], int(last_sequence_id), 0
        position = max(int(last_sequence_id), first_sequence(self) - 1)
        end = last_sequence(self)
        results = []
        while position < end and (limit is None or len(results) < limit):
            position += 1
            record = self.records.get(position)
            if record is not None:
                results.append(record)
        behind = (self.records[end].created_at - results[-1].created_at) if results and end in self.records else 0.0
        return results, position if results else int(last_sequence_id), int(behind * 1000)

    models.Shard.get_records = get_records
    models.Shard.get_max_sequence_number = last_sequence
    models.Shard.get_min_sequence_number = first_sequence
    models.Shard.put_record = put_record

    def trim(shard: Any, through: int) -> int:
        """Drop the records up to sequence number ``through``; how many were dropped."""
        shard.trimmed_through = max(getattr(shard, "trimmed_through", 0), last_sequence(shard))
        keep = OrderedDict((seq, r) for seq, r in shard.records.items() if seq > through)
        dropped = len(shard.records) - len(keep)
        shard.records = keep
        return dropped

    models.Shard.trim = trim

    _patch_transactions()
    _patch_dynamodb_responses()
    _patch_sqs()
    _patch_kinesis_responses()
    _patch_ses_account()
    _patch_retention()
    _patch_ses_tags()
    modules = list(backends.list_of_moto_modules())
    backends.list_of_moto_modules = lambda: iter(modules)


def _patch_ses_tags() -> None:
    """moto's SES v2 SendEmail drops ``EmailTags`` and ``ConfigurationSetName``: kept on the sent
    message here, because SES's event publishing carries them (``mail.tags``) and the feedback
    function reads the ledger key from them."""
    from moto.sesv2.responses import SESV2Response

    original = SESV2Response.send_email

    def send_email(self: Any) -> str:
        answer = original(self)
        params = json.loads(self.body)
        message_id = json.loads(answer)["MessageId"]
        for message in reversed(self.sesv2_backend.core_backend.sent_messages):
            if message.id == message_id:
                message.tags = {t["Name"]: t["Value"] for t in params.get("EmailTags") or []}
                message.configuration_set = params.get("ConfigurationSetName") or ""
                break
        return answer

    SESV2Response.send_email = send_email  # type: ignore[method-assign]


def _patch_retention() -> None:
    """What moto keeps that nothing reads, for as long as the process lives.

    * Every instance of a moto model (``BaseModel``: each DynamoDB item version ever written, each
      stream record, SQS message, metric datum...) is appended to a list of its class, for moto's
      dashboard (``/moto-api/data.json``), which the local stack never reads: a trimmed stream record
      or an overwritten profile stayed in memory, ~3 KB per event. Instances are no longer listed.
    * Each PutRecord(s) adds two data points to moto's CloudWatch (IncomingBytes, IncomingRecords),
      kept forever; the local stack reads the functions' metrics from their EMF lines instead.
    """
    from moto.core.common_models import BaseModel
    from moto.kinesis.models import KinesisBackend

    def untracked(cls: type, *args: Any, **kwargs: Any) -> Any:
        return object.__new__(cls)

    BaseModel.__new__ = staticmethod(untracked)  # type: ignore[method-assign, assignment]
    KinesisBackend._send_stream_metrics = lambda self, *args, **kwargs: None  # type: ignore[method-assign]


_SQS_COUNTS = ("approximate_number_of_messages", "approximate_number_of_messages_delayed",
               "approximate_number_of_messages_not_visible")


def _sqs_counts(queue: Any) -> tuple[int, int, int]:
    """Visible (and not delayed), delayed and in-flight messages of a queue, in one pass and one
    reading of the clock (moto's three counts are three passes, each reading the clock per message)."""
    from moto.core.utils import unix_time_millis

    now = unix_time_millis()
    visible = delayed = in_flight = 0
    for message in queue._messages:
        is_delayed = now < message.delayed_until
        is_visible = now > message.visible_at
        delayed += is_delayed
        in_flight += not is_visible
        visible += is_visible and not is_delayed
    return visible, delayed, in_flight


def _patch_sqs() -> None:
    """moto's SQS costs grew with the messages a queue holds, several times per message.

    A queue's attributes (its three message counts: a pass over every message each, reading the
    clock per message) were made for every message sent (to look up ContentBasedDeduplication) and
    for every message received (to look up MessageRetentionPeriod): a send or receive cost
    O(messages held) three times over, per message, and tens of milliseconds once a consumer
    lagged a few hundred messages behind. The counts are now made in one pass per ``attributes``,
    and the retention check reads the queue's setting directly. Same answers (a test holds them
    to moto's).
    """
    from moto.core.utils import unix_time
    from moto.sqs import models

    queue_class = models.Queue
    attributes = queue_class.attributes.fget

    def counted(index: int, original: Any) -> property:
        def count(self: Any) -> int:
            memo = self.__dict__.get("_cdp_counts")
            return int(memo[index]) if memo is not None else int(original(self))

        return property(count)

    for index, name in enumerate(_SQS_COUNTS):
        setattr(queue_class, name, counted(index, getattr(queue_class, name).fget))

    def attributes_in_one_pass(self: Any) -> dict[str, Any]:
        self._cdp_counts = _sqs_counts(self)
        try:
            return dict(attributes(self))
        finally:
            del self._cdp_counts

    queue_class.attributes = property(attributes_in_one_pass)  # type: ignore[assignment]

    def within_retention(self: Any, queue_name: str, message: Any) -> bool:
        retention = self.get_queue(queue_name).message_retention_period
        return bool(retention + message.sent_timestamp / 1000 > unix_time())

    models.SQSBackend.is_message_valid_based_on_retention_period = within_retention  # type: ignore[method-assign]


# Item operations whose results moto already holds in DynamoDB's wire format (AttributeValue maps).
_ITEM_OPERATIONS = frozenset({"GetItem", "PutItem", "UpdateItem", "DeleteItem", "Query", "Scan", "BatchGetItem"})


def _drop_none(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _drop_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_drop_none(v) for v in value]
    return value


def _patch_dynamodb_responses() -> None:
    """Item results as JSON directly, instead of through moto's model-driven serialiser.

    moto 5.2 walks each response against the service model, attribute by attribute; for a Scan
    page of profiles that is seconds, and it was most of the emulator's time in the segment job.
    These results are already DynamoDB's JSON (AttributeValue maps), binary values as bytes (written
    as base64, as the wire carries them), less what moto adds outside the operation's output
    (``ConsumedCapacityUnits``); anything else the plain encoder cannot write goes the usual way.
    """
    from moto.dynamodb import responses

    original = responses.DynamoResult.execute_result

    def execute_result(self: Any, context: Any) -> Any:
        if context.operation_model.name in _ITEM_OPERATIONS and isinstance(self.result, dict):
            shape = context.operation_model.output_shape
            result = {k: v for k, v in self.result.items() if shape is None or k in shape.members}
            try:
                body = json.dumps(_drop_none(result), separators=(",", ":"), default=_base64)
            except (TypeError, ValueError):
                return original(self, context)
            return 200, {"Content-Type": "application/x-amz-json-1.0"}, body
        return original(self, context)

    responses.DynamoResult.execute_result = execute_result


def _base64(value: Any) -> str:
    """A binary attribute value as DynamoDB's JSON writes it (the profiles' packed windows)."""
    if isinstance(value, bytes | bytearray):
        return base64.b64encode(value).decode("ascii")
    raise TypeError(f"{type(value).__name__} is not JSON")


def _direct_json(result: dict[str, Any]) -> Any:
    """A moto ``ActionResult`` written as JSON as it is: its values are already the wire's."""
    from moto.core.responses import ActionResult

    class DirectJson(ActionResult):
        def execute_result(self, context: Any) -> Any:
            version = context.operation_model.service_model.metadata["jsonVersion"]
            body = json.dumps(_drop_none(self.result), separators=(",", ":"))
            return 200, {"Content-Type": f"application/x-amz-json-{version}"}, body

    return DirectJson(result)


def _patch_kinesis_responses() -> None:
    """GetRecords and PutRecords as JSON directly, instead of through moto's serialiser.

    moto walks the service model for each record of a response (a GetRecords page of 500 events:
    tens of milliseconds, under the stream's lock, on every read of every consumer). A record's
    data is kept as the base64 text it came in as, and its arrival time is written as moto's
    serialiser writes it (epoch seconds, truncated to the millisecond). A test holds both to
    moto's output.
    """
    import base64

    from moto.core.serialize import TimestampSerializer
    from moto.kinesis import responses

    stamp = TimestampSerializer._timestamp_unixtimestamp

    def get_records(self: Any) -> Any:
        next_iterator, records, behind = self.kinesis_backend.get_records(
            self._get_param("StreamARN"), self._get_param("ShardIterator"), self._get_param("Limit"))
        return _direct_json({
            "NextShardIterator": next_iterator,
            "Records": [{"Data": base64.b64encode(base64.b64decode(r.data)).decode("ascii"),
                         "PartitionKey": r.partition_key, "SequenceNumber": str(r.sequence_number),
                         "ApproximateArrivalTimestamp": stamp(r.created_at_datetime)} for r in records],
            "MillisBehindLatest": behind,
        })

    def put_records(self: Any) -> Any:
        return _direct_json(self.kinesis_backend.put_records(
            self._get_param("StreamARN"), self._get_param("StreamName"), self._get_param("Records")))

    responses.KinesisResponse.get_records = get_records  # type: ignore[method-assign]
    responses.KinesisResponse.put_records = put_records  # type: ignore[method-assign]


#: The emulated SES account's quota (GetAccount's SendQuota.MaxSendRate). SES grants production
#: accounts a rate on request (14 a second to start); nothing leaves this machine, so the local
#: account has a generous one, and the pacer still runs under what it reads.
SES_MAX_SEND_RATE = 200.0
SES_MAX_24_HOUR_SEND = 1_000_000.0


def _patch_ses_account() -> None:
    """SES v2 GetAccount: the send quota (sent in the last 24 hours as SES v1's GetSendQuota counts it)."""
    from moto.ses.models import ses_backends
    from moto.sesv2 import urls
    from moto.sesv2.responses import SESV2Response

    def get_account(self: Any) -> str:
        sent = ses_backends[self.current_account][self.region].sent_message_count
        return json.dumps({"SendQuota": {"Max24HourSend": SES_MAX_24_HOUR_SEND, "MaxSendRate": SES_MAX_SEND_RATE,
                                         "SentLast24Hours": float(sent)},
                           "SendingEnabled": True, "ProductionAccessEnabled": True, "EnforcementStatus": "HEALTHY"})

    SESV2Response.get_account = get_account  # type: ignore[attr-defined]
    # moto's catch-all ``/v2/.*`` is a literal path for the server's router: the route is named.
    urls.url_paths["{0}/v2/email/account$"] = SESV2Response.dispatch


def _patch_transactions() -> None:
    import copy
    import types

    from moto.dynamodb import models
    from moto.dynamodb.models.dynamo_type import DynamoType
    from moto.dynamodb.models.table import Table

    def deepcopy(value: Any, memo: Any = None) -> Any:
        # transact_write_items' whole-table backup: the table itself; its items are saved below.
        return value if isinstance(value, Table) else copy.deepcopy(value, memo)

    models.copy = types.SimpleNamespace(deepcopy=deepcopy, copy=copy.copy)  # type: ignore[attr-defined]
    original = models.DynamoDBBackend.transact_write_items

    def key_of(table: Any, op: dict[str, Any]) -> dict[str, Any] | None:
        if "Key" in op:
            return dict(op["Key"])
        item = op.get("Item") or {}
        names = [n for n in (table.hash_key_attr, table.range_key_attr) if n is not None]
        return {n: item[n] for n in names} if all(n in item for n in names) else None

    def restore(table: Any, key: dict[str, Any], old: Any) -> None:
        hash_value = DynamoType(key[table.hash_key_attr])
        if table.range_key_attr is None:
            if old is None:
                table.items.pop(hash_value, None)
            else:
                table.items[hash_value] = old
            return
        range_value = DynamoType(key[table.range_key_attr])
        bucket = table.items[hash_value]
        if old is None:
            bucket.pop(range_value, None)
            if not bucket:
                table.items.pop(hash_value, None)
        else:
            bucket[range_value] = old

    def transact_write_items(self: Any, transact_items: list[dict[str, Any]]) -> None:
        saved = []
        for entry in transact_items[:100]:
            op = next(iter(entry.values()), None) if isinstance(entry, dict) else None
            table = self.tables.get(op.get("TableName")) if isinstance(op, dict) else None
            key = key_of(table, op) if table is not None else None
            if table is None or key is None:
                continue
            try:
                current = self.get_item(table.name, key)
            except Exception:  # a malformed key: the transaction itself will refuse it
                continue
            saved.append((table, key, copy.deepcopy(current) if current is not None else None))
        try:
            original(self, transact_items)
        except Exception:
            for table, key, old in reversed(saved):
                restore(table, key, old)
            raise

    models.DynamoDBBackend.transact_write_items = transact_write_items


def _trim(body: dict[str, Any]) -> int:
    from moto.kinesis.models import kinesis_backends

    backend = kinesis_backends[body["account"]][body["region"]]
    shard = backend.streams[body["stream"]].shards[body["shard"]]
    return int(shard.trim(int(body["through"])))


def held() -> dict[str, int]:
    """What the emulator holds in memory: items per table, records per stream, objects per bucket,
    messages per queue."""
    from moto.dynamodb.models import dynamodb_backends
    from moto.kinesis.models import kinesis_backends
    from moto.s3.models import s3_backends
    from moto.sqs.models import sqs_backends

    counts: dict[str, int] = {}
    for regions in list(dynamodb_backends.values()):
        for backend in list(regions.values()):
            for name, table in backend.tables.items():
                counts[f"dynamodb {name}"] = len(table)
    for regions in list(kinesis_backends.values()):
        for backend in list(regions.values()):
            for name, stream in backend.streams.items():
                counts[f"kinesis {name}"] = sum(len(s.records) for s in stream.shards.values())
    for partitions in list(s3_backends.values()):
        for backend in list(partitions.values()):
            for name, bucket in backend.buckets.items():
                counts[f"s3 {name}"] = len(bucket.keys)
    for regions in list(sqs_backends.values()):
        for backend in list(regions.values()):
            for name, queue in backend.queues.items():
                if queue._messages:
                    counts[f"sqs {name}"] = len(queue._messages)
    return counts


_BASELINE: list[Any] = []


def memory_growth(limit: int = 40) -> list[dict[str, Any]]:
    """Where the emulator's Python memory grew since the first call, largest first.

    With tracemalloc on (``CDP_EMULATOR_TRACEMALLOC=N`` frames): by allocating stack. Without it
    (cheap enough for a long run): the objects the garbage collector tracks, by type, with their
    own sizes (a growing set or dict shows as its table; the strings it holds are not counted).
    """
    import gc
    import tracemalloc
    from collections import Counter

    gc.collect()
    if tracemalloc.is_tracing():
        snapshot = tracemalloc.take_snapshot().filter_traces([tracemalloc.Filter(False, tracemalloc.__file__)])
        if not _BASELINE:
            _BASELINE.append(snapshot)
        stats = snapshot.compare_to(_BASELINE[0], "traceback")
        return [{"bytes": s.size_diff, "count": s.count_diff,
                 "where": [f"{f.filename.rsplit('site-packages/', 1)[-1]}:{f.lineno}" for f in s.traceback]}
                for s in stats[:limit]]
    counts: Counter[str] = Counter()
    sizes: Counter[str] = Counter()
    for obj in gc.get_objects():
        kind = type(obj)
        name = f"{kind.__module__}.{kind.__qualname__}"
        counts[name] += 1
        sizes[name] += sys.getsizeof(obj)
    if not _BASELINE:
        _BASELINE.append((counts, sizes))
    base_counts, base_sizes = _BASELINE[0]
    grown = sorted(sizes, key=lambda n: sizes[n] - base_sizes.get(n, 0), reverse=True)
    return [{"bytes": sizes[n] - base_sizes.get(n, 0), "count": counts[n] - base_counts.get(n, 0), "where": [n]}
            for n in grown[:limit]]


def raw_emails() -> list[dict[str, Any]]:
    """The raw emails SES (v1 or v2) has sent, in send order: id, source, destinations, raw_data, and
    for SES v2 the message's tags and configuration set."""
    from moto.ses.models import ses_backends

    return [{"id": m.id, "source": m.source, "destinations": list(m.destinations), "raw_data": m.raw_data,
             "tags": dict(getattr(m, "tags", {}) or {}), "configuration_set": getattr(m, "configuration_set", "")}
            for regions in list(ses_backends.values()) for backend in list(regions.values())
            for m in list(getattr(backend, "sent_messages", [])) if hasattr(m, "raw_data")]


_SCOPE = re.compile(r"Credential=[^/,&]+/\d{8}/[^/]+/([a-z0-9-]+)/aws4_request")


def service_of(environ: dict[str, Any]) -> str:
    """The AWS service a request is signed for (``dynamodb``, ``kinesis``, ``s3``...); ``""`` if unsigned."""
    found = _SCOPE.search(environ.get("HTTP_AUTHORIZATION", "")) or _SCOPE.search(
        unquote(environ.get("QUERY_STRING", "")).replace("X-Amz-Credential=", "Credential="))
    return found.group(1) if found else ""


class Emulator:
    """The WSGI app: moto, one request at a time per service, plus the local stack's ``/_local/`` routes.

    moto's backends are not thread-safe, but each service's is its own: a profile read (DynamoDB)
    no longer waits behind a put to the stream (Kinesis) or a receive (SQS).
    """

    def __init__(self) -> None:
        from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

        _patch_moto()
        self.app = DomainDispatcherApplication(create_backend_app)
        self._locks: dict[str, threading.Lock] = {}
        self._locks_lock = threading.Lock()
        self._calls_lock = threading.Lock()
        # (operation) -> [requests, seconds serving, slowest, seconds waiting for the service's
        # turn]: what the pipeline asks of AWS, and what a request waits behind, for benchmarks.
        self.calls: dict[str, list[float]] = {}

    def lock(self, service: str) -> threading.Lock:
        with self._locks_lock:
            return self._locks.setdefault(service, threading.Lock())

    @contextmanager
    def all_locks(self) -> Iterator[None]:
        for service in ("dynamodb", "kinesis", "s3", "sqs"):
            self.lock(service)
        with self._locks_lock:
            locks = [self._locks[name] for name in sorted(self._locks)]
        with ExitStack() as stack:
            for lock in locks:
                stack.enter_context(lock)
            yield

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        # The connection stays open for the client's next request (see KeepAliveHandler): the
        # request's body is read whole now, so none of it is left on the stream whatever moto reads.
        stream = environ["wsgi.input"]
        if environ.get("wsgi.input_terminated"):
            environ["wsgi.input"] = io.BytesIO(stream.read())
        else:
            environ["wsgi.input"] = io.BytesIO(stream.read(int(environ.get("CONTENT_LENGTH") or 0)))
        path = environ.get("PATH_INFO", "")
        if path.startswith("/_local/"):
            return self._local(environ, start_response, path)
        arrived = time.perf_counter()
        with self.lock(service_of(environ)):
            started = time.perf_counter()
            body = list(self.app(environ, start_response))
            took = time.perf_counter() - started
        with self._calls_lock:
            stat = self.calls.setdefault(operation(environ), [0, 0.0, 0.0, 0.0])
            stat[0] += 1
            stat[1] += took
            stat[2] = max(stat[2], took)
            stat[3] += started - arrived
        return body

    def _local(self, environ: dict[str, Any], start_response: Any, path: str) -> Any:
        answer: Any
        if path == "/_local/stats":
            with self.all_locks(), self._calls_lock:
                answer = {"rss_bytes": rss_bytes(), "calls": dict(self.calls), "held": held()}
        elif path == "/_local/memory":
            with self.all_locks():
                answer = {"rss_bytes": rss_bytes(), "top": memory_growth()}
        elif path == "/_local/ses/messages":
            with self.lock("ses"):
                answer = {"messages": raw_emails()}
        elif path == "/_local/kinesis/trim" and environ.get("REQUEST_METHOD") == "POST":
            size = int(environ.get("CONTENT_LENGTH") or 0)
            body = json.loads(environ["wsgi.input"].read(size) or b"{}")
            with self.lock("kinesis"):
                answer = {"dropped": _trim(body)}
        else:
            start_response("404 Not Found", [("Content-Type", "application/json")])
            return [b'{"error": "unknown route"}']
        data = json.dumps(answer).encode()
        start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(data)))])
        return [data]


def operation(environ: dict[str, Any]) -> str:
    """``DynamoDB_20120810.PutItem`` style name of a request (S3: method and first path part)."""
    target = environ.get("HTTP_X_AMZ_TARGET")
    if target:
        return str(target)
    query = environ.get("QUERY_STRING", "")
    for part in query.split("&"):
        if part.startswith("Action="):
            return f"Query.{part[7:]}"
    path = environ.get("PATH_INFO", "/")
    return f"{environ.get('REQUEST_METHOD')} {'/'.join(path.split('/')[:3])}"


def keep_alive_handler() -> Any:
    """moto's request handler, keeping connections open between requests (HTTP/1.1).

    werkzeug's server closes every connection after one response; each AWS call of the stack then
    opened a TCP connection, and the emulator started a thread for it: a good part of both
    processes' time. The handler leaves out werkzeug's ``Connection: close`` unless the client asked
    for it; the request body is always read whole first (:class:`Emulator`).
    """
    import selectors
    import types

    from moto.moto_server.werkzeug_app import MotoRequestHandler
    from werkzeug import serving

    class NothingLeft:
        """werkzeug reads what a client sent after its request until the client stops, as it closes
        the connection anyway; on a kept connection that is the next request. The body is read
        whole before (:class:`Emulator`), so there is nothing to drain."""

        def register(self, *args: Any) -> None:
            pass

        def select(self, timeout: float | None = None) -> list[Any]:
            return []

        def close(self) -> None:
            pass

    serving.selectors = types.SimpleNamespace(DefaultSelector=NothingLeft,  # type: ignore[attr-defined]
                                              EVENT_READ=selectors.EVENT_READ)

    class KeepAliveHandler(MotoRequestHandler):
        protocol_version = "HTTP/1.1"
        # Buffered: a response's headers and body leave in one write when werkzeug flushes after
        # the body (unbuffered, two writes, each a return to the GIL behind the other services).
        wbufsize = -1

        def handle_expect_100(self) -> bool:
            # A client that sends ``Expect: 100-continue`` (S3 uploads through pyarrow do) waits for
            # the interim answer before its body: buffered, it would stay here while the emulator
            # waits for the body, and both would wait forever. It must leave now.
            answered = super().handle_expect_100()
            self.wfile.flush()
            return answered

        def run_wsgi(self) -> None:
            # http.server has answered ``100 Continue`` (above); werkzeug would write a second one.
            del self.headers["Expect"]
            super().run_wsgi()

        def setup(self) -> None:
            super().setup()
            # Headers and body leave in two writes: without this, the second waits for the
            # client's delayed acknowledgement of the first (40 ms) on a kept connection.
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

        def send_header(self, keyword: str, value: str) -> None:
            if keyword.lower() == "connection" and value.lower() == "close" and not self.close_connection:
                return
            super().send_header(keyword, value)

    return KeepAliveHandler


def _exit_with_parent(parent: int) -> None:
    """The stack that started the emulator may die without stopping it (SIGKILL): go with it."""
    while os.getppid() == parent:
        time.sleep(1.0)
    os._exit(0)


def main(argv: list[str] | None = None) -> int:
    import logging

    from werkzeug.serving import make_server

    parser = argparse.ArgumentParser(prog="python -m cdp_infra.emulator")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--switch-interval", type=float, default=0.001,
                        help="the GIL's switch interval (s): a request returning from its socket waits at most "
                             "this long behind another service's Python (Python's default: 0.005)")
    args = parser.parse_args(argv)
    sys.setswitchinterval(args.switch_interval)
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    if os.environ.get("CDP_EMULATOR_TRACEMALLOC"):  # for bench_memory: where the memory goes
        import tracemalloc

        tracemalloc.start(int(os.environ["CDP_EMULATOR_TRACEMALLOC"]))
    server = make_server(args.host, args.port, Emulator(), threaded=True, request_handler=keep_alive_handler())
    host, port = server.server_address[:2]
    threading.Thread(target=_exit_with_parent, args=(os.getppid(),), daemon=True).start()
    print(f"ready {host} {port}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
