"""The cost model's arithmetic: prices x (workload, measured figures, stated assumptions) -> lines.

Pure functions, no I/O beyond reading the prices file, so the unit tests can hold the arithmetic
(rounding of DynamoDB units, per-million figures, proportionality) without running any bench.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

HOURS_PER_MONTH = 730.0
SECONDS_PER_MONTH = HOURS_PER_MONTH * 3600
# Lambda gives a function CPU in proportion to its memory: one full vCPU at 1,769 MB.
FULL_VCPU_MB = 1769
KB = 1024


# --------------------------------------------------------------------------- prices
@dataclass(frozen=True)
class Prices:
    region: str
    read_on: str
    values: Mapping[str, float]
    sources: Mapping[str, str]

    def __getitem__(self, name: str) -> float:
        return self.values[name]


def load_prices(path: Path) -> Prices:
    doc = yaml.safe_load(path.read_text())
    entries = doc["prices"]
    return Prices(
        region=str(doc["region"]),
        read_on=str(doc["read_on"]),
        values={name: float(entry["value"]) for name, entry in entries.items()},
        sources={name: str(entry["source"]) for name, entry in entries.items()},
    )


# --------------------------------------------------------------------------- DynamoDB sizes
def _number_size(text: str) -> int:
    """Bytes DynamoDB counts for a number: about one per two significant digits, plus one."""
    digits = text.lstrip("-").replace(".", "").lstrip("0").rstrip("0") or "0"
    return math.ceil(len(digits) / 2) + 1


def attribute_value_size(value: Mapping[str, Any]) -> int:
    """Size of one attribute value in DynamoDB's wire form ({"S": ...}, {"M": {...}}, ...)."""
    (kind, inner), = value.items()
    if kind == "S":
        return len(str(inner).encode())
    if kind == "N":
        return _number_size(str(inner))
    if kind == "B":
        return len(inner)
    if kind in ("BOOL", "NULL"):
        return 1
    if kind == "SS":
        return sum(len(s.encode()) for s in inner)
    if kind == "NS":
        return sum(_number_size(str(n)) for n in inner)
    if kind == "BS":
        return sum(len(b) for b in inner)
    if kind == "L":  # 3 bytes for the list, 1 per element
        return 3 + sum(1 + attribute_value_size(v) for v in inner)
    if kind == "M":  # 3 bytes for the map, 1 per element, plus each element's name
        return 3 + sum(1 + len(k.encode()) + attribute_value_size(v) for k, v in inner.items())
    raise ValueError(f"unknown attribute type {kind}")


def item_size(item: Mapping[str, Mapping[str, Any]]) -> int:
    """An item's size as DynamoDB bills it: attribute names plus values."""
    return sum(len(name.encode()) + attribute_value_size(value) for name, value in item.items())


def write_units(size_bytes: int, *, transactional: bool = False) -> int:
    """Write request units for one item write: 1 per started KB (at least 1), doubled in a transaction."""
    units = max(1, math.ceil(size_bytes / KB))
    return 2 * units if transactional else units


def read_units(size_bytes: int, *, consistent: bool = True) -> float:
    """Read request units for one item read: 1 per started 4 KB, half if eventually consistent."""
    units = max(1, math.ceil(size_bytes / (4 * KB)))
    return float(units) if consistent else units / 2


