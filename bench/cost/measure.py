"""The measured inputs of the cost model, each taken from the production code on generated data.

* CPU per event: ``time.process_time`` (not wall time: the machine is shared), median of repeats.
* DynamoDB: every request the unify handler makes against a moto server is counted and priced in
  request units from the items' sizes as DynamoDB counts them (names + values).
* Sizes: a stream record as the collector writes it; a steady-state profile item; Parquet per event.
* Logs: the bytes the handlers write to stdout (Powertools Logger at INFO, EMF metrics) per invocation.
"""

from __future__ import annotations

import base64
import contextlib
import importlib.util
import json
import math
import os
import random
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .model import item_size, read_units, write_units

REPO = Path(__file__).resolve().parents[2]
REPEATS = int(os.environ.get("BENCH_COST_REPEATS", "5"))


def powertools_env() -> None:
    """What the template sets for Powertools (Mappings: Observability), tracing off outside Lambda."""
    for key, value in {"POWERTOOLS_METRICS_NAMESPACE": "CDP", "POWERTOOLS_SERVICE_NAME": "cdp",
                       "POWERTOOLS_TRACE_DISABLED": "1", "LOG_LEVEL": "INFO"}.items():
        os.environ.setdefault(key, value)


def median_cpu(work: Callable[[], int], repeats: int = REPEATS) -> float:
    """Median CPU seconds per unit of ``work()`` (which returns the units it handled)."""
    work()  # warm up
    samples = []
    for _ in range(repeats):
        t0 = time.process_time()
        units = work()
        samples.append((time.process_time() - t0) / units)
    return statistics.median(samples)


@contextlib.contextmanager
def captured_stdout() -> Iterator[list[int]]:
    """Bytes written to file descriptor 1 inside the block (loggers bound to sys.stdout included)."""
    size: list[int] = []
    sys.stdout.flush()
    saved = os.dup(1)
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 1)
        try:
            yield size
        finally:
            sys.stdout.flush()
            os.dup2(saved, 1)
            os.close(saved)
            sink.seek(0, os.SEEK_END)
            size.append(sink.tell())


class FakeContext:
    function_name = "cdp-bench"
    memory_limit_in_mb = 512
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:cdp-bench"
    aws_request_id = "00000000-0000-4000-8000-000000000000"

    @staticmethod
    def get_remaining_time_in_millis() -> int:
        return 30_000


def load_module(path: Path, name: str) -> Any:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


# --------------------------------------------------------------------------- collect
@dataclass
class CollectFigures:
    cpu_s_per_request: float
    cpu_s_per_event: float
    record_bytes: float
    log_bytes_per_request: float
    records: list[Any] = field(repr=False, default_factory=list)


def measure_collect() -> CollectFigures:
    """CPU of the Chalice app for 1-event and 100-event requests (in-memory stores); the fixed and
    per-event parts come from the two; the records it would put on the stream; its log lines."""
    powertools_env()
    import bench_collect as bc

    from cdp.collect import Source

    module = bc.load_app()
    sink = bc.NullSink()
    kept: list[Any] = []

    class KeepingSink(bc.NullSink):  # type: ignore[misc]
        def put(self, records: Any) -> None:
            kept.extend(records)

    source = Source("src_bench", "bench")

    class Sources:
        def authenticate(self, write_key: str) -> Source | None:
            return source if write_key == bc.WRITE_KEY else None

    module.sources = lambda: Sources()
    module.sink = lambda: sink
    module.quarantine = lambda: bc.NullQuarantine()
    batches = [bc.proxy_event(b) for b in bc.bodies()]
    rng = random.Random(3)
    now = datetime.now(UTC)
    singles = [bc.proxy_event(json.dumps({"batch": [bc.realistic_event(rng, now)]}).encode()) for _ in range(200)]

    def run(events: list[dict[str, Any]], per: int) -> Callable[[], int]:
        def work() -> int:  # the deployed entry point: Powertools metrics flushed per invocation
            for e in events:
                assert module.handler(e, FakeContext())["statusCode"] == 200
            return len(events) * per
        return work

    with captured_stdout():
        per_event_at_100 = median_cpu(run(batches, bc.BATCH))
        per_request_at_1 = median_cpu(run(singles, 1))
    per_event = max(0.0, (per_event_at_100 * bc.BATCH - per_request_at_1) / (bc.BATCH - 1))
    fixed = max(0.0, per_request_at_1 - per_event)

    module.sink = lambda: KeepingSink()
    for e in batches:
        module.app(e, None)
    record_bytes = statistics.mean(len(r.data) for r in kept)

    # Log lines of the deployed handler (Powertools metrics + the app's logger), one event per request.
    with captured_stdout() as size:
        for e in singles[:50]:
            module.handler(e, FakeContext())
    return CollectFigures(fixed, per_event, record_bytes, size[0] / 50, kept)


