"""The demo's job on the local stack, phase by phase, with the figures issue 14 asks of it:
the job's time, events/s end to end, the segment and report jobs on the demo lake, profile reads
while the pipeline drains (p50/p99) and RSS over the run. Figures only, no pass/fail.

BENCH_LOCAL_PEOPLE / BENCH_LOCAL_EVENTS change the size (the demo's: 1000 / 20000). The machine's
load is printed with the figures: on shared cores they are "loaded" figures.
"""

from __future__ import annotations

import logging
import os
import random
import tempfile
import threading
import time
from urllib.parse import quote

from cdp_infra import demo_destinations
from cdp_infra.client import TrackingClient
from cdp_infra.dataset import generate
from cdp_infra.demo import send_batches
from cdp_infra.emulator import cpu_seconds, rss_bytes
from cdp_infra.local import LocalConfig, LocalPipeline

PEOPLE = int(os.environ.get("BENCH_LOCAL_PEOPLE", "1000"))
EVENTS = int(os.environ.get("BENCH_LOCAL_EVENTS", "20000"))
WRITE_KEY, TOKEN = "bench-write-key", "bench-admin-token"
MB = 2**20


class Sampler(threading.Thread):
    """RSS of the stack (its process and its functions' worker processes) and of the emulators, every
    second, while the run lasts."""

    def __init__(self, pipeline: LocalPipeline) -> None:
        super().__init__(daemon=True)
        self.pipeline, self.samples = pipeline, []  # type: ignore[var-annotated]
        self.stopped = threading.Event()

    def run(self) -> None:
        emulators = self.pipeline.emulator_pids
        while not self.stopped.wait(1.0):
            stack = rss_bytes() + sum(rss_bytes(pid) for pid in self.pipeline.worker_pids)
            self.samples.append((stack, sum(rss_bytes(pid) for pid in emulators)))


def cpu_now(pipeline: LocalPipeline) -> tuple[float, float]:
    """CPU seconds so far of the stack (its process and its worker processes) and of the emulators."""
    return (cpu_seconds() + sum(cpu_seconds(pid) for pid in pipeline.worker_pids),
            sum(cpu_seconds(pid) for pid in pipeline.emulator_pids))


class Reader(threading.Thread):
    """GET /v1/profiles/{identifier} of random people, one after another, until stopped."""

    def __init__(self, url: str, identifiers: list[str]) -> None:
        super().__init__(daemon=True)
        self.url, self.identifiers = url, identifiers
        self.latencies: list[float] = []
        self.errors = 0
        self.stopped = threading.Event()

    def run(self) -> None:
        client, rng = TrackingClient(self.url, WRITE_KEY, timeout=60), random.Random(5)
        try:
            while not self.stopped.is_set():
                started = time.perf_counter()
                status, _, _ = client.request("GET", f"/v1/profiles/{quote(rng.choice(self.identifiers), safe='')}",
                                              headers={"Authorization": f"Bearer {TOKEN}"})
                self.latencies.append(time.perf_counter() - started)
                self.errors += status not in (200, 404)
                self.stopped.wait(0.05)
        finally:
            client.close()


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))] if ordered else float("nan")


def main() -> None:
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    logging.getLogger("cdp.audit").disabled = True  # the reader's audit line per profile read would bury the figures
    os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "WARNING")
    load = os.getloadavg()[0]
    dataset = generate(PEOPLE, EVENTS, seed=7)
    identifiers = sorted(i for p in dataset.persons for i in p.identifiers)
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench-lake-") as lake, \
            LocalPipeline(LocalConfig(write_key=WRITE_KEY, admin_token=TOKEN, run_schedules=False,
                                      lake_dir=lake)) as pipeline:
        fakes = demo_destinations.start(pipeline)  # the demo's destinations, each on its loopback fake
        started_s = time.perf_counter() - t0
        sampler = Sampler(pipeline)
        sampler.start()
        t1 = time.perf_counter()
        cpu_start = cpu_now(pipeline)
        tally = send_batches(pipeline.url, WRITE_KEY, dataset.batches)
        send_s = time.perf_counter() - t1
        reader = Reader(pipeline.url, identifiers)
        reader.start()
        pipeline.wait_drained(timeout_s=1800)
        drained_s = time.perf_counter() - t1
        drain_cpu = tuple(b - a for a, b in zip(cpu_start, cpu_now(pipeline), strict=True))
        reader.stopped.set()
        reader.join()
        t2 = time.perf_counter()
        cpu0 = cpu_now(pipeline)
        pipeline.run_schedules("SegmentFunction")
        segment_s = time.perf_counter() - t2
        segment_cpu = tuple(b - a for a, b in zip(cpu0, cpu_now(pipeline), strict=True))
        pipeline.wait_drained(timeout_s=1800)
        job_s = time.perf_counter() - t1
        activate_s = time.perf_counter() - t2 - segment_s
        emails = int(pipeline.client("ses").get_send_quota()["SentLast24Hours"])
        t3 = time.perf_counter()
        pipeline.run_schedules("ReportFunction")
        report_s = time.perf_counter() - t3
        sampler.stopped.set()
        fakes.stop()
        files = sum(len(names) for _, _, names in os.walk(os.path.join(lake, "events")))
    accepted = tally.accepted
    stack_peak = max((s for s, _ in sampler.samples), default=0)
    total_peak = max((s + e for s, e in sampler.samples), default=0)
    print(f"load average at start        {load:>8.1f}   (2 cores: above ~1.5 the figures are loaded ones)")
    print(f"events                       {accepted:>8,} accepted from {PEOPLE:,} people ({EVENTS:,} sent)")
    print(f"stack start                  {started_s:>8.1f} s")
    print(f"the job (send -> activated)  {job_s:>8.1f} s   target <= 60 s at 1,000 people / 20,000 events")
    print(f"  send                       {send_s:>8.1f} s   ({accepted / send_s:,.0f} events/s into the collector)")
    print(f"  drained                    {drained_s:>8.1f} s   after the first event was sent")
    print(f"  segment job                {segment_s:>8.1f} s   target <= 5 s ({files:,} Parquet files in the lake; CPU "
          f"{segment_cpu[0]:.1f} s stack + {segment_cpu[1]:.1f} s emulator while it ran)")
    print(f"  activation                 {activate_s:>8.1f} s   until drained after the segment job ({emails:,} emails)")
    print(f"end to end events/s          {accepted / drained_s:>8,.0f}   target >= 1,000 (HTTP in -> unify and "
          "archive drained)")
    print(f"  CPU per event              {sum(drain_cpu) / accepted * 1e3:>8.2f} ms  (stack {drain_cpu[0] / accepted * 1e3:.2f} "
          f"ms, senders included + emulator {drain_cpu[1] / accepted * 1e3:.2f} ms; 2 cores)")
    print(f"report job                   {report_s:>8.1f} s")
    print(f"profile reads while draining {len(reader.latencies):>8,}   p50 {percentile(reader.latencies, 50) * 1e3:,.0f} ms, "
          f"p99 {percentile(reader.latencies, 99) * 1e3:,.0f} ms (target <= 200 ms), {reader.errors} errors")
    print(f"peak RSS                     {total_peak / MB:>8,.0f} MB   (stack {stack_peak / MB:,.0f} MB + emulator; "
          "target <= 1,536 MB)")


if __name__ == "__main__":
    main()