# --------------------------------------------------------------------------- inputs
@dataclass(frozen=True)
class Workload:
    """The reference workload and the deployment's settings (template.yaml's values by default)."""

    events_per_month: float = 10_000_000
    people: int = 100_000
    segments: int = 20
    segment_runs_per_day: float = 24  # hourly (the template's default schedule is every 15 minutes)
    emails_per_month: float = 50_000
    # How events arrive: analytics.js sends one event per request by default; server SDKs batch.
    browser_share: float = 0.7
    server_events_per_request: float = 20
    api: str = "rest"  # "rest" (the template) or "http"
    # Kinesis: template.yaml ShardCount default 2, RetentionPeriodHours 168, provisioned mode.
    kinesis_mode: str = "provisioned"
    shards: int = 2
    retention_hours: int = 168
    # Event source mappings (template.yaml): unify 500 / 1 s, archive 5,000 / 60 s.
    unify_batch_max: int = 500
    unify_window_s: float = 1
    archive_batch_max: int = 5000
    archive_window_s: float = 60
    # Memory sizes (template.yaml, all arm64).
    collect_mb: int = 1024
    unify_mb: int = 512
    archive_mb: int = 1024
    segment_mb: int = 1024
    compact_mb: int = 2048
    activate_mb: int = 512
    activate_batch: int = 10
    log_retention_days: int = 30
    lake_months: float = 12  # events kept in the lake (storage billed on what has accumulated)
    # X-Ray: Active tracing on every function and the API stage; Lambda's default sampling.
    # Lambda's own sampling (not configurable) for functions it traces itself (Tracing: Active);
    # the API's requests follow API Gateway's decision, which a sampling rule sets.
    xray_reservoir_per_s: float = 1.0
    xray_rate: float = 0.05
    api_xray_reservoir_per_s: float = 1.0
    api_xray_rate: float = 0.05
    function_tracing: str = "Active"  # PassThrough: a stream, queue or schedule trigger is not traced
    alarms: int = 7
    xray_traced_functions: int = 5  # collect (via the API), unify, archive, segment, activate; compact daily
    warm_collect_containers: int = 4
    log_sample_rate: float = 1.0  # share of INFO lines kept (1 = everything, as deployed)
    segment_dimension_metrics: int = 2  # SegmentEntries and SegmentExits carry a segment dimension
    dedup_window: int = 200  # IdentityConfig.dedup_window: applied messageIds kept on the profile

    @property
    def requests_per_month(self) -> float:
        per_event = self.browser_share + (1 - self.browser_share) / self.server_events_per_request
        return self.events_per_month * per_event

    @property
    def events_per_second(self) -> float:
        return self.events_per_month / SECONDS_PER_MONTH

    def scaled(self, factor: float) -> Workload:
        """The same shape at ``factor`` times the events and people (segments and emails alike)."""
        return replace(self, events_per_month=self.events_per_month * factor, people=int(self.people * factor),
                       emails_per_month=self.emails_per_month * factor)


@dataclass(frozen=True)
class Assumptions:
    """Figures we cannot measure locally: service latencies a function waits on, per call."""

    kinesis_put_s: float = 0.020
    dynamodb_call_s: float = 0.008
    s3_put_s: float = 0.050
    s3_get_s: float = 0.030
    sqs_call_s: float = 0.015
    ses_call_s: float = 0.050
    athena_query_s: float = 3.0  # a small query's queue + run time, waited on by the segment function
    # Local CPU seconds -> Graviton2 CPU seconds at a full vCPU (1.0 = as fast as the bench machine).
    cpu_factor: float = 1.0
    lambda_platform_log_bytes: int = 420  # START, END, REPORT (+ XRAY TraceId) lines per invocation
    apigw_access_log_bytes: int = 260  # the template's access-log format, one line per request
    # KMS: each caller-resource pair (tables, stream shards, queues, bucket key, log groups) asks KMS
    # about once per 5 minutes while active (data-key caching; S3 bucket keys are on).
    kms_caller_resource_pairs: int = 40
    sqs_idle_pollers: int = 5  # the activation queue's event source mapping long-polls (20 s)
    dimension_values_per_reason_metric: int = 2  # rejection reasons etc. that actually occur
    identifiers_per_person: float = 4  # two devices, a user id, an email
    identity_item_bytes: int = 90
    merge_log_bytes_per_person: int = 600
    membership_item_bytes: int = 120
    members_per_segment_share: float = 0.05


