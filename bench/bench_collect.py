"""The collect handler: events/s per core, and its cold import, each next to a baseline.

1. Throughput. Batches of 100 realistic events (what analytics.js and the server SDKs send),
   as API Gateway proxy events with base64 bodies, through the Chalice app ``app.app`` with
   in-memory sources, sink and quarantine (so only our code is measured, not the network).
   The baseline, in the same run, is plain ``json.loads`` of each body and ``json.dumps`` of
   each of its events. Aim: collect ≤ 3× the baseline's time per event.
2. Cold import. ``functions/collect/app.py`` imported in a fresh interpreter, next to
   ``import boto3`` alone, medians of several runs. Aim: ≤ 1.5×. The app creates its boto3
   clients on first use, so the first request is also shown, separately.

Figures only; nothing asserts. ``BENCH_SECONDS`` sets each throughput run's length.
"""

from __future__ import annotations

import base64
import contextlib
import importlib.util
import io
import json
import os
import random
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
APP_FILE = REPO / "functions" / "collect" / "app.py"
SECONDS = float(os.environ.get("BENCH_SECONDS", "3"))
BATCH = 100
BODIES = 50
IMPORT_RUNS = int(os.environ.get("BENCH_IMPORT_RUNS", "7"))
WRITE_KEY = "wk_bench"

PAGES = ["/", "/pricing", "/docs/install", "/blog/launch", "/cart", "/checkout"]
AGENTS = [
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_4) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Safari/605.1.15",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Safari/537.36",
]


def realistic_event(rng: random.Random, now: datetime) -> dict[str, Any]:
    anonymous_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
    when = (now - timedelta(seconds=rng.randint(0, 30))).isoformat().replace("+00:00", "Z")
    path = rng.choice(PAGES)
    context = {
        "library": {"name": "analytics.js", "version": "next-1.70.0"},
        "page": {
            "path": path,
            "referrer": "https://www.google.com/",
            "search": "",
            "title": "Shop",
            "url": f"https://shop.example{path}",
        },
        "userAgent": rng.choice(AGENTS),
        "locale": "en-US",
        "campaign": {"source": "newsletter", "medium": "email", "name": "spring"},
    }
    kind = rng.choices(["page", "track", "identify"], weights=[5, 4, 1])[0]
    event: dict[str, Any] = {
        "type": kind,
        "anonymousId": anonymous_id,
        "messageId": f"ajs-next-{uuid.UUID(int=rng.getrandbits(128)).hex}",
        "timestamp": when,
        "context": context,
        "integrations": {},
    }
    if kind == "page":
        event.update(name="Shop", properties={"path": path, "url": context["page"]["url"], "title": "Shop"})
    elif kind == "track":
        event.update(
            event=rng.choice(["Product Viewed", "Product Added", "Checkout Started"]),
            properties={
                "product_id": f"sku-{rng.randint(1, 500)}",
                "price": round(rng.uniform(5, 200), 2),
                "currency": "USD",
                "quantity": rng.randint(1, 3),
            },
        )
    else:
        event.update(
            userId=f"user-{rng.randint(1, 10_000)}",
            traits={"email": f"p{rng.randint(1, 10_000)}@mail.example", "plan": "free"},
        )
    return event


def bodies(seed: int = 7) -> list[bytes]:
    rng = random.Random(seed)
    now = datetime.now(UTC)
    sent_at = now.isoformat().replace("+00:00", "Z")
    return [
        json.dumps({"batch": [realistic_event(rng, now) for _ in range(BATCH)], "sentAt": sent_at}).encode()
        for _ in range(BODIES)
    ]


def proxy_event(body: bytes) -> dict[str, Any]:
    auth = "Basic " + base64.b64encode(f"{WRITE_KEY}:".encode()).decode()
    headers = {"Content-Type": "application/json", "Authorization": auth, "User-Agent": "analytics-node/2.1"}
    return {
        "resource": "/v1/batch",
        "path": "/v1/batch",
        "httpMethod": "POST",
        "headers": headers,
        "multiValueHeaders": {k: [v] for k, v in headers.items()},
        "queryStringParameters": None,
        "multiValueQueryStringParameters": None,
        "pathParameters": None,
        "stageVariables": None,
        "requestContext": {
            "resourcePath": "/v1/batch",
            "httpMethod": "POST",
            "stage": "v1api",
            "identity": {"sourceIp": "203.0.113.50"},
            "requestTimeEpoch": 0,
        },
        "body": base64.b64encode(body).decode("ascii"),
        "isBase64Encoded": True,
    }