# --------------------------------------------------------------------------- DynamoDB counting
@dataclass
class Units:
    calls: Counter[str] = field(default_factory=Counter)
    profile_puts: int = 0
    profile_tx_items: int = 0
    profile_reads: int = 0
    other_wru: float = 0.0
    other_rru: float = 0.0
    sqs_calls: int = 0
    by_table: Counter[str] = field(default_factory=Counter)  # request units of the other tables

    def requests(self) -> int:
        return sum(n for op, n in self.calls.items() if not op.startswith("sqs:"))


class UnitCounter:
    """Counts DynamoDB requests and prices them in request units from the items' sizes."""

    def __init__(self, profiles_table: str) -> None:
        import botocore.client

        self.profiles = profiles_table
        self.units = Units()
        self._client = botocore.client.BaseClient
        self._original = botocore.client.BaseClient._make_api_call

    def __enter__(self) -> UnitCounter:
        counter, original = self, self._original

        def counting(client: Any, operation: str, params: Any) -> Any:
            service = client.meta.service_model.service_name
            response = original(client, operation, params)
            if service == "dynamodb":
                counter.units.calls[operation] += 1
                counter._price(operation, params, response)
            elif service == "sqs":
                counter.units.sqs_calls += 1
                counter.units.calls[f"sqs:{operation}"] += 1
            return response

        self._client._make_api_call = counting
        return self

    def __exit__(self, *exc: object) -> None:
        self._client._make_api_call = self._original

    def _write(self, table: str, size: int, *, transactional: bool = False) -> None:
        u = self.units
        if table == self.profiles:
            if transactional:
                u.profile_tx_items += 1
            else:
                u.profile_puts += 1
        else:
            units = write_units(size, transactional=transactional)
            u.other_wru += units
            u.by_table[f"{table.rsplit('-', 1)[-1]} WRU"] += units

    def _read(self, table: str, size: int, consistent: bool) -> None:
        if table == self.profiles:
            self.units.profile_reads += 1
        else:
            units = read_units(size, consistent=consistent)
            self.units.other_rru += units
            self.units.by_table[f"{table.rsplit('-', 1)[-1]} RRU"] += units

    def _price(self, op: str, params: dict[str, Any], response: dict[str, Any]) -> None:
        if op == "PutItem":
            self._write(params["TableName"], item_size(params["Item"]))
        elif op == "BatchWriteItem":
            for table, requests in params["RequestItems"].items():
                for r in requests:
                    self._write(table, item_size(r["PutRequest"]["Item"]) if "PutRequest" in r else 1)
        elif op == "TransactWriteItems":
            for entry in params["TransactItems"]:
                (kind, body), = entry.items()
                size = item_size(body["Item"]) if kind == "Put" else 1
                self._write(body["TableName"], size, transactional=True)
        elif op == "BatchGetItem":
            for table, request in params["RequestItems"].items():
                found = response.get("Responses", {}).get(table, [])
                consistent = bool(request.get("ConsistentRead"))
                for item in found:
                    self._read(table, item_size(item), consistent)
                for _ in range(len(request["Keys"]) - len(found)):
                    self._read(table, 0, consistent)
        elif op == "GetItem":
            self._read(params["TableName"], item_size(response.get("Item", {})), bool(params.get("ConsistentRead")))
        elif op in ("Query", "Scan"):
            total = sum(item_size(i) for i in response.get("Items", []))
            units = max(1, math.ceil(total / 4096)) * (1 if params.get("ConsistentRead") else 0.5)
            self.units.other_rru += units