@dataclass(frozen=True)
class Measured:
    """What the bench measured (see bench/cost/measure.py). CPU figures are process time, medians."""

    collect_cpu_s_per_request: float  # fixed part of one API request
    collect_cpu_s_per_event: float
    unify_cpu_s_per_event: float
    archive_cpu_s_per_event: float
    event_record_bytes: float  # one event as the collector puts it on the stream
    profile_item_bytes: int  # a steady-state profile item (full window of applied messageIds)
    # From the counted unify run at the reference batch size:
    unify_events_per_batch: float
    unify_calls_per_batch: float  # DynamoDB + SQS requests one invocation waits on
    profile_writes_per_event: float  # PutItem on the profiles table (each 1 item)
    profile_tx_items_per_event: float  # profile items written in merge transactions
    profile_reads_per_event: float  # profile items read (consistent BatchGetItem keys)
    other_wru_per_event: float  # identity, merge log, membership writes at their measured sizes
    other_rru_per_event: float
    dynamodb_requests_per_event: float
    parquet_bytes_per_event: float
    athena_bytes_per_query_per_event_in_window: float  # bytes scanned / events in the query's window
    collect_log_bytes_per_request: float
    unify_log_bytes_per_invocation: float
    archive_log_bytes_per_invocation: float
    profile_item_bytes_window_50: int = 0  # the same profile with a window of 50 ids
    segment_log_bytes_per_run: float = 4000
    activate_log_bytes_per_invocation: float = 1500


# --------------------------------------------------------------------------- the template's settings
def _value(template: Mapping[str, Any], value: Any) -> Any:
    """A property's value, a ``Ref`` to a parameter read as the parameter's default."""
    if isinstance(value, Mapping) and set(value) == {"Ref"}:
        return template.get("Parameters", {})[value["Ref"]]["Default"]
    return value


def _function(template: Mapping[str, Any], logical_id: str) -> Mapping[str, Any]:
    return template["Resources"][logical_id]["Properties"]


def _memory(template: Mapping[str, Any], logical_id: str) -> int:
    default = template.get("Globals", {}).get("Function", {}).get("MemorySize", 128)
    return int(_value(template, _function(template, logical_id).get("MemorySize", default)))


def _stream_mapping(template: Mapping[str, Any], logical_id: str) -> Mapping[str, Any]:
    events = _function(template, logical_id).get("Events", {})
    return next(e["Properties"] for e in events.values() if e.get("Type") == "Kinesis")


