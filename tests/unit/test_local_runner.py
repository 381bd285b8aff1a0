"""The local runner delivers events as Lambda's event sources and API Gateway would."""

from __future__ import annotations

import base64
import os
import time
from datetime import UTC, datetime
from typing import Any

import pytest

from cdp_infra.pollers import KinesisShardPoller, schedule_seconds, scheduled_event
from cdp_infra.server import Route, proxy_event


class FakeFunction:
    """Answers each invocation with the next scripted response (an exception is raised)."""

    def __init__(self, *responses: Any) -> None:
        self.responses = list(responses)
        self.batches: list[list[str]] = []
        self.account_id = "123456789012"

        class Spec:
            logical_id = "Fake"

        self.spec = Spec()

    def invoke(self, event: dict[str, Any]) -> Any:
        self.batches.append([r["kinesis"]["sequenceNumber"] for r in event["Records"]])
        response = self.responses.pop(0) if self.responses else {"batchItemFailures": []}
        if isinstance(response, Exception):
            raise response
        return response


class FakeSqs:
    def __init__(self) -> None:
        self.messages: list[str] = []

    def send_message(self, QueueUrl: str, MessageBody: str) -> None:  # noqa: N803 - boto3's names
        self.messages.append(MessageBody)


def _records(n: int) -> list[dict[str, Any]]:
    return [{"SequenceNumber": str(i), "PartitionKey": "k", "Data": b"{}",
             "ApproximateArrivalTimestamp": datetime(2026, 1, 1, tzinfo=UTC)} for i in range(n)]


def _poller(function: FakeFunction, sqs: FakeSqs, **mapping: Any) -> KinesisShardPoller:
    return KinesisShardPoller(None, sqs, function, {"FunctionResponseTypes": ["ReportBatchItemFailures"],
                                                    "MaximumRetryAttempts": 2, **mapping},
                              stream_name="s", stream_arn="arn:s", shard_id="shardId-0",
                              failure_queue_url="q")


def test_a_reported_failure_retries_from_the_first_failed_record() -> None:
    function = FakeFunction({"batchItemFailures": [{"itemIdentifier": "2"}]}, {"batchItemFailures": []})
    poller = _poller(function, FakeSqs())
    poller._deliver(_records(4), attempt=0)
    assert function.batches == [["0", "1", "2", "3"], ["2", "3"]]
    assert poller.processed == 4


def test_a_poison_record_goes_to_the_failure_destination_after_bounded_retries_and_the_rest_flows() -> None:
    poison = {"batchItemFailures": [{"itemIdentifier": "1"}]}
    function = FakeFunction({"batchItemFailures": [{"itemIdentifier": "1"}]}, poison, poison)
    sqs = FakeSqs()
    poller = _poller(function, sqs)
    poller._deliver(_records(3), attempt=0)
    assert len(sqs.messages) == 1 and '"startSequenceNumber": "1"' in sqs.messages[0]
    assert function.batches[-1] == ["2"]
    assert poller.processed == 3 and poller.sent_to_failure_destination == 1


def test_a_crashing_handler_is_bisected_until_the_bad_record_is_isolated() -> None:
    class Crashy(FakeFunction):
        def invoke(self, event: dict[str, Any]) -> Any:
            seqs = [r["kinesis"]["sequenceNumber"] for r in event["Records"]]
            self.batches.append(seqs)
            if "2" in seqs:
                raise RuntimeError("boom")
            return {"batchItemFailures": []}

    function, sqs = Crashy(), FakeSqs()
    poller = _poller(function, sqs, BisectBatchOnFunctionError=True)
    poller._deliver(_records(4), attempt=0)
    assert poller.sent_to_failure_destination == 1 and '"endSequenceNumber": "2"' in sqs.messages[0]
    assert poller.processed == 4


def test_an_unknown_item_identifier_fails_the_whole_batch_as_on_lambda() -> None:
    function = FakeFunction({"batchItemFailures": [{"itemIdentifier": "nope"}]}, {"batchItemFailures": []})
    _poller(function, FakeSqs())._deliver(_records(2), attempt=0)
    assert function.batches == [["0", "1"], ["0", "1"]]