# --------------------------------------------------------------------------- unify + archive on moto
@dataclass
class UnifyFigures:
    events_per_batch: float
    events: int
    units: Units
    log_bytes_per_invocation: float
    archive_log_bytes_per_invocation: float
    profile_item_bytes: int
    calls_per_batch: float
    profile_item_bytes_window_50: int


def kinesis_event(events: list[dict[str, Any]], start: int) -> dict[str, Any]:
    records = []
    for i, e in enumerate(events):
        seq = f"{start + i:056d}"
        records.append({
            "eventID": f"shardId-000000000000:{seq}",
            "eventSource": "aws:kinesis",
            "kinesis": {"partitionKey": str(e.get("anonymousId")), "sequenceNumber": seq,
                        "data": base64.b64encode(json.dumps(e).encode()).decode()},
        })
    return {"Records": records}


def measure_unify_on_moto(batch_size: int, *, batches: int, population: int,
                          realistic: list[dict[str, Any]]) -> UnifyFigures:
    """The unify handler (identity, profiles, merge log, real-time segments) on a moto server, batches
    of ``batch_size`` events; counts over the second half (people known, as in a steady month)."""
    import logging

    import bench_unify as bu
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    for key, value in {"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench",
                       "AWS_DEFAULT_REGION": "us-east-1"}.items():
        os.environ.setdefault(key, value)
    bu.POPULATION, bu.BATCHES = population, batches
    bu.BATCH_SIZE, bu.PEOPLE_PER_BATCH = batch_size, max(1, min(batch_size, bu.PEOPLE_PER_BATCH))
    workload = bu.workload()
    port = bu.free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    saved_env = dict(os.environ)
    try:
        import boto3

        from cdp_infra.provision import provision
        from cdp_infra.template import new_stack

        endpoint = f"http://127.0.0.1:{port}"
        stack = provision(new_stack("cdp-bench", region="us-east-1"), boto3.Session(region_name="us-east-1"),
                          endpoint_url=endpoint)
        for spec in stack.functions().values():
            os.environ.update(spec.environment)
        os.environ.update({"AWS_ENDPOINT_URL": endpoint, "POWERTOOLS_TRACE_DISABLED": "1",
                           "POWERTOOLS_DEV": "0", "LOG_LEVEL": "INFO"})
        unify = load_module(REPO / "functions" / "unify" / "handler.py", "bench_cost_unify")
        archive = load_module(REPO / "functions" / "unify" / "archive.py", "bench_cost_archive")
        half = len(workload) // 2
        seq = 0
        with captured_stdout():
            for batch in workload[:half]:
                unify.handler(kinesis_event(batch, seq), FakeContext())
                seq += len(batch)
        counter = UnitCounter(os.environ["PROFILES_TABLE"])
        with counter, captured_stdout() as size:
            for batch in workload[half:]:
                unify.handler(kinesis_event(batch, seq), FakeContext())
                seq += len(batch)
        with captured_stdout() as archive_size:
            for start in range(0, 1000, 250):
                archive.handler(kinesis_event(realistic[start:start + 250], 10**9 + start), FakeContext())
        profile_bytes = steady_profile_item_bytes(unify.store(), unify.config())
        small_window = steady_profile_item_bytes(unify.store(), replace(unify.config(), dedup_window=50))
    finally:
        os.environ.clear()
        os.environ.update(saved_env)
        server.stop()
    counted = len(workload) - half
    events = sum(len(b) for b in workload[half:])
    calls = counter.units.requests() + counter.units.sqs_calls
    return UnifyFigures(events / counted, events, counter.units, size[0] / counted, archive_size[0] / 4,
                        profile_bytes, calls / counted, small_window)