def template_settings(template: Mapping[str, Any]) -> dict[str, Any]:
    """The deployment's settings the model prices, read from the parsed template.yaml (its defaults):
    shards and retention, batching of the stream consumers, memory sizes, log retention, the X-Ray
    sampling rule of the API and the functions' tracing mode, INFO log sampling. ``Workload`` fields."""
    resources = template["Resources"]
    stream = next(r["Properties"] for r in resources.values() if r.get("Type") == "AWS::Kinesis::Stream")
    mode = (stream.get("StreamModeDetails") or {}).get("StreamMode", "PROVISIONED")
    unify, archive = _stream_mapping(template, "UnifyFunction"), _stream_mapping(template, "ArchiveFunction")
    env = template.get("Globals", {}).get("Function", {}).get("Environment", {}).get("Variables", {})
    tracing = _value(template, template.get("Globals", {}).get("Function", {}).get("Tracing", "PassThrough"))
    settings: dict[str, Any] = {
        "kinesis_mode": "on_demand" if _value(template, mode) == "ON_DEMAND" else "provisioned",
        "shards": int(_value(template, stream.get("ShardCount", 1))),
        "retention_hours": int(_value(template, stream.get("RetentionPeriodHours", 24))),
        "unify_batch_max": int(_value(template, unify["BatchSize"])),
        "unify_window_s": float(_value(template, unify.get("MaximumBatchingWindowInSeconds", 0))),
        "archive_batch_max": int(_value(template, archive["BatchSize"])),
        "archive_window_s": float(_value(template, archive.get("MaximumBatchingWindowInSeconds", 0))),
        "collect_mb": _memory(template, "CollectFunction"),
        "unify_mb": _memory(template, "UnifyFunction"),
        "archive_mb": _memory(template, "ArchiveFunction"),
        "segment_mb": _memory(template, "SegmentFunction"),
        "compact_mb": _memory(template, "CompactFunction"),
        "activate_mb": _memory(template, "ActivateFunction"),
        "log_retention_days": int(_value(template, resources["UnifyLogGroup"]["Properties"]["RetentionInDays"])),
        "function_tracing": str(tracing),
        "alarms": sum(1 for r in resources.values() if r.get("Type") == "AWS::CloudWatch::Alarm"),
    }
    # INFO lines are kept in full at LOG_LEVEL INFO (or DEBUG); at WARNING, only the invocations
    # Powertools samples (POWERTOOLS_LOGGER_SAMPLE_RATE) log at DEBUG and INFO.
    level = str(_value(template, env.get("LOG_LEVEL", "INFO"))).upper()
    sample = float(_value(template, env.get("POWERTOOLS_LOGGER_SAMPLE_RATE", 0)))
    settings["log_sample_rate"] = 1.0 if level in ("DEBUG", "INFO") else sample
    rules = [r["Properties"]["SamplingRule"] for r in resources.values() if r.get("Type") == "AWS::XRay::SamplingRule"]
    if rules:  # the API's entry point (API Gateway honours the rule; the collector follows its decision)
        rule = min(rules, key=lambda r: int(_value(template, r.get("Priority", 10000))))
        settings["api_xray_reservoir_per_s"] = float(_value(template, rule["ReservoirSize"]))
        settings["api_xray_rate"] = float(_value(template, rule["FixedRate"]))
    return settings


# --------------------------------------------------------------------------- result
@dataclass(frozen=True)
class Line:
    component: str
    monthly: float
    driver: str
    per_event: bool = True  # grows with events (False: fixed or per schedule)


@dataclass
class CostModel:
    lines: list[Line] = field(default_factory=list)
    events_per_month: float = 0.0

    @property
    def total(self) -> float:
        return sum(line.monthly for line in self.lines)

    def per_million(self, monthly: float) -> float:
        return monthly / self.events_per_month * 1e6

    @property
    def total_per_million(self) -> float:
        return self.per_million(self.total)

    def biggest(self, n: int = 5) -> list[Line]:
        return sorted(self.lines, key=lambda line: line.monthly, reverse=True)[:n]


def lambda_seconds(cpu_s: float, memory_mb: int, wait_s: float, assumptions: Assumptions) -> float:
    """Billed duration of one invocation: CPU stretched by the memory's share of a vCPU, plus waits."""
    share = min(1.0, memory_mb / FULL_VCPU_MB)
    return cpu_s * assumptions.cpu_factor / share + wait_s + 0.0005  # billed per started ms


def lambda_cost(invocations: float, seconds_each: float, memory_mb: int, prices: Prices) -> float:
    gb_s = invocations * seconds_each * memory_mb / 1024
    return gb_s * prices["lambda_arm64_per_gb_second"] + invocations / 1e6 * prices["lambda_per_million_requests"]


def xray_traces(invocations: float, reservoir_per_s: float, rate: float) -> float:
    """Traces a sampling rule records in a month: a reservoir per second, then a fixed rate of the rest."""
    reservoir = min(invocations, reservoir_per_s * SECONDS_PER_MONTH)
    return reservoir + rate * (invocations - reservoir)


def unify_events_per_batch(workload: Workload) -> float:
    """Events one unify invocation gets: a shard's records over the batching window (at least 1)."""
    per_shard = workload.events_per_second / max(1, _shards(workload)) * max(1.0, workload.unify_window_s)
    return min(float(workload.unify_batch_max), max(1.0, per_shard))


def _shards(workload: Workload) -> int:
    return workload.shards if workload.kinesis_mode == "provisioned" else max(
        4, math.ceil(workload.events_per_second / 1000))


