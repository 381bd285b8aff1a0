"""Cost model: dollars per month and per million events at a reference workload, from measured figures.

Measures (CPU as process time, medians of BENCH_COST_REPEATS runs; the machine is shared), then prices
each component with bench/prices-us-east-1.yaml (dated, sourced list prices), prints the table, the
biggest items with what would cut them, and where each service's limit bites at 10x and 100x.

The deployment's settings (shards, retention, batching windows, memory, tracing, sampling, alarms)
are read from template.yaml's defaults, so a change of the template shows in the table;
``--template`` prices another one (e.g. an older revision, for a before/after).

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
    template_settings,
    unify_events_per_batch,
)

HERE = Path(__file__).resolve().parent
TEMPLATE = HERE.parent / "template.yaml"
PRICES = HERE / "prices-us-east-1.yaml"
PEAK_TO_AVERAGE = 5  # assumed: traffic peaks at 5x the month's average rate


def deployment_settings(path: Path) -> dict[str, object]:
    """The template's settings the model prices (its parameters' defaults), and the metric series
    the functions emit by segment (cdp.observability's catalogue)."""
    from cdp_infra.template import load_template

    measure.powertools_env()  # before cdp.observability makes its Metrics (namespace from the environment)
    from cdp.observability import CATALOGUE

    settings = template_settings(load_template(path))
    # Run failures are rare (a series exists only for a segment that failed that month).
    settings["segment_dimension_metrics"] = sum(1 for spec in CATALOGUE.values()
                                                if spec.dimension == "segment" and not spec.name.endswith("Failures"))
    return settings


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
    ("Kinesis on-demand", {"kinesis_mode": "on_demand"},
     "no shard planning; $0.04/stream-hour floor, cheaper only when shards sit idle"),
    ("unify window 10 s", {"unify_window_s": 10}, "fewer invocations; profiles up to 10 s later"),
    ("browser batching (10 events/request)", {"browser_share": 0.0, "server_events_per_request": 10},
     "analytics.js batching delivery; events arrive seconds later, lost on tab close unless beaconed"),
    ("functions' tracing PassThrough", {"function_tracing": "PassThrough"},
     "no traces of unify, archive, segment, activate (the API's sampled requests still are)"),
    ("log sampling 10 % of INFO", {"log_sample_rate": 0.1}, "ERROR lines stay; per-batch summaries thinned"),
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


def print_scale(base: Workload, measured: Measured, prices: object) -> None:
    """Cost per million events as volume grows (people and emails with it), and the volume at which
    the template reaches the $1 aim. The measured per-event figures stay those of the reference
    batch size: at higher volume unify's batches are fuller and its requests per event fewer."""
    def per_million(factor: float) -> float:
        return build(base.scaled(factor), measured, prices).total_per_million  # type: ignore[arg-type]

    print("\ncost per million events as volume grows (same template, people and emails scaled)")
    for factor in (1, 3, 10, 30, 100):
        print(f"  {factor:>4}x  {base.events_per_month * factor / 1e6:>7,.0f} M events/month  "
              f"${per_million(factor):.3f} per million")
    low, high = 1.0, 1000.0
    if per_million(high) > 1.0:
        at = build(base.scaled(high), measured, prices)  # type: ignore[arg-type]
        variable = [line for line in at.lines if at.per_million(line.monthly) >= 0.1]
        print(f"  the template stays above $1 per million up to 1000x (${at.total_per_million:.2f}): what grows "
              "with events costs more than $1 per million by itself; at 1000x, the items over $0.10:")
        for line in sorted(variable, key=lambda line: line.monthly, reverse=True):
            print(f"    {line.component:<36} {at.per_million(line.monthly):.3f} $/M")
        return
    if per_million(low) <= 1.0:
        print("  already at or under $1 per million")
        return
    for _ in range(40):
        mid = (low * high) ** 0.5
        low, high = (mid, high) if per_million(mid) > 1.0 else (low, mid)
    print(f"  $1 per million from about {base.events_per_month * high / 1e6:,.0f} M events/month "
          f"({high:.1f}x the reference, {base.events_per_month * high / SECONDS_PER_MONTH:,.0f} events/s average)")


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
  at 10x  : one shard still carries the peak (190/s of 1,000 records/s), but unify's one poller does not
            (~120 events/s): set ParallelizationFactor 2 (or a second shard) before the peak reaches
            ~100/s; ask SES for a higher rate before big segments.
  at 100x : two shards by the peak (or on-demand) and ParallelizationFactor up to 10 per shard; DynamoDB
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
    parser.add_argument("--template", type=Path, default=TEMPLATE, help="the SAM template whose settings are priced")
    parser.add_argument("--segment-dimension-metrics", type=int, default=None,
                        help="metrics carrying a segment dimension (default: cdp.observability's catalogue)")
    args = parser.parse_args(argv)
    settings = deployment_settings(args.template)
    if args.segment_dimension_metrics is not None:
        settings["segment_dimension_metrics"] = args.segment_dimension_metrics
    workload = Workload(events_per_month=args.events, people=args.people, segments=args.segments,
                        segment_runs_per_day=args.runs_per_day, emails_per_month=args.emails,
                        browser_share=args.browser_share, **settings)
    prices = load_prices(PRICES)
    print(f"settings: {args.template.name} ({workload.shards} shard(s), {workload.retention_hours} h retention, "
          f"unify {workload.unify_batch_max}/{workload.unify_window_s:g} s, API X-Ray "
          f"{workload.api_xray_reservoir_per_s:g}/s + {workload.api_xray_rate:.0%}, functions' tracing "
          f"{workload.function_tracing}, INFO kept {workload.log_sample_rate:.0%}, {workload.alarms} alarms)")
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
    print_scale(workload, measured, prices)
    print_limits(workload, measured, a)
    return 0


if __name__ == "__main__":
    sys.exit(main())
