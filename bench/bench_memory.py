"""Memory of the local stack over a sustained run: RSS of the stack (its process and the stream
functions' worker processes) and of the AWS emulator after each round of events, with the demo's
destinations answering on their fakes. Figures only.

The same people keep sending new events (fresh message ids), so the state that should grow
(profiles, identities) stops growing after the first round; what still grows is held by the stack.
BENCH_MEMORY_EVENTS sets the run's length (the full form: 100000), BENCH_MEMORY_ROUND its rounds.
At the end it prints where the emulator's Python memory grew since the first round: the objects
its garbage collector tracks, by type; BENCH_MEMORY_TRACE=N runs it under tracemalloc (N frames,
by allocating stack; much slower: a run to look, not to time).
"""

from __future__ import annotations

import logging
import os
import tempfile
import time
import uuid

from cdp_infra import demo_destinations
from cdp_infra.dataset import generate
from cdp_infra.demo import send_dataset
from cdp_infra.emulator import rss_bytes
from cdp_infra.local import LocalConfig, LocalPipeline

PEOPLE = int(os.environ.get("BENCH_MEMORY_PEOPLE", "1000"))
EVENTS = int(os.environ.get("BENCH_MEMORY_EVENTS", "20000"))
ROUND = int(os.environ.get("BENCH_MEMORY_ROUND", "5000"))
TRACE = int(os.environ.get("BENCH_MEMORY_TRACE", "0"))
MB = 1024 * 1024


def fresh(batches: list[list[dict]]) -> list[list[dict]]:
    """The same events from the same people, under new message ids."""
    return [[{**event, "messageId": str(uuid.uuid4())} for event in batch] for batch in batches]


def main() -> None:
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "WARNING")
    if TRACE:
        os.environ["CDP_EMULATOR_TRACEMALLOC"] = str(TRACE)  # inherited by the emulator's process
    dataset = generate(PEOPLE, ROUND, seed=13, invalid_ratio=0.0)
    print(f"{EVENTS:,} events in rounds of {dataset.events:,} from the same {PEOPLE:,} people "
          f"(lake on local disk, consumed stream records trimmed)")
    print(f"{'events':>10} {'stack MB':>10} {'emulator MB':>12} {'total MB':>10} {'events/s':>10}")
    with tempfile.TemporaryDirectory(prefix="bench-lake-") as lake, \
            LocalPipeline(LocalConfig(write_key="bench", run_schedules=False, throttle=False,
                                      lake_dir=lake)) as pipeline:
        fakes = demo_destinations.start(pipeline)  # the demo's destinations answer, as in the demo
        sent, samples = 0, []
        started = time.perf_counter()
        while sent < EVENTS:
            accepted, _ = send_dataset(pipeline.url, "bench", fresh(dataset.batches), workers=4)
            pipeline.wait_drained(timeout_s=1800)
            pipeline.trim_streams()
            sent += accepted
            stack = rss_bytes() + sum(rss_bytes(pid) for pid in pipeline.worker_pids)
            emulator = pipeline.emulator_stats()["rss_bytes"]
            samples.append(stack + emulator)
            if len(samples) == 1:
                pipeline.emulator_memory()  # the baseline: state after one round (people known)
            print(f"{sent:>10,} {stack / MB:>10,.0f} {emulator / MB:>12,.0f} {(stack + emulator) / MB:>10,.0f} "
                  f"{sent / (time.perf_counter() - started):>10,.0f}", flush=True)
        held = pipeline.emulator_stats()["held"]
        growth = pipeline.emulator_memory()["top"]
        fakes.stop()
    print("held by the emulator at the end: " + ", ".join(
        f"{name.rsplit('-', 1)[-1] if name.startswith('dynamodb') else name} {n:,}" for name, n in sorted(held.items())))
    if growth:
        print("emulator's Python memory grown since the first round, "
              + ("by allocating stack (tracemalloc):" if TRACE else "by type (objects the GC tracks, own size):"))
        for entry in growth[:12]:
            print(f"  {entry['bytes'] / MB:>+8.1f} MB {entry['count']:>+9,} blocks  " + " <- ".join(
                reversed(entry["where"][-3:])))
    half = samples[len(samples) // 2:]
    print(f"peak RSS (stack + emulator)  {max(samples) / MB:>8,.0f} MB")
    print(f"RSS growth over the second half of the run  {(half[-1] - half[0]) / MB:>+8,.0f} MB")


if __name__ == "__main__":
    main()
