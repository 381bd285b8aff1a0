"""Event source mappings, emulated: Kinesis shard pollers, SQS pollers and schedules.

They deliver the exact event shapes Lambda delivers and follow the mapping's settings from
the template: BatchSize, MaximumBatchingWindowInSeconds, ReportBatchItemFailures
(checkpoint before the first failed record and retry from it), BisectBatchOnFunctionError,
MaximumRetryAttempts and the on-failure destination (an SQS message shaped like Lambda's).
"""

from __future__ import annotations

import base64
import json
import logging
import re
import threading
import time
import uuid
from datetime import UTC, datetime
from typing import Any

from cdp.times import format_time

from .runtime import LocalFunction

log = logging.getLogger("cdp.local.esm")


class _Poller:
    """A background thread that polls until stopped and survives its own errors, as Lambda's pollers do."""

    function: LocalFunction
    _stop: threading.Event
    _thread: threading.Thread | None
    stop_timeout_s: float = 30.0  # how long stop() waits for the thread (an invocation in flight)

    def _thread_name(self) -> str:
        raise NotImplementedError

    def poll_once(self) -> None:
        raise NotImplementedError

    def _start_thread(self) -> None:
        self._thread = threading.Thread(target=self._run, daemon=True, name=self._thread_name())
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=self.stop_timeout_s)

    def restart(self) -> None:
        """Stop, then poll again as a new poller would (fault runs): a stream resumes at its checkpoint.

        The invocation in flight is let finish first, however long it takes: a new thread started
        beside it would share the buffer, the iterator and the checkpoint, and the old thread, seeing
        the new stop event unset, would go on polling too (two invocations of one shard at once).
        """
        self._stop.set()
        if self._thread:
            self._thread.join()
        self._stop = threading.Event()
        self.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.poll_once()
            except Exception:  # keep polling, like Lambda's poller
                log.exception("poller %s failed; retrying", self._thread_name())
                time.sleep(0.5)