def test_kinesis_event_records_carry_base64_data_and_the_shard_in_the_event_id() -> None:
    event = _poller(FakeFunction(), FakeSqs())._event(_records(1))
    record = event["Records"][0]
    assert base64.b64decode(record["kinesis"]["data"]) == b"{}"
    assert record["eventID"] == "shardId-0:0" and record["eventSource"] == "aws:kinesis"


def test_rate_expressions_are_read_and_cron_is_left_to_on_demand_runs() -> None:
    assert schedule_seconds("rate(15 minutes)") == 900
    assert schedule_seconds("rate(1 hour)") == 3600
    assert schedule_seconds("cron(0 12 * * ? *)") is None


def test_scheduled_events_have_eventbridges_shape() -> None:
    event = scheduled_event("arn:rule", "us-east-1", "1", datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC))
    assert event["detail-type"] == "Scheduled Event" and event["time"] == "2026-01-02T03:04:05Z"


def test_a_route_template_matches_one_path_segment_and_decodes_it() -> None:
    route = Route("GET", "/v1/profiles/{identifier}", None)  # type: ignore[arg-type]
    assert route.pattern.match("/v1/profiles/email:a@b.io")
    assert not route.pattern.match("/v1/profiles/a/b")


def test_proxy_events_base64_encode_bodies_as_the_template_binary_media_types_ask() -> None:
    class Fn:
        account_id = "1"

    route = Route("POST", "/v1/track", Fn())  # type: ignore[arg-type]
    event = proxy_event("POST", route, "/v1/track", {}, "a=1", [("Content-Type", "application/json")],
                        b'{"x":1}', "127.0.0.1", "v1api")
    assert event["isBase64Encoded"] and base64.b64decode(event["body"]) == b'{"x":1}'
    assert event["requestContext"]["resourcePath"] == "/v1/track"
    assert event["queryStringParameters"] == {"a": "1"}


ECHO_APP = '''
import threading
from chalice import Chalice

app = Chalice(app_name="echo")
first_entered = threading.Event()
second_started = threading.Event()


@app.route("/echo", methods=["POST"], content_types=["text/plain"])
def echo():
    body = app.current_request.raw_body
    if body == b"second":
        second_started.set()
    else:
        first_entered.set()
        # Lambda runs one invocation per environment: a second one cannot start in this one.
        second_started.wait(timeout=0.5)
    return {"body": app.current_request.raw_body.decode()}


def handler(event, context):
    return app(event, context)
'''


def test_two_requests_to_one_chalice_function_each_get_their_own_body(tmp_path: Any) -> None:
    """Chalice keeps the request on the app (``app.current_request``), which is safe on Lambda
    because an execution environment runs one invocation at a time; locally, two at once would
    read each other's request (an answer for the wrong batch, a batch never streamed)."""
    import json
    import sys
    import threading

    from cdp_infra.runtime import LocalFunction
    from cdp_infra.template import FunctionSpec

    (tmp_path / "app.py").write_text(ECHO_APP)
    function = LocalFunction(FunctionSpec("Echo", tmp_path, "app.handler", {}, {}, 30), "echo", "us-east-1",
                             "123456789012")
    route = Route("POST", "/echo", function)
    answers: dict[str, str] = {}

    def call(body: bytes) -> None:
        event = proxy_event("POST", route, "/echo", {}, "", [("Content-Type", "text/plain")], body,
                            "127.0.0.1", "v1")
        answers[body.decode()] = json.loads(function.invoke(event)["body"])["body"]

    function._load()
    module = sys.modules["cdp_fn_echo"]
    first = threading.Thread(target=call, args=(b"first",))
    first.start()
    assert module.first_entered.wait(timeout=10)
    call(b"second")
    first.join()
    assert answers == {"first": "first", "second": "second"}


def test_invocations_one_after_another_reuse_one_warm_environment(tmp_path: Any) -> None:
    from cdp_infra.runtime import LocalFunction
    from cdp_infra.template import FunctionSpec

    (tmp_path / "count.py").write_text("calls = []\n\ndef handler(event, context):\n"
                                       "    calls.append(event)\n    return len(calls)\n")
    function = LocalFunction(FunctionSpec("Count", tmp_path, "count.handler", {}, {}, 30), "count", "us-east-1",
                             "123456789012")
    assert [function.invoke({}) for _ in range(3)] == [1, 2, 3]
    assert function.environments == 1


