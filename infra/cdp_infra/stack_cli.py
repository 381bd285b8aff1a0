"""`cdp --stack NAME status` and `cdp --stack NAME logs FUNCTION --since 10m`: a deployed stack's
health from its CloudFormation outputs and AWS APIs (on AWS, or the stack `make deploy-local` runs).

The runbook for each alarm is in docs/operations.md.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from datetime import UTC, datetime, timedelta
from typing import Any

#: The stack outputs that are failure destinations, and what each one holds.
FAILURE_QUEUES = {
    "UnifyFailureQueueUrl": "stream batches unify/archive gave up on",
    "ScheduleFailureQueueUrl": "failed segment / compaction runs",
    "ActivationDeadLetterQueueUrl": "activation messages dead-lettered",
}
#: Functions that read the stream: their IteratorAge is the stream lag.
STREAM_READERS = ("UnifyFunction", "ArchiveFunction")
LAST_RUN = "#last-run"


def parse_since(text: str) -> timedelta:
    """``10m``, ``2h``, ``30s``, ``1d``."""
    match = re.fullmatch(r"(\d+)([smhd])", text.strip())
    if not match:
        raise argparse.ArgumentTypeError(f"not a duration like 10m, 2h, 1d: {text!r}")
    value, unit = int(match.group(1)), match.group(2)
    return timedelta(**{{"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}[unit]: value})


def function_name(outputs: dict[str, str], name: str) -> str:
    """``unify``, ``UnifyFunction`` or the physical name -> the physical function name."""
    for key, value in outputs.items():
        if key.endswith("Function") and name in (key, key.removesuffix("Function").lower(), value):
            return value
    known = sorted(k.removesuffix("Function").lower() for k in outputs if k.endswith("Function"))
    raise SystemExit(f"cdp: no function {name!r} in the stack (one of: {', '.join(known)})")


def stack_status(outputs: dict[str, str], stack: str, *, sqs: Any, cloudwatch: Any, dynamodb: Any,
                 now: datetime) -> dict[str, Any]:
    """Stream lag, failure destination depths, alarms in ALARM and the last run of each segment."""
    lag: dict[str, float | None] = {}
    for key in STREAM_READERS:
        if key not in outputs:
            continue
        points = cloudwatch.get_metric_statistics(
            Namespace="AWS/Lambda", MetricName="IteratorAge", Statistics=["Maximum"], Period=60,
            Dimensions=[{"Name": "FunctionName", "Value": outputs[key]}],
            StartTime=now - timedelta(minutes=10), EndTime=now).get("Datapoints", [])
        latest = max(points, key=lambda p: p["Timestamp"], default=None)
        lag[outputs[key]] = None if latest is None else round(float(latest["Maximum"]) / 1000, 1)
    queues = {}
    for key, meaning in FAILURE_QUEUES.items():
        if key in outputs:
            attributes = sqs.get_queue_attributes(QueueUrl=outputs[key], AttributeNames=["ApproximateNumberOfMessages"])
            queues[outputs[key].rsplit("/", 1)[-1]] = {
                "messages": int(attributes["Attributes"]["ApproximateNumberOfMessages"]), "holds": meaning}
    alarms = [{"name": a["AlarmName"], "reason": a.get("StateReason", "")}
              for page in cloudwatch.get_paginator("describe_alarms").paginate(
                  AlarmNamePrefix=f"{stack}-", StateValue="ALARM")
              for a in page.get("MetricAlarms", [])]
    runs = {}
    if "MembershipTable" in outputs:
        query = {"TableName": outputs["MembershipTable"], "KeyConditionExpression": "#s = :s",
                 "ExpressionAttributeNames": {"#s": "segment"}, "ExpressionAttributeValues": {":s": {"S": LAST_RUN}}}
        while True:
            page = dynamodb.query(**query)
            for item in page.get("Items", []):
                report = json.loads(item.get("report", {}).get("S", "{}") or "{}")
                runs[item["profile_id"]["S"]] = {"at": item.get("at", {}).get("S", ""),
                                                 **{k: report[k] for k in ("members", "entered", "exited") if k in report}}
            if "LastEvaluatedKey" not in page:
                break
            query["ExclusiveStartKey"] = page["LastEvaluatedKey"]
    healthy = not alarms and not any(q["messages"] for q in queues.values())
    return {"stack": stack, "healthy": healthy, "stream_lag_seconds": lag, "failure_queues": queues,
            "alarms_in_alarm": alarms, "last_segment_runs": dict(sorted(runs.items()))}


def format_status(status: dict[str, Any]) -> str:
    lines = [f"stack {status['stack']}: {'healthy' if status['healthy'] else 'NEEDS ATTENTION'}", "stream lag:"]
    for name, seconds in status["stream_lag_seconds"].items():
        lines.append(f"  {name:<32} {'no data (idle)' if seconds is None else f'{seconds:.1f} s'}")
    lines.append("failure destinations:")
    for name, queue in status["failure_queues"].items():
        lines.append(f"  {name:<32} {queue['messages']:>6}   {queue['holds']}")
    lines.append(f"alarms in ALARM: {len(status['alarms_in_alarm'])}")
    lines += [f"  {a['name']}: {a['reason']}  (runbook: docs/operations.md)" for a in status["alarms_in_alarm"]]
    lines.append("last segment runs:")
    if not status["last_segment_runs"]:
        lines.append("  none yet")
    for segment, run in status["last_segment_runs"].items():
        counts = " ".join(f"{k}={run[k]}" for k in ("members", "entered", "exited") if k in run)
        lines.append(f"  {segment:<32} {run['at']}  {counts}")
    return "\n".join(lines)


def _stack_or_exit() -> tuple[str, dict[str, str]]:
    import boto3

    from .deployed import stack_outputs

    stack = os.environ.get("CDP_STACK")
    if not stack:
        raise SystemExit("cdp: name the stack: cdp --stack NAME status (or CDP_STACK=NAME)")
    return stack, stack_outputs(boto3.client("cloudformation"), stack)


def cmd_status(args: argparse.Namespace) -> int:
    import boto3

    stack, outputs = _stack_or_exit()
    status = stack_status(outputs, stack, sqs=boto3.client("sqs"), cloudwatch=boto3.client("cloudwatch"),
                          dynamodb=boto3.client("dynamodb"), now=datetime.now(UTC))
    print(json.dumps(status, indent=2, default=str) if args.json else format_status(status))
    return 0 if status["healthy"] else 1


def cmd_logs(args: argparse.Namespace) -> int:
    import boto3

    _, outputs = _stack_or_exit()
    group = f"/aws/lambda/{function_name(outputs, args.function)}"
    start = int((datetime.now(UTC) - args.since).timestamp() * 1000)
    logs = boto3.client("logs")
    query: dict[str, Any] = {"logGroupName": group, "startTime": start}
    if args.filter:
        query["filterPattern"] = args.filter
    for page in logs.get_paginator("filter_log_events").paginate(**query):
        for event in page.get("events", []):
            at = datetime.fromtimestamp(event["timestamp"] / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S")
            sys.stdout.write(f"{at}  {event['message'].rstrip()}\n")
    return 0


def add_parser(sub: Any) -> None:
    status = sub.add_parser("status", help="a deployed stack's health: stream lag, failure queues, alarms, "
                                           "last segment runs (needs --stack)")
    status.add_argument("--json", action="store_true")
    status.set_defaults(func=cmd_status)
    logs = sub.add_parser("logs", help="a deployed function's CloudWatch logs (needs --stack)")
    logs.add_argument("function", help="collect, unify, archive, segment, compact, report, activate, profileview or privacy")
    logs.add_argument("--since", type=parse_since, default=timedelta(minutes=10), help="e.g. 10m, 2h, 1d")
    logs.add_argument("--filter", help="a CloudWatch Logs filter pattern, e.g. ERROR")
    logs.set_defaults(func=cmd_logs)