class KinesisShardPoller(_Poller):
    """One Lambda poller for one shard, as Lambda runs one per shard (ParallelizationFactor 1)."""

    def __init__(self, kinesis: Any, sqs: Any, function: LocalFunction, mapping: dict[str, Any], *,
                 stream_name: str, stream_arn: str, shard_id: str, failure_queue_url: str | None,
                 max_window_s: float = 1.0, quiet_s: float | None = None, region: str = "us-east-1") -> None:
        self.kinesis, self.sqs, self.function = kinesis, sqs, function
        self.stream_name, self.stream_arn, self.shard_id = stream_name, stream_arn, shard_id
        self.batch_size = int(mapping.get("BatchSize", 100))
        self.window_s = min(float(mapping.get("MaximumBatchingWindowInSeconds", 0)), max_window_s)
        # A batch in hand is delivered once no record has come for this long, before its window
        # ends (None: only the window or the batch size ends it, as on Lambda).
        self.quiet_s = quiet_s
        self.report_failures = "ReportBatchItemFailures" in mapping.get("FunctionResponseTypes", [])
        self.bisect = bool(mapping.get("BisectBatchOnFunctionError", False))
        self.max_retries = int(mapping.get("MaximumRetryAttempts", -1))
        self.failure_queue_url = failure_queue_url
        self.starting_position = mapping.get("StartingPosition", "TRIM_HORIZON")
        self.region = region
        self.buffer: list[dict[str, Any]] = []
        self.processed = 0
        self.sent_to_failure_destination = 0
        self.caught_up = False
        # When the read that found the shard caught up was issued (monotonic): a drain check counts
        # only reads issued after it began, not one that was in flight as the last records came in.
        self.caught_up_at: float | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._iterator: str | None = None
        # The last record done with (succeeded or sent to the failure destination), as Lambda keeps it.
        self.checkpoint: str | None = None
        # The first record of each range sent to the failure destination, and when (monotonic): what
        # its pointer names must stay readable for a replay, as the stream keeps it on AWS.
        self.pointed_to: list[tuple[str, float]] = []

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> KinesisShardPoller:
        # Records read but not done with are read again from the checkpoint, never skipped.
        self.buffer.clear()
        self.caught_up, self.caught_up_at = False, None
        position: dict[str, str] = {"ShardIteratorType": self.starting_position}
        if self.checkpoint:
            position = {"ShardIteratorType": "AFTER_SEQUENCE_NUMBER", "StartingSequenceNumber": self.checkpoint}
        self._iterator = self.kinesis.get_shard_iterator(
            StreamName=self.stream_name, ShardId=self.shard_id, **position)["ShardIterator"]
        self._start_thread()
        return self

    def _thread_name(self) -> str:
        return f"esm-{self.function.spec.logical_id}-{self.shard_id}"

    @property
    def idle(self) -> bool:
        return self.caught_up and not self.buffer

    def idle_since(self, since: float) -> bool:
        """Caught up, by a read issued at or after ``since`` (monotonic), with nothing in hand."""
        at = self.caught_up_at
        return self.idle and at is not None and at >= since

    @property
    def done(self) -> int:
        """Records done with so far (processed or sent to the failure destination)."""
        return self.processed + self.sent_to_failure_destination

    # ------------------------------------------------------------------ polling
    def _fill(self) -> None:
        deadline = time.monotonic() + self.window_s
        last_record = time.monotonic()
        while len(self.buffer) < self.batch_size:
            issued = time.monotonic()
            out = self.kinesis.get_records(ShardIterator=self._iterator, Limit=min(10_000, self.batch_size))
            self._iterator = out["NextShardIterator"]
            self.buffer.extend(out["Records"])
            if not out["Records"]:
                self.caught_up = not self.buffer
                self.caught_up_at = issued if self.caught_up else None
                quiet = self.quiet_s is not None and time.monotonic() - last_record >= self.quiet_s
                if self.buffer and time.monotonic() < deadline and not quiet:
                    self._stop.wait(0.05 if self.quiet_s is None else min(0.25, self.quiet_s / 2))
                    continue
                break
            self.caught_up, self.caught_up_at = False, None
            last_record = time.monotonic()
            if time.monotonic() >= deadline:
                break

    def poll_once(self) -> None:
        self._fill()
        if not self.buffer:
            self._stop.wait(0.5)  # Lambda polls an idle shard about once a second
            return
        self.caught_up, self.caught_up_at = False, None
        batch = self.buffer[: self.batch_size]
        del self.buffer[: len(batch)]
        self._deliver(batch, attempt=0)
        if not self._stop.is_set():
            self.checkpoint = batch[-1]["SequenceNumber"]

    def _event(self, records: list[dict[str, Any]]) -> dict[str, Any]:
        return {"Records": [{
            "kinesis": {
                "kinesisSchemaVersion": "1.0",
                "partitionKey": r["PartitionKey"],
                "sequenceNumber": r["SequenceNumber"],
                "data": base64.b64encode(r["Data"]).decode("ascii"),
                "approximateArrivalTimestamp": r["ApproximateArrivalTimestamp"].timestamp(),
            },
            "eventSource": "aws:kinesis",
            "eventVersion": "1.0",
            "eventID": f"{self.shard_id}:{r['SequenceNumber']}",
            "eventName": "aws:kinesis:record",
            "invokeIdentityArn": f"arn:aws:iam::{self.function.account_id}:role/local",
            "awsRegion": self.region,
            "eventSourceARN": self.stream_arn,
        } for r in records]}

    def _deliver(self, batch: list[dict[str, Any]], attempt: int) -> None:
        """Invoke until the batch is done, retried, bisected or sent to the failure destination."""
        while batch and not self._stop.is_set():
            try:
                response = self.function.invoke(self._event(batch))
            except Exception as exc:
                log.warning("%s failed on %d records (attempt %d): %s: %s", self.function.spec.logical_id,
                            len(batch), attempt + 1, type(exc).__name__, exc, exc_info=log.isEnabledFor(logging.DEBUG))
                if self._exhausted(attempt):
                    self._to_failure_destination(batch, "RetryAttemptsExhausted")
                    return
                if self.bisect and len(batch) > 1:
                    half = len(batch) // 2
                    self._deliver(batch[:half], attempt + 1)
                    self._deliver(batch[half:], attempt + 1)
                    return
                attempt += 1
                time.sleep(min(0.05 * 2 ** attempt, 2.0))
                continue
            failed = self._failed_index(batch, response)
            if failed is None:
                self._done(batch)
                return
            # Checkpoint before the first failed record; retry from it.
            self._done(batch[:failed])
            batch = batch[failed:]
            if self._exhausted(attempt):
                self._to_failure_destination(batch[:1], "RetryAttemptsExhausted")
                batch, attempt = batch[1:], 0
                continue
            attempt += 1
            time.sleep(min(0.05 * 2 ** attempt, 2.0))

    def _done(self, records: list[dict[str, Any]]) -> None:
        if records:
            self.processed += len(records)
            self.checkpoint = records[-1]["SequenceNumber"]

    def _exhausted(self, attempt: int) -> bool:
        return self.max_retries >= 0 and attempt >= self.max_retries

    def _failed_index(self, batch: list[dict[str, Any]], response: Any) -> int | None:
        if not self.report_failures or not isinstance(response, dict):
            return None
        failures = response.get("batchItemFailures") or []
        if not failures:
            return None
        sequence = {r["SequenceNumber"]: i for i, r in enumerate(batch)}
        indexes = []
        for failure in failures:
            ident = failure.get("itemIdentifier")
            if ident not in sequence:  # an invalid identifier fails the whole batch, as on Lambda
                return 0
            indexes.append(sequence[ident])
        return min(indexes)

    def _to_failure_destination(self, records: list[dict[str, Any]], condition: str) -> None:
        self.sent_to_failure_destination += len(records)
        self.pointed_to.append((records[0]["SequenceNumber"], time.monotonic()))
        self._done(records)
        if not self.failure_queue_url:
            log.error("dropping %d records of %s: no on-failure destination", len(records), self.shard_id)
            return
        message = {
            "requestContext": {
                "requestId": str(uuid.uuid4()),
                "functionArn": self.function.spec.logical_id,
                "condition": condition,
                "approximateInvokeCount": self.max_retries + 1,
            },
            "responseContext": {"statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled"},
            "version": "1.0",
            "timestamp": format_time(datetime.now(UTC)),
            "KinesisBatchInfo": {
                "shardId": self.shard_id,
                "startSequenceNumber": records[0]["SequenceNumber"],
                "endSequenceNumber": records[-1]["SequenceNumber"],
                "approximateArrivalOfFirstRecord": format_time(records[0]["ApproximateArrivalTimestamp"]),
                "approximateArrivalOfLastRecord": format_time(records[-1]["ApproximateArrivalTimestamp"]),
                "batchSize": len(records),
                "streamArn": self.stream_arn,
            },
        }
        self.sqs.send_message(QueueUrl=self.failure_queue_url, MessageBody=json.dumps(message))
        log.error("sent %d records of %s to the on-failure destination", len(records), self.shard_id)


