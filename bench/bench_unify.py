"""Identity resolution: DynamoDB requests per event and events/s, next to an in-memory union-find.

Batches of 100 events from about 30 people (drawn from a population, so people return across
batches), resolved by ``resolve_batch`` on ``DynamoIdentityStore`` against a moto server on
loopback (the local stack's emulator), then by the in-memory store, then by a bare union-find
over the same identifiers. Figures only.
"""

from __future__ import annotations

import os
import random
import socket
import time
from collections import Counter
from datetime import UTC, datetime
from typing import Any

import boto3
import botocore.client

from cdp.adapters.dynamo_profiles import DynamoIdentityStore
from cdp.identity import IdentityConfig, InMemoryIdentityStore, extract, resolve_batch
from cdp.settings import Settings

POPULATION = int(os.environ.get("BENCH_PEOPLE", "300"))
BATCHES = int(os.environ.get("BENCH_BATCHES", "20"))
BATCH_SIZE = 100
PEOPLE_PER_BATCH = 30
# Claims of new identifiers above this count go as one transaction instead of single puts.
CLAIM_TX_MIN = int(os.environ.get("BENCH_CLAIM_TX_MIN", "8"))
NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
CONFIG = IdentityConfig()


def workload(seed: int = 7) -> list[list[dict[str, Any]]]:
    rng = random.Random(seed)
    people = [
        {
            "devices": [f"anon-{p}-{d}" for d in range(2)],
            "user": f"user-{p}",
            "email": f"person{p}@mail.io",
            "known": set(),
        }
        for p in range(POPULATION)
    ]
    batches: list[list[dict[str, Any]]] = []
    n = 0
    for b in range(BATCHES):
        chosen = rng.sample(people, PEOPLE_PER_BATCH)
        batch = []
        for i in range(BATCH_SIZE):
            person = chosen[i % PEOPLE_PER_BATCH]
            n += 1
            when = f"2026-11-{1 + b % 28:02d}T10:{i % 60:02d}:00.000Z"
            # Two devices per person: each starts anonymous; an identify on it merges it in.
            device = rng.choice(person["devices"])
            event: dict[str, Any] = {"messageId": f"bench-{n}", "anonymousId": device, "timestamp": when}
            roll = rng.random()
            if roll < 0.15:
                event |= {
                    "type": "identify",
                    "userId": person["user"],
                    "traits": {"email": person["email"], "plan": rng.choice(["free", "pro"])},
                }
                person["known"].add(device)
            elif roll < 0.55:
                event |= {"type": "page", "name": "Home"}
            else:
                event |= {
                    "type": "track",
                    "event": rng.choice(["Product Added", "Order Completed", "Clicked"]),
                    "properties": {"revenue": rng.randint(5, 80)},
                }
            if device in person["known"] and event["type"] != "identify":
                event["userId"] = person["user"]
            batch.append(event)
        batches.append(batch)
    return batches


class RequestCounter:
    """Counts every DynamoDB API call any botocore client makes (PynamoDB's included)."""

    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()
        self.seconds: Counter[str] = Counter()
        self._original = botocore.client.BaseClient._make_api_call

    def __enter__(self) -> RequestCounter:
        counter, original = self, self._original

        def counting(client: Any, operation: str, params: Any) -> Any:
            if client.meta.service_model.service_name != "dynamodb":
                return original(client, operation, params)
            t0 = time.perf_counter()
            try:
                return original(client, operation, params)
            finally:
                counter.calls[operation] += 1
                counter.seconds[operation] += time.perf_counter() - t0

        botocore.client.BaseClient._make_api_call = counting  # type: ignore[method-assign]
        return self

    def __exit__(self, *exc: object) -> None:
        botocore.client.BaseClient._make_api_call = self._original  # type: ignore[method-assign]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def stack_settings(endpoint: str) -> Settings:
    from cdp_infra.provision import provision
    from cdp_infra.template import new_stack

    region = "us-east-1"
    stack = provision(
        new_stack("cdp-bench", region=region), boto3.Session(region_name=region), endpoint_url=endpoint
    )
    env: dict[str, str] = {}
    for spec in stack.functions().values():
        env.update(spec.environment)
    env |= {"AWS_DEFAULT_REGION": region, "AWS_ENDPOINT_URL": endpoint}
    return Settings.from_env(env)


def union_find_rate(batches: list[list[dict[str, Any]]]) -> float:
    identifier_lists = [list(extract(e, CONFIG).identifiers) for batch in batches for e in batch]
    parent: dict[str, str] = {}

    def find(x: str) -> str:
        parent.setdefault(x, x)
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    t0 = time.perf_counter()
    for identifiers in identifier_lists:
        first = find(identifiers[0])
        for other in identifiers[1:]:
            root = find(other)
            if root != first:
                parent[root] = first
    return len(identifier_lists) / (time.perf_counter() - t0)


def main() -> None:
    import logging

    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    for key, value in {
        "AWS_ACCESS_KEY_ID": "bench",
        "AWS_SECRET_ACCESS_KEY": "bench",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        os.environ.setdefault(key, value)
    batches = workload()
    events = sum(len(b) for b in batches)
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        store = DynamoIdentityStore(
            stack_settings(f"http://127.0.0.1:{port}"), claim_transaction_min=CLAIM_TX_MIN
        )
        per_batch: list[int] = []
        outcomes = Counter[str]()
        with RequestCounter() as counter:
            t0 = time.perf_counter()
            for batch in batches:
                before = sum(counter.calls.values())
                outcome = resolve_batch(batch, store, config=CONFIG, now=NOW)
                per_batch.append(sum(counter.calls.values()) - before)
                outcomes.update(
                    applied=len(outcome.applied),
                    merges=len(outcome.merges),
                    failed=len(outcome.failed),
                    retries=outcome.attempts - 1,
                )
            dynamo_s = time.perf_counter() - t0
    finally:
        server.stop()

    memory = InMemoryIdentityStore()
    t0 = time.perf_counter()
    for batch in batches:
        resolve_batch(batch, memory, config=CONFIG, now=NOW)
    memory_s = time.perf_counter() - t0
    uf_rate = union_find_rate(batches)

    half = len(per_batch) // 2
    steady = sum(per_batch[half:]) / (BATCH_SIZE * (len(per_batch) - half))
    dynamo_rate = events / dynamo_s
    memory_rate = events / memory_s
    print(
        f"workload                        {events:,} events in {len(batches)} batches of {BATCH_SIZE}, "
        f"{PEOPLE_PER_BATCH} people per batch from {POPULATION}"
    )
    print(f"outcome                         {dict(outcomes)}; claims in a transaction above {CLAIM_TX_MIN}")
    print(
        f"DynamoDB requests per event     {sum(counter.calls.values()) / events:>8.3f}   "
        f"(steady state, 2nd half: {steady:.3f}; first batch {per_batch[0] / BATCH_SIZE:.2f})"
    )
    for operation, calls in sorted(counter.calls.items()):
        print(f"  {operation:<28}  {calls:>6} calls, {counter.seconds[operation] / calls * 1e3:6.1f} ms each")
    print(f"resolve on DynamoDB (moto)      {dynamo_rate:>8,.0f} events/s")
    print(f"resolve on the in-memory store  {memory_rate:>8,.0f} events/s")
    print(f"bare union-find, same ids       {uf_rate:>8,.0f} events/s")
    print(f"ratio union-find / DynamoDB     {uf_rate / dynamo_rate:>8,.0f} x")
    print(f"ratio union-find / in-memory    {uf_rate / memory_rate:>8,.0f} x")


if __name__ == "__main__":
    main()