class NullSink:
    def __init__(self) -> None:
        self.count = 0

    def put(self, records: Sequence[Any]) -> None:
        self.count += len(records)


class NullQuarantine:
    def put(self, entries: Sequence[Any]) -> None:
        raise AssertionError("the bench's events are all valid")


def load_app() -> Any:
    from cdp.settings import COLLECTOR_FIELDS, FUNCTION_FIELDS

    # The environment the template gives the collector (the stores themselves are replaced below).
    for name in FUNCTION_FIELDS | COLLECTOR_FIELDS:
        os.environ.setdefault(name.upper(), f"bench-{name}")
    os.environ.setdefault("POWERTOOLS_METRICS_NAMESPACE", "CDPBench")
    spec = importlib.util.spec_from_file_location("bench_collect_app", APP_FILE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_collect_app"] = module
    spec.loader.exec_module(module)
    return module


def rate(work: Callable[[int], int]) -> float:
    """Events per second of ``work(i)`` (which returns the events it handled), for SECONDS."""
    work(0)  # warm up
    events, i = 0, 0
    start = time.perf_counter()
    while (elapsed := time.perf_counter() - start) < SECONDS:
        events += work(i)
        i += 1
    return events / elapsed


class SuppressedHashes:
    """A suppression list of ``n`` people (none of them in the bench's traffic)."""

    def __init__(self, n: int) -> None:
        import hashlib

        self.hashes = {hashlib.sha256(f"email:gone-{i}@example.com".encode()).hexdigest() for i in range(n)}

    def suppressed_hashes(self) -> set[str]:
        return self.hashes


def throughput(suppressed: int | None = 1000) -> tuple[float, float]:
    """Events/s of the app and of the JSON baseline; ``suppressed``: people on the suppression list
    (checked for every event, read once and cached as in production), None: no check at all."""
    from cdp.collect import Source
    from cdp.privacy.suppression import SuppressionList

    module = load_app()
    sink = NullSink()
    source = Source("src_bench", "bench")

    class Sources:
        def authenticate(self, write_key: str) -> Source | None:
            return source if write_key == WRITE_KEY else None

    module.sources = lambda: Sources()
    module.sink = lambda: sink
    module.quarantine = lambda: NullQuarantine()
    suppression = SuppressionList(SuppressedHashes(suppressed)) if suppressed is not None else None  # type: ignore[arg-type]
    module.suppression = lambda: suppression
    payloads = bodies()
    events = [proxy_event(b) for b in payloads]

    def collect(i: int) -> int:
        response = module.app(events[i % len(events)], None)
        assert response["statusCode"] == 200, response
        return BATCH

    def baseline(i: int) -> int:
        batch = json.loads(payloads[i % len(payloads)])["batch"]
        for event in batch:
            json.dumps(event, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
        return len(batch)

    return rate(collect), rate(baseline)


def fresh_interpreter(code: str) -> float:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO / "layers" / "common"), os.environ.get("PYTHONPATH", "")]),
    }
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True
    ).stdout
    return float(out.strip().splitlines()[-1])


IMPORT_APP = f"""
import importlib.util, sys, time
t = time.perf_counter()
spec = importlib.util.spec_from_file_location("app", {str(APP_FILE)!r})
m = importlib.util.module_from_spec(spec); sys.modules["app"] = m; spec.loader.exec_module(m)
print(time.perf_counter() - t)
"""
IMPORT_BOTO3 = """
import time
t = time.perf_counter()
import boto3
print(time.perf_counter() - t)
"""
FIRST_REQUEST = f"""
import importlib.util, sys, time, os
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
t = time.perf_counter()
spec = importlib.util.spec_from_file_location("app", {str(APP_FILE)!r})
m = importlib.util.module_from_spec(spec); sys.modules["app"] = m; spec.loader.exec_module(m)
m.sink().client; m.sources().client; m.quarantine().client; m.privacy_store().client  # the first request's
print(time.perf_counter() - t)
"""
LEAN = f"""
import importlib.util, sys
spec = importlib.util.spec_from_file_location("app", {str(APP_FILE)!r})
m = importlib.util.module_from_spec(spec); sys.modules["app"] = m; spec.loader.exec_module(m)
heavy = sorted(n for n in ("pyarrow", "duckdb", "pynamodb") if n in sys.modules)
print(len(heavy))
"""