class SqsPoller(_Poller):
    """Lambda's SQS event source: receive, invoke, delete what succeeded (ReportBatchItemFailures)."""

    def __init__(self, sqs: Any, function: LocalFunction, mapping: dict[str, Any], *,
                 queue_url: str, queue_arn: str, region: str = "us-east-1") -> None:
        self.sqs, self.function = sqs, function
        self.queue_url, self.queue_arn = queue_url, queue_arn
        self.batch_size = min(int(mapping.get("BatchSize", 10)), 10)
        self.report_failures = "ReportBatchItemFailures" in mapping.get("FunctionResponseTypes", [])
        self.region = region
        self.processed = 0
        self.failed = 0
        self.in_flight = 0
        self._last_empty = False
        # When the receive that found the queue empty was issued (monotonic); see KinesisShardPoller.
        self._empty_at: float | None = None
        self._empty_polls = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> SqsPoller:
        self._start_thread()
        return self

    def _thread_name(self) -> str:
        return f"esm-{self.function.spec.logical_id}-sqs"

    #: A queue is empty when it holds no message at all: none visible, none in flight, and none sent
    #: with a delay (a deferred campaign message, a delivery to retry later), which SQS counts apart.
    _COUNTS = ("ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible",
               "ApproximateNumberOfMessagesDelayed")

    @property
    def idle(self) -> bool:
        if not self._last_empty or self.in_flight:
            return False
        attrs = self.sqs.get_queue_attributes(QueueUrl=self.queue_url, AttributeNames=list(self._COUNTS))["Attributes"]
        return all(attrs[name] == "0" for name in self._COUNTS)

    def idle_since(self, since: float) -> bool:
        """Found empty by a receive issued at or after ``since``, nothing in hand, nothing in flight."""
        at = self._empty_at
        return at is not None and at >= since and self.idle

    @property
    def done(self) -> int:
        return self.processed + self.failed

    def poll_once(self) -> None:
        issued = time.monotonic()
        out = self.sqs.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=self.batch_size,
                                       WaitTimeSeconds=0, AttributeNames=["All"], MessageAttributeNames=["All"])
        messages = out.get("Messages", [])
        if not messages:
            # Lambda long-polls an idle queue; here each empty poll is a request the emulator serves
            # one at a time, so an idle queue is polled less and less often, down to once a second.
            self._last_empty, self._empty_at = True, issued
            self._empty_polls += 1
            self._stop.wait(min(0.1 * 2 ** min(self._empty_polls, 4), 1.0))
            return
        self._last_empty, self._empty_at = False, None
        self._empty_polls = 0
        self.in_flight = len(messages)
        try:
            self._deliver(messages)
        finally:
            self.in_flight = 0

    def _deliver(self, messages: list[dict[str, Any]]) -> None:
        event = {"Records": [{
            "messageId": m["MessageId"],
            "receiptHandle": m["ReceiptHandle"],
            "body": m["Body"],
            "attributes": m.get("Attributes", {}),
            "messageAttributes": m.get("MessageAttributes", {}),
            "md5OfBody": m["MD5OfBody"],
            "eventSource": "aws:sqs",
            "eventSourceARN": self.queue_arn,
            "awsRegion": self.region,
        } for m in messages]}
        try:
            response = self.function.invoke(event)
        except Exception:
            # The whole batch becomes visible again after the visibility timeout; redrive applies.
            log.warning("%s failed on %d messages", self.function.spec.logical_id, len(messages), exc_info=True)
            self.failed += len(messages)
            self._release(messages)
            return
        failed_ids = set()
        if self.report_failures and isinstance(response, dict):
            failed_ids = {f.get("itemIdentifier") for f in response.get("batchItemFailures") or []}
        done = [m for m in messages if m["MessageId"] not in failed_ids]
        if done:
            self.sqs.delete_message_batch(QueueUrl=self.queue_url, Entries=[
                {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(done)])
        self.processed += len(done)
        retry = [m for m in messages if m["MessageId"] in failed_ids]
        self.failed += len(retry)
        self._release(retry)

    def _release(self, messages: list[dict[str, Any]]) -> None:
        # Locally, retry soon instead of waiting the full visibility timeout.
        for m in messages:
            self.sqs.change_message_visibility(QueueUrl=self.queue_url, ReceiptHandle=m["ReceiptHandle"],
                                               VisibilityTimeout=1)


_RATE = re.compile(r"^rate\((\d+)\s+(minute|minutes|hour|hours|day|days)\)$")


def schedule_seconds(expression: str) -> float | None:
    """Seconds between firings of an EventBridge ``rate(...)`` expression; None for cron."""
    m = _RATE.match(expression.strip())
    if not m:
        return None
    unit = m.group(2).rstrip("s")
    return int(m.group(1)) * {"minute": 60, "hour": 3600, "day": 86400}[unit]


def scheduled_event(rule_arn: str, region: str, account_id: str, at: datetime | None = None) -> dict[str, Any]:
    """The event EventBridge delivers to a scheduled rule's target."""
    at = at or datetime.now(UTC)
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": account_id,
        "time": at.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": region,
        "resources": [rule_arn],
        "detail": {},
    }