def steady_profile_item_bytes(store: Any, config: Any) -> int:
    """A profile after a month of the reference workload and beyond (window of applied ids full):
    built with the domain code, serialised by the store's item class, sized the way DynamoDB bills."""
    from cdp.identity.profile import Profile, add_identifiers, apply_event

    rng = random.Random(5)
    profile = Profile("p-" + "0" * 26, created_at="2026-10-01T00:00:00.000Z", version=7)
    add_identifiers(profile, ["anonymous_id:" + "9f0c1e2a-5b7d-4c3e-8a1f-2b3c4d5e6f70",
                              "anonymous_id:" + "1a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d",
                              "user_id:user-4242", "email:person4242@mail.example"])
    now = datetime(2026, 11, 30, tzinfo=UTC)
    for n in range(config.dedup_window + 50):
        kind = rng.choices(["page", "track", "identify"], weights=[5, 4, 1])[0]
        event: dict[str, Any] = {"type": kind, "messageId": f"ajs-next-{rng.getrandbits(128):032x}",
                                 "timestamp": f"2026-11-{1 + n % 29:02d}T10:00:00.000Z",
                                 "userId": "user-4242"}
        if kind == "track":
            name = rng.choice(["Product Viewed", "Product Added", "Order Completed"])
            event |= {"event": name, "properties": {"name": f"sku-{rng.randint(1, 500)}",
                                                    "revenue": rng.randint(5, 200)}}
        elif kind == "identify":
            event |= {"traits": {"email": "person4242@mail.example", "plan": rng.choice(["free", "pro"]),
                                 "first_name": "Alex", "last_name": "Doe"}}
        apply_event(profile, event, config, now)
    item = store._to_item(profile)
    return item_size(item.serialize())


# --------------------------------------------------------------------------- unify CPU, archive, lake
def measure_unify_cpu(batch_size: int = 100) -> float:
    import bench_unify as bu

    from cdp.identity import InMemoryIdentityStore, resolve_batch

    bu.POPULATION, bu.BATCHES, bu.BATCH_SIZE, bu.PEOPLE_PER_BATCH = 300, 20, batch_size, 30
    batches = bu.workload()

    def work() -> int:
        store = InMemoryIdentityStore()
        for batch in batches:
            resolve_batch(batch, store, config=bu.CONFIG, now=bu.NOW)
        return sum(len(b) for b in batches)

    return median_cpu(work)


def measure_archive(records: list[Any]) -> tuple[float, float]:
    """CPU per event of ``archive_batch`` (local filesystem), and Parquet bytes per event of the same
    events in one file, as after compaction (the production writer, distinct realistic events)."""
    import pyarrow.fs as pafs

    from cdp.lake.archive import archive_batch
    from cdp.lake.parquet import write_events
    from cdp.streams import DeliveredRecord

    events = [r.event for r in records]
    delivered = [DeliveredRecord("shardId-000000000000", str(i), r.data) for i, r in enumerate(records)]
    fs = pafs.LocalFileSystem()
    with tempfile.TemporaryDirectory(prefix="cdp-bench-cost-") as tmp:
        def work() -> int:
            archive_batch(delivered, fs, tmp)
            return len(delivered)

        cpu = median_cpu(work)
        written = write_events(events, fs, tmp + "/day", "compacted")
        size = sum(Path(p).stat().st_size for p in written)
    return cpu, size / len(events)


def measure_athena_bytes_per_event() -> float:
    """Bytes the compiled 30-day segments scan per event in their window (bench_segments' lake and
    counting engine, one month of events), the larger of its segments."""
    from datetime import timedelta

    import bench_segments as bs
    import pyarrow.fs as pafs

    from cdp.adapters.duckdb import DuckDBEngine
    from cdp.segments.compiler import compile_segment
    from cdp.segments.definition import parse_segment

    events = int(os.environ.get("BENCH_COST_LAKE_EVENTS", "300000"))
    with tempfile.TemporaryDirectory(prefix="cdp-bench-cost-lake-") as tmp:
        bs.generate_lake(Path(tmp), events=events, days=30, users=10_000, seed=7)
        engine = DuckDBEngine(pafs.LocalFileSystem(), tmp)
        scanned = []
        for yaml_text, _ in bs.SEGMENTS.values():
            sql = compile_segment(parse_segment(yaml_text, "bench.yaml"), now=bs.NOW + timedelta(days=0),
                                  dialect="duckdb")
            scanned.append(engine.run(sql).bytes_scanned)
        engine.close()
    return max(scanned) / events