def minimisation_cost(rounds: int = 40) -> tuple[float, float]:
    """CPU µs per event of ``normalise_event`` without and with minimisation (truncate the IP, drop
    two traits), the fastest of ``rounds`` interleaved passes: CPU time and the minimum keep the
    figure steady on a machine shared with other work."""
    from cdp.collect.events import RequestFacts, normalise_event
    from cdp.privacy.minimise import Minimiser

    rng, now = random.Random(11), datetime.now(UTC)
    events = [realistic_event(rng, now) for _ in range(1000)]
    plain = RequestFacts(source_id="src", received_at=now, ip="203.0.113.50", user_agent="ua",
                         may_hold_duplicate_keys=False)
    options = Minimiser("truncate", drop_traits=frozenset({"birthday", "gender"}))
    minimised = RequestFacts(source_id="src", received_at=now, ip="203.0.113.50", user_agent="ua",
                             may_hold_duplicate_keys=False, minimise=options)
    best = {id(plain): float("inf"), id(minimised): float("inf")}
    for _ in range(rounds):
        for facts in (plain, minimised):
            start = time.process_time()
            for event in events:
                normalise_event(event, route_type=None, facts=facts)
            best[id(facts)] = min(best[id(facts)], (time.process_time() - start) / len(events) * 1e6)
    return best[id(plain)], best[id(minimised)]


def median_of(code: str) -> float:
    return statistics.median(fresh_interpreter(code) for _ in range(IMPORT_RUNS))


def main() -> int:
    with contextlib.redirect_stdout(io.StringIO()):  # the EMF metric lines Lambda would ship to CloudWatch
        # Alternated, best of two each: the first runs of a process are slower (warm-up), which
        # would be charged to whichever variant ran first.
        unchecked_rate = checked_rate = baseline_rate = 0.0
        for _ in range(2):
            unchecked_rate = max(unchecked_rate, throughput(None)[0])
            rate_, base = throughput()
            checked_rate, baseline_rate = max(checked_rate, rate_), max(baseline_rate, base)
        collect_rate = checked_rate
    print(
        f"collect handler : {collect_rate:>10,.0f} events/s per core (batches of {BATCH}, Chalice app, in-memory stores)"
    )
    print(
        f"json baseline   : {baseline_rate:>10,.0f} events/s per core (json.loads + json.dumps of the same payloads)"
    )
    print(
        f"ratio           : {baseline_rate / collect_rate:>10.2f}x the baseline's time per event (aim <= 3x)"
    )
    print(
        f"suppression     : {collect_rate:>10,.0f} events/s with 1,000 people suppressed (list cached), "
        f"{unchecked_rate:,.0f} without the check ({(unchecked_rate / collect_rate - 1) * 100:+.1f}% time per event)"
    )
    plain_us, minimised_us = minimisation_cost()
    print(f"normalise event : {plain_us:>10.1f} µs CPU per event; {minimised_us:.1f} µs with minimisation "
          f"(IP truncated, 2 traits dropped): {(minimised_us / plain_us - 1) * 100:+.0f}%")
    app_import, boto3_import = median_of(IMPORT_APP), median_of(IMPORT_BOTO3)
    first = median_of(FIRST_REQUEST)
    print(f"import app.py   : {app_import * 1000:>10.0f} ms (median of {IMPORT_RUNS} fresh interpreters)")
    print(f"import boto3    : {boto3_import * 1000:>10.0f} ms")
    print(f"ratio           : {app_import / boto3_import:>10.2f}x (aim <= 1.5x)")
    print(
        f"import + clients: {first * 1000:>10.0f} ms (app.py plus the four boto3 clients its first request builds)"
    )
    heavy = int(fresh_interpreter(LEAN))
    print(f"heavy modules   : {heavy:>10d} of pyarrow, duckdb, pynamodb imported by app.py")
    return 0


if __name__ == "__main__":
    sys.exit(main())