def build(workload: Workload, measured: Measured, prices: Prices,
          assumptions: Assumptions | None = None, *, metric_names: int = 11, dimensioned_metric_names: int = 5,
          segment_metric_names: int = 2, functions: int = 6) -> CostModel:
    """Every component's monthly cost for ``workload``. Per-event drivers scale with events;
    fixed ones (keys, alarms, shard-hours) and per-schedule ones (segments) do not."""
    a = assumptions or Assumptions()
    p = prices
    w = workload
    model = CostModel(events_per_month=w.events_per_month)
    add = model.lines.append
    events = w.events_per_month
    requests = w.requests_per_month
    per_request = events / requests

    # ---- API Gateway
    api_price = p["apigw_rest_per_million_requests" if w.api == "rest" else "apigw_http_per_million_requests"]
    add(Line(f"API Gateway ({w.api.upper()})", requests / 1e6 * api_price,
             f"{requests / 1e6:.2f} M requests ({per_request:.2f} events/request) x ${api_price}/M"))

    # ---- collect Lambda
    collect_cpu = measured.collect_cpu_s_per_request + per_request * measured.collect_cpu_s_per_event
    collect_s = lambda_seconds(collect_cpu, w.collect_mb, a.kinesis_put_s, a)
    add(Line("Lambda collect", lambda_cost(requests, collect_s, w.collect_mb, p),
             f"{requests / 1e6:.2f} M invocations x {collect_s * 1e3:.1f} ms at {w.collect_mb} MB "
             f"(CPU {collect_cpu * 1e3:.2f} ms measured + PutRecords {a.kinesis_put_s * 1e3:.0f} ms assumed)"))

    # ---- Kinesis
    put_units = math.ceil(measured.event_record_bytes / (25 * KB))
    if w.kinesis_mode == "provisioned":
        extended = w.retention_hours > 24
        shard_hour = p["kinesis_shard_hour"] + (p["kinesis_extended_retention_shard_hour"] if extended else 0)
        fixed = w.shards * HOURS_PER_MONTH * shard_hour
        add(Line("Kinesis shard-hours", fixed,
                 f"{w.shards} shards x 730 h x ${shard_hour:.3f}"
                 + (f" (incl. {w.retention_hours} h retention)" if extended else ""), per_event=False))
        add(Line("Kinesis PUT payload units", events * put_units / 1e6 * p["kinesis_per_million_put_payload_units"],
                 f"{put_units} unit/record ({measured.event_record_bytes:.0f} B measured) x "
                 f"${p['kinesis_per_million_put_payload_units']}/M"))
    else:
        add(Line("Kinesis on-demand stream", HOURS_PER_MONTH * p["kinesis_on_demand_stream_hour"],
                 "730 stream-hours", per_event=False))
        add(Line("Kinesis on-demand data", kinesis_on_demand_data(events, measured.event_record_bytes, w, p),
                 f"{math.ceil(measured.event_record_bytes / KB)} KB/record in, read by 2 consumers"))

    # ---- unify Lambda + DynamoDB
    per_batch = unify_events_per_batch(w)
    invocations = events / per_batch
    unify_cpu = per_batch * measured.unify_cpu_s_per_event
    unify_wait = measured.unify_calls_per_batch * a.dynamodb_call_s
    unify_s = lambda_seconds(unify_cpu, w.unify_mb, unify_wait, a)
    add(Line("Lambda unify", lambda_cost(invocations, unify_s, w.unify_mb, p),
             f"{invocations / 1e6:.2f} M invocations ({per_batch:.1f} events each, {w.unify_window_s:g} s window, "
             f"{_shards(w)} shards) x {unify_s * 1e3:.0f} ms at {w.unify_mb} MB "
             f"({measured.unify_calls_per_batch:.1f} calls x {a.dynamodb_call_s * 1e3:.0f} ms assumed)"))
    if w.dedup_window == 50 and measured.profile_item_bytes_window_50:
        measured = replace(measured, profile_item_bytes=measured.profile_item_bytes_window_50)
    profile_wru = write_units(measured.profile_item_bytes)
    profile_rru = read_units(measured.profile_item_bytes)
    wru = (measured.profile_writes_per_event * profile_wru
           + measured.profile_tx_items_per_event * write_units(measured.profile_item_bytes, transactional=True)
           + measured.other_wru_per_event)
    rru = measured.profile_reads_per_event * profile_rru + measured.other_rru_per_event
    add(Line("DynamoDB writes (unify)", events * wru / 1e6 * p["dynamodb_per_million_wru"],
             f"{measured.profile_writes_per_event:.2f} profile puts/event x {profile_wru} WRU "
             f"({measured.profile_item_bytes} B item) + {measured.other_wru_per_event:.2f} WRU other "
             f"= {wru:.2f} WRU/event"))
    add(Line("DynamoDB reads (unify)", events * rru / 1e6 * p["dynamodb_per_million_rru"],
             f"{measured.profile_reads_per_event:.2f} profile reads/event x {profile_rru:g} RRU + "
             f"{measured.other_rru_per_event:.2f} RRU other = {rru:.2f} RRU/event "
             f"({measured.dynamodb_requests_per_event:.2f} requests/event)"))

    # ---- DynamoDB storage and PITR
    table_bytes = (w.people * measured.profile_item_bytes
                   + w.people * a.identifiers_per_person * a.identity_item_bytes
                   + w.people * a.merge_log_bytes_per_person
                   + w.segments * w.people * a.members_per_segment_share * a.membership_item_bytes)
    table_gb = table_bytes / 1e9
    add(Line("DynamoDB storage + PITR", table_gb * (p["dynamodb_storage_gb_month"] + p["dynamodb_pitr_gb_month"]),
             f"{table_gb:.2f} GB ({w.people:,} profiles x {measured.profile_item_bytes} B + identities, "
             "merge log, membership)", per_event=False))

    # ---- archive Lambda + S3
    archive_batch = min(float(w.archive_batch_max), max(1.0, w.events_per_second / w.shards * w.archive_window_s))
    archive_invocations = events / archive_batch
    archive_cpu = archive_batch * measured.archive_cpu_s_per_event
    archive_s = lambda_seconds(archive_cpu, w.archive_mb, a.s3_put_s, a)
    add(Line("Lambda archive", lambda_cost(archive_invocations, archive_s, w.archive_mb, p),
             f"{archive_invocations / 1e3:.0f} k invocations ({archive_batch:.0f} events each) x "
             f"{archive_s * 1e3:.0f} ms at {w.archive_mb} MB"))
    days = 30.4
    files_per_day = archive_invocations / days
    compact_requests = days * (1 + 2 * files_per_day + 1)  # LIST, GET + DELETE per file (DELETE is free), PUT
    s3_requests = (archive_invocations * p["s3_put_per_1000"]
                   + days * (p["s3_list_per_1000"] + files_per_day * p["s3_get_per_1000"] + 2 * p["s3_put_per_1000"]))
    s3_requests /= 1000
    add(Line("S3 requests (archive + compaction)", s3_requests,
             f"{archive_invocations / 1e3:.0f} k PUTs (one file per batch) + daily compaction "
             f"(~{compact_requests / days:,.0f} requests/day)"))
    compact_s = lambda_seconds(events / days * measured.archive_cpu_s_per_event * 2, w.compact_mb,
                               files_per_day * a.s3_get_s, a)
    add(Line("Lambda compact", lambda_cost(days, compact_s, w.compact_mb, p),
             f"30 runs x {compact_s:.0f} s at {w.compact_mb} MB (read + rewrite a day)", per_event=True))
    lake_gb = events * measured.parquet_bytes_per_event * w.lake_months / 1e9
    add(Line("S3 storage (lake)", lake_gb * p["s3_storage_gb_month"],
             f"{lake_gb:.1f} GB = {w.lake_months:g} months x {measured.parquet_bytes_per_event:.0f} B/event "
             "(Parquet, measured)"))

    # ---- segments
    runs = w.segment_runs_per_day * days
    queries = runs * w.segments
    window_events = events  # a 30-day behaviour segment reads about a month of events
    scanned = max(p["athena_min_bytes_per_query"], measured.athena_bytes_per_query_per_event_in_window * window_events)
    add(Line("Athena", queries * scanned / 1e12 * p["athena_per_tb_scanned"],
             f"{queries:,.0f} queries ({w.segments} segments x {runs:.0f} runs) x {scanned / 1e6:.1f} MB "
             "(10 MB minimum)", per_event=False))
    scan_rru = w.people * read_units(measured.profile_item_bytes, consistent=False)
    scan_units = w.people * measured.profile_item_bytes / (4 * KB) / 2  # Scan: summed sizes, eventually consistent
    add(Line("DynamoDB scans (segment snapshots)", runs * scan_units / 1e6 * p["dynamodb_per_million_rru"],
             f"{runs:.0f} runs x Scan of {w.people:,} profiles ({scan_units:,.0f} RRU; "
             f"item by item would be {scan_rru:,.0f})", per_event=False))
    segment_s = lambda_seconds(w.people * 20e-6, w.segment_mb, w.segments * a.athena_query_s, a)
    add(Line("Lambda segment", lambda_cost(runs, segment_s, w.segment_mb, p),
             f"{runs:.0f} runs x {segment_s:.0f} s at {w.segment_mb} MB "
             f"(waits {a.athena_query_s:g} s per query, assumed)", per_event=False))
    add(Line("S3 requests (segments)", runs * (2 + 2 * w.segments) * p["s3_put_per_1000"] / 1000
             + queries * 40 * p["s3_get_per_1000"] / 1000,
             "2 snapshots + 2 result objects per query (PUT), ~40 GETs per query", per_event=False))

    # ---- activation
    emails = w.emails_per_month
    act_invocations = emails / w.activate_batch
    activate_s = lambda_seconds(0.002 * w.activate_batch, w.activate_mb,
                                w.activate_batch * (a.ses_call_s + 2 * a.dynamodb_call_s), a)
    add(Line("SES", emails / 1000 * p["ses_per_1000_emails"], f"{emails:,.0f} emails", per_event=False))
    add(Line("Lambda activate", lambda_cost(act_invocations, activate_s, w.activate_mb, p),
             f"{act_invocations:,.0f} invocations of {w.activate_batch}", per_event=False))
    sqs_requests = (emails / 10  # SendMessageBatch of up to 10
                    + 2 * act_invocations  # receive + delete batches
                    + a.sqs_idle_pollers * SECONDS_PER_MONTH / 20)  # idle long polls
    add(Line("SQS", sqs_requests / 1e6 * p["sqs_per_million_requests"],
             f"{sqs_requests / 1e6:.2f} M requests ({a.sqs_idle_pollers} idle 20 s long-pollers dominate)",
             per_event=False))
    act_units = emails * (1 + 2 * write_units(200)) / 1e6
    add(Line("DynamoDB (activation)", act_units * p["dynamodb_per_million_wru"],
             "per email: profile read + idempotency put and delete", per_event=False))

    # ---- observability
    log_bytes = (requests * (measured.collect_log_bytes_per_request * w.log_sample_rate
                             + a.lambda_platform_log_bytes + a.apigw_access_log_bytes)
                 + invocations * (measured.unify_log_bytes_per_invocation * w.log_sample_rate
                                  + a.lambda_platform_log_bytes)
                 + archive_invocations * (measured.archive_log_bytes_per_invocation + a.lambda_platform_log_bytes)
                 + runs * measured.segment_log_bytes_per_run
                 + act_invocations * (measured.activate_log_bytes_per_invocation + a.lambda_platform_log_bytes))
    log_gb = log_bytes / 1e9
    stored_gb = log_gb * w.log_retention_days / days
    add(Line("CloudWatch Logs", log_gb * p["logs_ingestion_per_gb"] + stored_gb * p["logs_storage_gb_month"],
             f"{log_gb:.2f} GB ingested ({log_bytes / events:.0f} B/event measured + platform and access lines), "
             f"{stored_gb:.2f} GB kept {w.log_retention_days} days"))
    metrics = (metric_names + functions + dimensioned_metric_names * a.dimension_values_per_reason_metric
               + w.segment_dimension_metrics * w.segments)
    add(Line("CloudWatch metrics (EMF)", metrics * p["custom_metric_month"],
             f"{metrics} metrics: {metric_names} plain + {functions} ColdStart + "
             f"{dimensioned_metric_names} by reason x {a.dimension_values_per_reason_metric} + "
             f"{w.segment_dimension_metrics} by segment x {w.segments}", per_event=False))
    add(Line("CloudWatch alarms + dashboard", w.alarms * p["alarm_month"] + p["dashboard_month"],
             f"{w.alarms} alarms + 1 dashboard", per_event=False))
    api_traced = xray_traces(requests, w.api_xray_reservoir_per_s, w.api_xray_rate)
    own = w.function_tracing == "Active"
    function_traced = sum(xray_traces(n, w.xray_reservoir_per_s, w.xray_rate) if own else 0.0
                          for n in (invocations, archive_invocations, runs, act_invocations))
    add(Line("X-Ray", (api_traced + function_traced) / 1e6 * p["xray_per_million_traces"],
             f"{(api_traced + function_traced) / 1e6:.2f} M traces: API {api_traced / 1e6:.2f} M (rule "
             f"{w.api_xray_reservoir_per_s:g}/s then {w.api_xray_rate:.0%}), stream/queue/schedule functions "
             + (f"{function_traced / 1e6:.2f} M (Lambda's {w.xray_reservoir_per_s:g}/s then {w.xray_rate:.0%} each)"
                if own else "untraced (PassThrough)")))

    # ---- keys and secrets
    kms_requests = a.kms_caller_resource_pairs * 12 * HOURS_PER_MONTH
    add(Line("KMS", p["kms_key_month"] + kms_requests / 1e4 * p["kms_per_10k_requests"],
             f"1 key + {kms_requests / 1e3:.0f} k requests ({a.kms_caller_resource_pairs} caller-resource pairs "
             "x 12/h, data keys cached 5 min, S3 bucket key)", per_event=False))
    secret_calls = w.warm_collect_containers * 12 * HOURS_PER_MONTH
    add(Line("Secrets Manager", p["secret_month"] + secret_calls / 1e4 * p["secrets_per_10k_api_calls"],
             f"1 secret + {secret_calls / 1e3:.0f} k calls ({w.warm_collect_containers} warm collectors, "
             "5 min cache)", per_event=False))
    source_reads = w.warm_collect_containers * 2 * 60 * HOURS_PER_MONTH
    add(Line("DynamoDB (write-key lookups)", source_reads / 1e6 * p["dynamodb_per_million_rru"],
             f"{source_reads / 1e3:.0f} k GetItem ({w.warm_collect_containers} warm collectors, 30 s cache)",
             per_event=False))
    return model


def kinesis_on_demand_data(events: float, record_bytes: float, workload: Workload, prices: Prices) -> float:
    gb = events * math.ceil(record_bytes / KB) * KB / 1e9
    retention = (gb * prices["kinesis_on_demand_extended_retention_gb_month"] * min(7, workload.retention_hours / 24)
                 / 30.4 if workload.retention_hours > 24 else 0.0)
    return gb * prices["kinesis_on_demand_per_gb_in"] + 2 * gb * prices["kinesis_on_demand_per_gb_out"] + retention