class Scheduler:
    """Fires each Schedule event of the template at its rate (cron rules fire only on demand)."""

    def __init__(self, jobs: list[tuple[LocalFunction, str, str]], region: str, account_id: str) -> None:
        self.jobs = jobs  # (function, rule name, expression)
        self.region, self.account_id = region, account_id
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def fire(self, function: LocalFunction, rule: str, at: datetime | None = None) -> Any:
        arn = f"arn:aws:events:{self.region}:{self.account_id}:rule/{rule}"
        return function.invoke(scheduled_event(arn, self.region, self.account_id, at))

    def start(self) -> Scheduler:
        for function, rule, expression in self.jobs:
            period = schedule_seconds(expression)
            if period is None:
                log.info("schedule %s (%s) fires only on demand locally", rule, expression)
                continue
            thread = threading.Thread(target=self._loop, args=(function, rule, period), daemon=True,
                                      name=f"schedule-{rule}")
            thread.start()
            self._threads.append(thread)
        return self

    def _loop(self, function: LocalFunction, rule: str, period: float) -> None:
        while not self._stop.wait(period):
            try:
                self.fire(function, rule)
            except Exception:
                log.exception("scheduled run of %s failed", rule)

    def stop(self) -> None:
        self._stop.set()


_AT = re.compile(r"^at\((\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)\)$")


