"""End to end through the local stack: events/s from HTTP to drained unify and archive, and the
collect handler's cost per event. Figures only."""

from __future__ import annotations

import logging
import os
import time

from cdp_infra.dataset import generate
from cdp_infra.demo import send_dataset
from cdp_infra.local import LocalConfig, LocalPipeline

PEOPLE = int(os.environ.get("BENCH_PEOPLE", "300"))
EVENTS = int(os.environ.get("BENCH_EVENTS", "6000"))


def main() -> None:
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "WARNING")
    dataset = generate(PEOPLE, EVENTS, seed=11, invalid_ratio=0.0)
    with LocalPipeline(LocalConfig(write_key="bench", run_schedules=False, throttle=False)) as pipeline:
        t0 = time.perf_counter()
        accepted, _ = send_dataset(pipeline.url, "bench", dataset.batches, workers=4)
        sent_s = time.perf_counter() - t0
        pipeline.wait_drained(timeout_s=1800)
        total_s = time.perf_counter() - t0
        stats = {lid: fn.stats for lid, fn in pipeline.functions.items()}
    collect = stats["CollectFunction"]
    print(f"events                      {accepted:>10,} from {PEOPLE:,} people in {len(dataset.batches):,} requests")
    print(f"collector (HTTP) events/s   {accepted / sent_s:>10,.0f}   ({sent_s:.1f} s)")
    print(f"end to end events/s         {accepted / total_s:>10,.0f}   (HTTP in -> unify and archive drained, "
          f"{total_s:.1f} s)")
    print(f"collect handler per event   {collect.seconds / max(accepted, 1) * 1e6:>10,.0f} us "
          f"({collect.invocations} invocations, Kinesis writes to the local emulator included)")
    for lid in ("UnifyFunction", "ArchiveFunction"):
        s = stats[lid]
        print(f"{lid:<27} {s.seconds / max(accepted, 1) * 1e6:>10,.0f} us/event over {s.invocations} batches")


if __name__ == "__main__":
    main()