WORKER_HANDLER = """
import os

from aws_lambda_powertools import Metrics

metrics = Metrics(namespace="Test", service="cdp")
calls = []

@metrics.log_metrics
def handler(event, context):
    calls.append(event)
    if event.get("fail"):
        raise ValueError("bad input")
    if event.get("die"):
        os._exit(3)
    metrics.add_metric(name="Seen", unit="Count", value=1)
    return {"pid": os.getpid(), "calls": len(calls), "function": context.function_name,
            "setting": os.environ.get("WORKER_SETTING")}
"""


def test_an_environment_in_a_process_of_its_own_answers_records_metrics_and_raises_as_in_process(
        tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from cdp_infra.runtime import FunctionError, LocalFunction, MetricsRecorder
    from cdp_infra.template import FunctionSpec

    (tmp_path / "worker_fn.py").write_text(WORKER_HANDLER)
    monkeypatch.setenv("WORKER_SETTING", "from the stack")
    metrics = MetricsRecorder()
    function = LocalFunction(FunctionSpec("Worker", tmp_path, "worker_fn.handler", {}, {}, 30), "worker",
                             "us-east-1", "123456789012", metrics, own_process=True)
    try:
        function.prewarm()
        [pid] = function.pids
        first, second = function.invoke({}), function.invoke({})
        # Warm: the same process and module keep their state between invocations, as on Lambda.
        assert (first["pid"], first["calls"], second["calls"]) == (pid, 1, 2)
        assert pid != os.getpid()
        assert first["function"] == "worker" and first["setting"] == "from the stack"
        assert metrics.snapshot() == {"Worker": {"Seen": 2.0}}
        with pytest.raises(FunctionError, match="ValueError: bad input"):
            function.invoke({"fail": True})
        assert function.pids == [pid]  # a handler's error leaves the environment warm
        with pytest.raises(FunctionError, match="exited"):
            function.invoke({"die": True})
        # A dead environment is not reused: the next invocation gets a new one (a cold start).
        assert function.invoke({})["calls"] == 1
        assert function.pids != [pid] and function.environments == 1
    finally:
        function.stop()
    assert function.pids == [] and function.environments == 0


class FakeKinesis:
    """A shard of records, read through iterators that are just positions."""

    def __init__(self, records: list[dict[str, Any]]) -> None:
        self.records = records

    def get_shard_iterator(self, **kwargs: Any) -> dict[str, str]:
        after = kwargs.get("StartingSequenceNumber")
        return {"ShardIterator": str(0 if after is None else int(after) + 1)}

    def get_records(self, ShardIterator: str, Limit: int) -> dict[str, Any]:  # noqa: N803 - boto3's names
        start = int(ShardIterator)
        out = self.records[start:start + Limit]
        return {"Records": out, "NextShardIterator": str(start + len(out))}


def test_a_restart_waits_for_the_invocation_in_flight_so_a_shard_never_has_two_at_once() -> None:
    import threading
    import time

    entered, release = threading.Event(), threading.Event()
    active: list[int] = []
    overlaps: list[int] = []
    lock = threading.Lock()

    class SlowFunction(FakeFunction):
        def invoke(self, event: dict[str, Any]) -> Any:
            with lock:
                active.append(1)
                overlaps.append(len(active))
            try:
                if not entered.is_set():
                    entered.set()
                    release.wait(timeout=10)  # an invocation that outlasts the poller's stop timeout
                return super().invoke(event)
            finally:
                with lock:
                    active.pop()

    function = SlowFunction()
    poller = KinesisShardPoller(FakeKinesis(_records(4)), FakeSqs(), function,
                                {"FunctionResponseTypes": ["ReportBatchItemFailures"], "BatchSize": 2},
                                stream_name="s", stream_arn="arn:s", shard_id="shardId-0", failure_queue_url="q")
    poller.stop_timeout_s = 0.05
    poller.start()
    try:
        assert entered.wait(timeout=10)
        restarting = threading.Thread(target=poller.restart)
        restarting.start()
        restarting.join(timeout=0.5)
        release.set()
        restarting.join(timeout=10)
        deadline = time.monotonic() + 10
        while poller.checkpoint != "3" and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        poller.stop()
    assert max(overlaps) == 1
    assert poller.checkpoint == "3"


def test_the_checkpoint_is_the_last_record_done_with_even_one_sent_to_the_failure_destination() -> None:
    poison = {"batchItemFailures": [{"itemIdentifier": "2"}]}
    poller = _poller(FakeFunction(poison, poison, poison), FakeSqs())
    poller.buffer = _records(3)
    poller._fill = lambda: None  # type: ignore[method-assign]
    poller.poll_once()
    assert poller.checkpoint == "2" and poller.sent_to_failure_destination == 1


def test_nothing_is_checkpointed_before_a_batch_is_done() -> None:
    poller = _poller(FakeFunction(), FakeSqs())
    assert poller.checkpoint is None


def test_concurrent_invocations_each_flush_their_own_metrics() -> None:
    import threading

    from aws_lambda_powertools.metrics import Metrics, MetricUnit

    from cdp_infra.runtime import capture_emf

    # Given the local runtime's metrics, and a function that has added a metric in its thread
    capture_emf()
    metrics = Metrics(namespace="Test", service="test")
    metrics.add_metric(name="Mine", unit=MetricUnit.Count, value=1)
    # When another invocation, in another thread, flushes its own (empty) set
    other = threading.Thread(target=metrics.clear_metrics)
    other.start()
    other.join()
    # Then the first function's metric is still there to flush
    assert "Mine" in metrics.metric_set
    metrics.clear_metrics()


class ScriptedKinesis:
    """get_records answers with the next scripted page of records; an empty page after that."""

    def __init__(self, *pages: list[dict[str, Any]]) -> None:
        self.pages = list(pages)

    def get_records(self, ShardIterator: str, Limit: int) -> dict[str, Any]:  # noqa: N803 - boto3's names
        return {"Records": self.pages.pop(0) if self.pages else [], "NextShardIterator": ShardIterator}


def test_a_shard_counts_as_drained_only_by_a_read_issued_after_the_check_began() -> None:
    # Given a poller whose read found the shard empty
    poller = _poller(FakeFunction(), FakeSqs())
    poller.kinesis, poller._iterator = ScriptedKinesis(), "it"
    before = time.monotonic()
    poller._fill()
    after = time.monotonic() + 1
    # Then it is drained for a check begun before that read, not for one begun after it
    assert poller.idle_since(before) and not poller.idle_since(after)


def test_records_in_hand_are_not_drained() -> None:
    poller = _poller(FakeFunction(), FakeSqs(), BatchSize=10)
    poller.kinesis, poller._iterator = ScriptedKinesis(_records(3)), "it"
    since = time.monotonic()
    poller._fill()
    assert poller.buffer and not poller.idle_since(since)


class StubPoller:
    """Always idle; ``done`` goes up by ``work`` during the first check, as if a batch ran then."""

    def __init__(self, work: int = 0) -> None:
        self.done, self.work, self.rounds = 0, work, 0

    def idle_since(self, since: float) -> bool:
        self.rounds += 1
        self.done += self.work
        self.work = 0
        return True


def test_draining_checks_again_when_a_consumer_did_work_during_the_check() -> None:
    from cdp_infra.local import LocalPipeline

    # Given two consumers, one of which processes a batch while the check runs
    pipeline = LocalPipeline()
    busy, quiet = StubPoller(work=5), StubPoller()
    pipeline.kinesis_pollers, pipeline.sqs_pollers = [busy], [quiet]  # type: ignore[list-item]
    # When the pipeline is waited for
    pipeline.wait_drained(timeout_s=5)
    # Then a second round found nothing more done
    assert busy.rounds == 2 and quiet.rounds == 2


def test_a_batch_grows_while_records_come_and_is_delivered_once_they_stop() -> None:
    # Given a 60 s window (as the archive's), capped at 30 s locally, with a 0.2 s quiet cut
    pages = [_records(3), _records(3), _records(2)]
    poller = KinesisShardPoller(ScriptedKinesis(*pages), FakeSqs(), FakeFunction(),
                                {"BatchSize": 100, "MaximumBatchingWindowInSeconds": 60},
                                stream_name="s", stream_arn="arn:s", shard_id="shardId-0", failure_queue_url=None,
                                max_window_s=30, quiet_s=0.2)
    poller._iterator = "it"
    started = time.monotonic()
    # When it fills a batch
    poller._fill()
    # Then the batch holds every page, and it did not wait for the window
    assert len(poller.buffer) == 8 and time.monotonic() - started < 5


class QueueWithCounts:
    """An SQS queue that answers every receive empty and reports the given approximate counts."""

    def __init__(self, **counts: int) -> None:
        self.counts = {"ApproximateNumberOfMessages": 0, "ApproximateNumberOfMessagesNotVisible": 0,
                       "ApproximateNumberOfMessagesDelayed": 0, **counts}

    def receive_message(self, **_: Any) -> dict[str, Any]:
        return {}

    def get_queue_attributes(self, QueueUrl: str, AttributeNames: list[str]) -> dict[str, Any]:  # noqa: N803
        return {"Attributes": {name: str(self.counts[name]) for name in AttributeNames}}


def test_a_queue_holding_a_delayed_message_is_not_drained() -> None:
    from cdp_infra.pollers import SqsPoller

    # Given a queue whose receive finds nothing, but which holds a message sent with a delay
    # (a deferred campaign message, a delivery retried later): it will be received later
    poller = SqsPoller(QueueWithCounts(ApproximateNumberOfMessagesDelayed=1), FakeFunction(), {},
                       queue_url="q", queue_arn="arn:q")
    since = time.monotonic()
    poller.poll_once()
    # Then the queue is not drained; once the message is gone, it is
    assert not poller.idle_since(since)
    poller.sqs.counts["ApproximateNumberOfMessagesDelayed"] = 0
    assert poller.idle_since(since)


def test_every_boto3_session_reads_the_service_descriptions_through_one_loader() -> None:
    # Given the local runtime's shared loader
    import boto3

    from cdp_infra.runtime import share_service_models

    share_service_models()
    # When two environments each make a session of their own
    first, second = boto3.Session(region_name="us-east-1"), boto3.Session(region_name="us-east-1")
    # Then both read through the same loader, whose search paths boto3 did not add twice
    assert first._loader is second._loader
    assert len(first._loader.search_paths) == len(set(first._loader.search_paths))


def test_a_drain_that_times_out_names_the_queue_and_its_delayed_messages() -> None:
    from cdp_infra.local import DrainTimeout, LocalPipeline
    from cdp_infra.pollers import SqsPoller

    # Given a queue holding deliveries waiting out their backoff (sent with a delay)
    pipeline = LocalPipeline()
    poller = SqsPoller(QueueWithCounts(ApproximateNumberOfMessagesDelayed=5), FakeFunction(), {},
                       queue_url="q", queue_arn="arn:q")
    poller.poll_once()
    pipeline.kinesis_pollers, pipeline.sqs_pollers = [], [poller]
    # When the drain gives up, and while it waits
    told: list[str] = []
    with pytest.raises(DrainTimeout) as raised:
        pipeline.wait_drained(timeout_s=0.5, report=told.append, report_every_s=0.1)
    # Then both say which queue holds what
    assert "Fake queue: 0 visible, 0 in flight, 5 delayed" in str(raised.value)
    assert told and "5 delayed" in told[0]


class RecordingEmulator:
    def __init__(self) -> None:
        self.trims: list[str] = []

    def trim_kinesis(self, *, account: str, region: str, stream: str, shard: str, through: str) -> int:
        self.trims.append(through)
        return 0


def test_the_stream_is_not_trimmed_past_records_a_failure_pointer_names() -> None:
    from types import SimpleNamespace

    from cdp_infra.local import LocalPipeline

    # Given a consumer that gave up on records 3..4 (a pointer to them on the failure queue) and
    # went on to record 9, beside another consumer at record 9
    gave_up = _poller(FakeFunction(RuntimeError("boom")), FakeSqs(), MaximumRetryAttempts=0)
    gave_up._deliver([{**r, "SequenceNumber": str(i)} for i, r in zip((3, 4), _records(2), strict=True)], attempt=0)
    gave_up.checkpoint = "9"
    other = _poller(FakeFunction(), FakeSqs())
    other.checkpoint = "9"
    pipeline = LocalPipeline()
    pipeline.kinesis_pollers = [gave_up, other]
    pipeline.stack = SimpleNamespace(account_id="1", region="r", parameters={"StreamRetentionHours": "24"})  # type: ignore[assignment]
    emulator = RecordingEmulator()
    pipeline._moto = emulator  # type: ignore[assignment]
    # When the processed records are trimmed
    pipeline.trim_streams()
    # Then the shard keeps the pointer's records (a replay reads them back), as the stream's retention would
    assert gave_up.sent_to_failure_destination == 2 and emulator.trims == ["2"]
