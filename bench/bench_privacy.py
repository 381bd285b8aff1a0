"""Erasure on the local stack: seconds per step for one person, at two lake sizes.

For each size the demo's dataset is sent through the collector and drained, segments run once
(memberships, snapshots), then the identified person with the most events is erased through the
API and the job's audit trail gives each step's time. ``BENCH_PRIVACY_SIZES`` (``people:events,...``)
sets the sizes. Figures only; nothing asserts.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import sys
import time
from datetime import datetime
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parents[1] / p) for p in ("layers/common", "infra")]

SIZES = [tuple(int(n) for n in s.split(":")) for s in
         os.environ.get("BENCH_PRIVACY_SIZES", "100:2000,400:8000").split(",")]
WRITE_KEY = "bench-privacy"
TOKEN = "bench-privacy-admin-token-000000"


def one(people: int, events: int) -> None:
    from cdp_infra.client import TrackingClient
    from cdp_infra.dataset import generate
    from cdp_infra.demo import count_lake_events, send_batches
    from cdp_infra.local import LocalConfig, LocalPipeline

    with LocalPipeline(LocalConfig(write_key=WRITE_KEY, admin_token=TOKEN, run_schedules=False)) as pipeline:
        dataset = generate(people, events, seed=7)
        send_batches(pipeline.url, WRITE_KEY, dataset.batches, workers=2)
        pipeline.wait_drained(timeout_s=1800)
        pipeline.run_schedules("SegmentFunction")
        pipeline.wait_drained(timeout_s=600)
        s3 = pipeline.client("s3")
        objects = sum(1 for page in s3.get_paginator("list_object_versions").paginate(
            Bucket=pipeline.settings.lake_bucket) for _ in page.get("Versions", []))
        lake = count_lake_events(pipeline)
        person = max((p for p in dataset.persons if p.identified), key=lambda p: len(p.message_ids))
        email = next(i for i in sorted(person.identifiers) if i.startswith("email:"))
        client = TrackingClient(pipeline.url, WRITE_KEY)
        headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
        started = time.monotonic()
        _, _, body = client.request("POST", "/v1/privacy/requests",
                                    json.dumps({"kind": "erase", "identifier": email}).encode(), headers=headers)
        request_id = json.loads(body)["request_id"]
        pipeline.wait_drained(timeout_s=1800)
        _, _, body = client.request("GET", f"/v1/privacy/requests/{request_id}", headers=headers)
        client.close()
        seconds = time.monotonic() - started
        view = json.loads(body)
    if "audit" not in view:
        print(f"lake of {lake:,} events: the request answered {view}")
        return
    times = [(a["what"], datetime.fromisoformat(a["at"].replace("Z", "+00:00"))) for a in view["audit"]]
    steps = ", ".join(f"{what.removeprefix('step ')} {(at - times[n][1]).total_seconds():.1f}s"
                      for n, (what, at) in enumerate(times[1:]) if what.startswith("step "))
    print(f"lake of {lake:>6,} events, {objects:>5,} object versions: erase of {len(person.message_ids)} events "
          f"{view['status']} in {seconds:.1f}s, {view['result']['remaining']} remain in "
          f"{view['result']['stores_checked']} stores")
    print(f"    {steps}")


def main() -> int:
    os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "CRITICAL")
    os.environ.setdefault("LOG_LEVEL", "CRITICAL")
    import logging

    logging.disable(logging.WARNING)
    import faulthandler

    faulthandler.dump_traceback_later(float(os.environ.get("BENCH_PRIVACY_WATCHDOG", "3600")), exit=True)
    for people, events in SIZES:
        with contextlib.redirect_stdout(io.StringIO()) as out:
            try:
                one(people, events)
            finally:
                captured = out.getvalue()
        print("\n".join(line for line in captured.splitlines() if not line.startswith("{")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