def one_time_due(expression: str, timezone: str | None = None) -> datetime | None:
    """When an EventBridge Scheduler ``at(...)`` expression fires (UTC); None for rate/cron."""
    from zoneinfo import ZoneInfo

    m = _AT.match(expression.strip())
    if not m:
        return None
    local = datetime.strptime(m.group(1), "%Y-%m-%dT%H:%M:%S").replace(tzinfo=ZoneInfo(timezone or "UTC"))
    return local.astimezone(UTC)


class _Every:
    """A background thread that calls ``tick`` every ``interval_s`` until stopped and survives its own
    errors (the next tick tries again)."""

    interval_s: float
    _stop: threading.Event
    _thread: threading.Thread | None

    def tick(self) -> object:
        raise NotImplementedError

    def _start_every(self, name: str) -> None:
        self._thread = threading.Thread(target=self._loop, daemon=True, name=name)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.tick()
            except Exception:
                log.exception("%s failed; retrying", self._thread.name if self._thread else "a background loop")

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=30)


class OneTimeSchedules(_Every):
    """EventBridge Scheduler's one-time schedules, fired as AWS fires them: when ``at(...)`` is due,
    the target (an SQS queue here) gets the schedule's ``Input``, then a schedule with
    ``ActionAfterCompletion: DELETE`` is deleted. The emulator stores schedules but never fires them."""

    def __init__(self, scheduler: Any, sqs: Any, groups: list[str], queue_url_for_arn: Any,
                 interval_s: float = 1.0) -> None:
        self.scheduler, self.sqs, self.groups = scheduler, sqs, groups
        self.queue_url_for_arn, self.interval_s = queue_url_for_arn, interval_s
        self.fired = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def pending(self) -> list[dict[str, Any]]:
        """Every schedule of the groups, with its details (GetSchedule)."""
        found = []
        for group in self.groups:
            for page in self.scheduler.get_paginator("list_schedules").paginate(GroupName=group):
                for summary in page.get("Schedules", []):
                    found.append(self.scheduler.get_schedule(GroupName=group, Name=summary["Name"]))
        return found

    def fire_due(self, now: datetime | None = None) -> int:
        """Fire every enabled one-time schedule due at ``now`` (default: the clock); how many fired."""
        now = now or datetime.now(UTC)
        fired = 0
        with self._lock:  # the thread and a test calling this never fire one schedule twice
            for detail in self.pending():
                due = one_time_due(detail["ScheduleExpression"], detail.get("ScheduleExpressionTimezone"))
                if detail.get("State", "ENABLED") != "ENABLED" or due is None or due > now:
                    continue
                target = detail["Target"]
                if ":sqs:" not in target["Arn"]:
                    log.error("schedule %s: only SQS targets are emulated (%s)", detail["Name"], target["Arn"])
                    continue
                self.sqs.send_message(QueueUrl=self.queue_url_for_arn(target["Arn"]),
                                      MessageBody=target.get("Input", "{}"))
                if detail.get("ActionAfterCompletion") == "DELETE":
                    self.scheduler.delete_schedule(GroupName=detail["GroupName"], Name=detail["Name"])
                fired += 1
            self.fired += fired
        return fired

    def tick(self) -> int:
        return self.fire_due()

    def start(self) -> OneTimeSchedules:
        if self.groups:
            self._start_every("one-time-schedules")
        return self


