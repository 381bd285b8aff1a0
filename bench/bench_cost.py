"""Cost model: dollars per month and per million events at a reference workload, from measured figures.

Measures (CPU as process time, medians of BENCH_COST_REPEATS runs; the machine is shared), then prices
each component with bench/prices-us-east-1.yaml (dated, sourced list prices), prints the table, the
biggest items with what would cut them, and where each service's limit bites at 10x and 100x.

    python -m bench cost
    python bench/bench_cost.py --events 10000000 --people 100000 --segments 20 --runs-per-day 24 --emails 50000
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from dataclasses import replace
from pathlib import Path

from cost import measure
from cost.model import (
    KB,
    SECONDS_PER_MONTH,
    Assumptions,
    CostModel,
    Measured,
    Workload,
    build,
    load_prices,
    unify_events_per_batch,
)

HERE = Path(__file__).resolve().parent
PRICES = HERE / "prices-us-east-1.yaml"
PEAK_TO_AVERAGE = 5  # assumed: traffic peaks at 5x the month's average rate


def measure_all(workload: Workload) -> Measured:
    t0 = time.perf_counter()
    collect = measure.measure_collect()
    unify_cpu = measure.measure_unify_cpu()
    archive_cpu, parquet_per_event = measure.measure_archive(collect.records)
    batch = max(1, round(unify_events_per_batch(workload)))
    unify = measure.measure_unify_on_moto(batch, batches=max(200, 800 // batch), population=100,
                                          realistic=[r.event for r in collect.records[:1000]])
    athena = measure.measure_athena_bytes_per_event()
    u, n = unify.units, unify.events
    print(f"(measured in {time.perf_counter() - t0:.0f} s: CPU as process time, median of {measure.REPEATS} runs)")
    print("  unify request units on the other tables per event: " + ", ".join(
        f"{k} {v / n:.2f}" for k, v in sorted(u.by_table.items())))
    return Measured(
        collect_cpu_s_per_request=collect.cpu_s_per_request,
        collect_cpu_s_per_event=collect.cpu_s_per_event,
        unify_cpu_s_per_event=unify_cpu,
        archive_cpu_s_per_event=archive_cpu,
        event_record_bytes=collect.record_bytes,
        profile_item_bytes=unify.profile_item_bytes,
        unify_events_per_batch=unify.events_per_batch,
        unify_calls_per_batch=unify.calls_per_batch,
        profile_writes_per_event=u.profile_puts / n,
        profile_tx_items_per_event=u.profile_tx_items / n,
        profile_reads_per_event=u.profile_reads / n,
        other_wru_per_event=u.other_wru / n,
        other_rru_per_event=u.other_rru / n,
        dynamodb_requests_per_event=u.requests() / n,
        parquet_bytes_per_event=parquet_per_event,
        athena_bytes_per_query_per_event_in_window=athena,
        profile_item_bytes_window_50=unify.profile_item_bytes_window_50,
        collect_log_bytes_per_request=collect.log_bytes_per_request,
        unify_log_bytes_per_invocation=unify.log_bytes_per_invocation,
        archive_log_bytes_per_invocation=unify.archive_log_bytes_per_invocation,
    )


def print_measured(m: Measured) -> None:
    print("measured")
    print(f"  collect CPU            {m.collect_cpu_s_per_request * 1e3:7.3f} ms/request + "
          f"{m.collect_cpu_s_per_event * 1e6:.0f} us/event (Chalice app, in-memory stores)")
    print(f"  unify CPU              {m.unify_cpu_s_per_event * 1e6:7.0f} us/event (resolve_batch, in-memory store)")
    print(f"  archive CPU            {m.archive_cpu_s_per_event * 1e6:7.0f} us/event (archive_batch, local files)")
    print(f"  stream record          {m.event_record_bytes:7.0f} B/event (as the collector writes it)")
    print(f"  profile item           {m.profile_item_bytes:7d} B (steady state, names + values)")
    print(f"  unify on moto          {m.unify_events_per_batch:7.1f} events/batch, "
          f"{m.dynamodb_requests_per_event:.2f} DynamoDB requests/event, "
          f"{m.unify_calls_per_batch:.1f} AWS calls/batch")
    print(f"    profiles             {m.profile_writes_per_event:.2f} puts + {m.profile_tx_items_per_event:.2f} "
          f"transaction items + {m.profile_reads_per_event:.2f} consistent reads per event")
    print(f"    other tables         {m.other_wru_per_event:.2f} WRU + {m.other_rru_per_event:.2f} RRU per event")
    print(f"  Parquet                {m.parquet_bytes_per_event:7.0f} B/event (one compacted day)")
    print(f"  Athena scan            {m.athena_bytes_per_query_per_event_in_window:7.1f} B per event in a 30-day "
          "segment's window")
    print(f"  logs                   collect {m.collect_log_bytes_per_request:.0f} B/request, unify "
          f"{m.unify_log_bytes_per_invocation:.0f} B/invocation, archive {m.archive_log_bytes_per_invocation:.0f} "
          "B/invocation (INFO, EMF included)")


def print_table(model: CostModel, title: str) -> None:
    print(f"\n{title}")
    print(f"  {'component':<36} {'$/month':>9} {'$/M events':>10}  driver")
    for line in model.lines:
        print(f"  {line.component:<36} {line.monthly:>9.2f} {model.per_million(line.monthly):>10.3f}  {line.driver}")
    print(f"  {'TOTAL':<36} {model.total:>9.2f} {model.total_per_million:>10.3f}  "
          f"({model.events_per_month / 1e6:g} M events/month; aim <= $1.00 per million)")


OPTIONS: list[tuple[str, dict[str, object], str]] = [
    ("HTTP API instead of REST", {"api": "http"},
     "loses usage plans/API keys, request validation, WAF, edge-optimised endpoints, caching, "
     "per-method throttling; keeps Lambda proxy, JWT/IAM auth, CORS, access logs"),
    ("1 shard, 24 h retention", {"shards": 1, "retention_hours": 24},
     "1,000 records/s of headroom; a consumer outage longer than a day loses events (template keeps 7 days)"),
    ("Kinesis on-demand", {"kinesis_mode": "on_demand"},
     "no shard planning; $0.04/stream-hour floor, cheaper only when shards sit idle"),
    ("unify window 10 s", {"unify_window_s": 10}, "10x fewer invocations; profiles up to 10 s later"),
    ("browser batching (10 events/request)", {"browser_share": 0.0, "server_events_per_request": 10},
     "analytics.js batching delivery; events arrive seconds later, lost on tab close unless beaconed"),
    ("X-Ray sampling 0.05/s + 1 %", {"xray_reservoir_per_s": 0.05, "xray_rate": 0.01},
     "fewer traces to debug with; keep Active tracing"),
    ("log sampling 10 % of INFO", {"log_sample_rate": 0.1}, "ERROR lines stay; per-batch summaries thinned"),
    ("segment metrics without the segment dimension", {"segment_dimension_metrics": 0},
     "one series per metric; per-segment counts move to logs (Logs Insights) or the membership table"),
    ("dedup window 200 -> 50 messageIds", {"dedup_window": 50},
     "smaller profile item (fewer WRU per put); a redelivery older than 50 events per profile applies twice"),
    ("segments every 6 h instead of hourly", {"segment_runs_per_day": 4},
     "audiences up to 6 h stale (real-time segments stay real-time)"),
]


def print_options(base: Workload, measured: Measured, prices: object) -> None:
    reference = build(base, measured, prices)  # type: ignore[arg-type]
    print("\nbiggest items")
    for line in reference.biggest(6):
        print(f"  {line.component:<36} ${line.monthly:>8.2f}/month  {reference.per_million(line.monthly):.3f} $/M")
    print("\nwhat would cut them (each alone, against the table above)")
    combined = base
    for label, change, trade in OPTIONS:
        variant = build(replace(base, **change), measured, prices)  # type: ignore[arg-type]
        saved = reference.total - variant.total
        print(f"  {label:<38} saves ${saved:>7.2f}/month ({reference.per_million(saved):.3f} $/M): {trade}")
        combined = replace(combined, **change)
    all_in = build(combined, measured, prices)  # type: ignore[arg-type]
    print(f"  {'all of the above':<38} total ${all_in.total:.2f}/month = ${all_in.total_per_million:.3f} "
          "per million events")


def print_limits(base: Workload, measured: Measured, a: Assumptions) -> None:
    print(f"\nwhere limits bite (peak = {PEAK_TO_AVERAGE}x the average rate, assumed)")
    for factor in (1, 10, 100):
        w = base.scaled(factor)
        peak = w.events_per_second * PEAK_TO_AVERAGE
        shards_needed = max(math.ceil(peak / 1000), math.ceil(peak * measured.event_record_bytes / (1024 * KB)))
        # A full batch (500) costs CPU (stretched by the memory's CPU share) plus one profile put per
        # profile, made one after another: that bounds one shard's consumer at parallelization factor 1.
        per_event_s = (measured.unify_cpu_s_per_event * 1769 / w.unify_mb
                       + measured.profile_writes_per_event * a.dynamodb_call_s)
        per_shard_capacity = 1 / per_event_s
        wru = (measured.profile_writes_per_event * math.ceil(measured.profile_item_bytes / KB)
               + measured.other_wru_per_event)
        emails_per_s = w.emails_per_month / SECONDS_PER_MONTH
        print(f"  {factor:>3}x: {w.events_per_month / 1e6:,.0f} M events/month, {w.events_per_second:,.1f}/s "
              f"average, {peak:,.0f}/s peak")
        print(f"        Kinesis    needs {shards_needed} shard(s) at peak (1 MB/s or 1,000 records/s each); "
              f"template has {w.shards}")
        per_shard_peak = peak / max(w.shards, shards_needed)
        print(f"        unify      ~{per_shard_capacity:,.0f} events/s per shard at parallelization factor 1 "
              f"(full batches); peak per shard {per_shard_peak:,.0f}/s -> parallelization factor "
              f"{max(1, math.ceil(per_shard_peak / per_shard_capacity))} (max 10)")
        print(f"        DynamoDB   ~{peak * wru:,.0f} WRU/s at peak on the tables (on-demand: 40,000/table "
              "default); one hot profile is capped at 1,000 WRU/s by its partition")
        print(f"        Athena     {w.segments} queries per run, one at a time (reserved concurrency 1); scans "
              f"~{measured.athena_bytes_per_query_per_event_in_window * w.events_per_month / 1e9:,.2f} GB each")
        print(f"        SES        {emails_per_s:,.3f} emails/s average; a segment entering "
              f"{w.people * a.members_per_segment_share:,.0f} people at once takes "
              f"{w.people * a.members_per_segment_share / 14 / 60:,.0f} min at the default 14/s")
    print("""
  at 10x  : unify is the first limit (one batch at a time per shard, profile puts one after another):
            set ParallelizationFactor 2 and MaximumBatchingWindowInSeconds 5-10 s (fuller batches also cut
            DynamoDB requests per event); shards stay 2; ask SES for a higher rate before big segments.
  at 100x : shards by the peak (or on-demand) and ParallelizationFactor up to 10 per shard; DynamoDB
            on-demand still fits (provisioned + auto scaling is ~5x cheaper per unit once load is steady);
            Athena scans grow with events: read only the window's days and snapshot profiles
            incrementally instead of a full Scan per run; raise the SES quota and activate's concurrency.""")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=float, default=10_000_000, help="events per month")
    parser.add_argument("--people", type=int, default=100_000)
    parser.add_argument("--segments", type=int, default=20)
    parser.add_argument("--runs-per-day", type=float, default=24, help="segment runs per day (24 = hourly)")
    parser.add_argument("--emails", type=float, default=50_000, help="emails per month")
    parser.add_argument("--browser-share", type=float, default=0.7,
                        help="share of events sent one per request (analytics.js default)")
    args = parser.parse_args(argv)
    workload = Workload(events_per_month=args.events, people=args.people, segments=args.segments,
                        segment_runs_per_day=args.runs_per_day, emails_per_month=args.emails,
                        browser_share=args.browser_share)
    prices = load_prices(PRICES)
    print(f"prices: {PRICES.name} ({prices.region}, read {prices.read_on}); workload: "
          f"{workload.events_per_month / 1e6:g} M events/month from {workload.people:,} people, "
          f"{workload.segments} segments x {workload.segment_runs_per_day:g} runs/day, "
          f"{workload.emails_per_month:,.0f} emails/month, {workload.browser_share:.0%} of events one per request")
    measured = measure_all(workload)
    print_measured(measured)
    a = Assumptions()
    print(f"assumed: latencies Kinesis put {a.kinesis_put_s * 1e3:.0f} ms, DynamoDB call "
          f"{a.dynamodb_call_s * 1e3:.0f} ms, S3 put {a.s3_put_s * 1e3:.0f} ms, SES send {a.ses_call_s * 1e3:.0f} ms, "
          f"Athena query {a.athena_query_s:g} s; Graviton2 CPU = this machine's x{a.cpu_factor:g}; "
          f"CPU share = memory / 1,769 MB")
    model = build(workload, measured, prices, a)
    print_table(model, "monthly cost at the reference workload (template.yaml settings)")
    print_options(workload, measured, prices)
    print_limits(workload, measured, a)
    return 0


if __name__ == "__main__":
    sys.exit(main())
