"""End to end through the local stack: events/s from HTTP to drained unify and archive, and the
collect handler's cost per event. Figures only.

The machine's cores may be shared: beside the wall-clock rates it prints the CPU time each process
(the stack's, the emulator's) spent per event, which other work on the machine does not inflate
much, and the load average before and after.
"""

from __future__ import annotations

import logging
import os
import tempfile
import time

from cdp_infra.dataset import generate
from cdp_infra.demo import send_dataset
from cdp_infra.emulator import cpu_seconds, rss_bytes
from cdp_infra.local import LocalConfig, LocalPipeline

PEOPLE = int(os.environ.get("BENCH_PEOPLE", "300"))
EVENTS = int(os.environ.get("BENCH_EVENTS", "6000"))
OPERATIONS = int(os.environ.get("BENCH_OPERATIONS", "12"))


def main() -> None:
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "WARNING")
    dataset = generate(PEOPLE, EVENTS, seed=11, invalid_ratio=0.0)
    load_before = os.getloadavg()[0]
    # As the demo and `cdp dev` run it: the lake on local disk.
    with tempfile.TemporaryDirectory(prefix="bench-lake-") as lake, \
            LocalPipeline(LocalConfig(write_key="bench", run_schedules=False, throttle=False,
                                      lake_dir=lake)) as pipeline:
        emulator_pids = pipeline.emulator_pids

        def emulator_seconds() -> float:
            return sum(cpu_seconds(pid) for pid in emulator_pids)

        cpu0 = (cpu_seconds(), emulator_seconds())
        t0 = time.perf_counter()
        accepted, _ = send_dataset(pipeline.url, "bench", dataset.batches, workers=4)
        sent_s = time.perf_counter() - t0
        pipeline.wait_drained(timeout_s=1800)
        total_s = time.perf_counter() - t0
        stack_cpu, emulator_cpu = cpu_seconds() - cpu0[0], emulator_seconds() - cpu0[1]
        stats = {lid: fn.stats for lid, fn in pipeline.functions.items()}
        emulator = pipeline.emulator_stats()
        stack_rss = rss_bytes()
    per_event = max(accepted, 1)
    collect = stats["CollectFunction"]
    print(f"load average                {load_before:>10.1f} before, {os.getloadavg()[0]:.1f} after "
          "(2 cores: above ~1.5 the wall-clock figures are loaded ones)")
    print(f"events                      {accepted:>10,} from {PEOPLE:,} people in {len(dataset.batches):,} requests")
    print(f"collector (HTTP) events/s   {accepted / sent_s:>10,.0f}   ({sent_s:.1f} s)")
    print(f"end to end events/s         {accepted / total_s:>10,.0f}   (HTTP in -> unify and archive drained, "
          f"{total_s:.1f} s)")
    print(f"CPU per event               {(stack_cpu + emulator_cpu) / per_event * 1e6:>10,.0f} us "
          f"(stack {stack_cpu / per_event * 1e6:,.0f} us + emulator {emulator_cpu / per_event * 1e6:,.0f} us; "
          f"{per_event / max(stack_cpu + emulator_cpu, 1e-9):,.0f} events per CPU-second)")
    print(f"collect handler per event   {collect.seconds / per_event * 1e6:>10,.0f} us "
          f"({collect.invocations} invocations, Kinesis writes to the local emulator included)")
    for lid in ("UnifyFunction", "ArchiveFunction"):
        s = stats[lid]
        print(f"{lid:<27} {s.seconds / per_event * 1e6:>10,.0f} us/event over {s.invocations} batches")
    calls = emulator["calls"]
    requests = sum(int(n) for n, *_ in calls.values())
    busy = sum(seconds for _, seconds, *_ in calls.values())
    print(f"emulator requests per event {requests / per_event:>10.2f}   "
          f"({busy / total_s:.0%} of the run spent serving them, summed over services)")
    print(f"  {'operation':<40} {'per event':>8} {'ms each':>7} {'slowest':>7} {'waited':>7} (ms for its service's turn)")
    for operation, (n, seconds, slowest, waited) in sorted(calls.items(), key=lambda kv: -kv[1][1])[:OPERATIONS]:
        print(f"  {operation:<40} {n / per_event:>9.3f} {seconds / max(n, 1) * 1e3:>7.1f} {slowest * 1e3:>7.0f} "
              f"{waited / max(n, 1) * 1e3:>7.1f}")
    print(f"RSS after the run           {stack_rss / 2**20:>10,.0f} MB stack + "
          f"{emulator['rss_bytes'] / 2**20:,.0f} MB emulator")


if __name__ == "__main__":
    main()