class SesSendEvents(_Every):
    """SES event publishing, for Send events: each email the emulator's SES accepted under the stack's
    configuration set becomes a Send notification (with the tags it was sent with, as SES publishes
    them) delivered to the functions subscribed to the event destination's topic (FeedbackFunction),
    in SNS's event shape. Like SNS, a failed invocation is tried again (at the next poll). The other
    event types (delivery, bounce...) come from a mailbox provider, which the demo plays."""

    def __init__(self, emails: Any, functions: list[LocalFunction], configuration_set: str,
                 interval_s: float = 0.2) -> None:
        self.emails, self.functions, self.configuration_set = emails, functions, configuration_set
        self.interval_s = interval_s
        self.published = 0
        self.failures = 0
        self._seen = 0  # emails published (in the emulator's send order)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def publish_new(self) -> int:
        """Publish the Send events of every email sent since the last call; how many were published."""
        with self._lock:
            messages = self.emails()[self._seen:]
            done = 0
            for start in range(0, len(messages), 10):
                chunk = messages[start:start + 10]
                ours = [m for m in chunk if m.get("configuration_set") == self.configuration_set]
                if ours:
                    event = {"Records": [{"EventSource": "aws:sns", "EventVersion": "1.0",
                                          "Sns": {"Type": "Notification", "MessageId": str(uuid.uuid4()),
                                                  "Message": json.dumps(send_notification(m))}} for m in ours]}
                    try:
                        for function in self.functions:
                            function.invoke(event)
                    except Exception as exc:  # noqa: BLE001 - SNS retries a failed delivery
                        self.failures += 1
                        log.debug("Send events: %s failed (%s); retried", [f.spec.logical_id for f in self.functions], exc)
                        break
                self._seen += len(chunk)
                done += len(ours)
            self.published += done
            return done

    def tick(self) -> int:
        return self.publish_new()

    def start(self) -> SesSendEvents:
        if self.functions and self.configuration_set:
            self._start_every("ses-send-events")
        return self


def send_notification(message: dict[str, Any]) -> dict[str, Any]:
    """SES's Send event for one sent email (the event publishing format: ``mail.tags`` as lists)."""
    import email
    from email import policy

    to = message.get("destinations") or []
    if not to:
        to = [str(email.message_from_string(message["raw_data"], policy=policy.default)["To"])]
    return {"eventType": "Send", "send": {},
            "mail": {"messageId": message["id"], "source": message.get("source", ""), "destination": list(to),
                     "timestamp": format_time(datetime.now(UTC)),
                     "tags": {k: [v] for k, v in (message.get("tags") or {}).items()}}}
