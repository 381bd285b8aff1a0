"""The cost model's arithmetic (bench/cost/model.py): units, proportionality, per-million figures."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from bench.cost.model import (
    Measured,
    Workload,
    build,
    item_size,
    load_prices,
    read_units,
    template_settings,
    write_units,
)
from cdp_infra.template import load_template

PRICES = Path(__file__).resolve().parents[2] / "bench" / "prices-us-east-1.yaml"

MEASURED = Measured(
    collect_cpu_s_per_request=0.0001, collect_cpu_s_per_event=0.00004, unify_cpu_s_per_event=0.0001,
    archive_cpu_s_per_event=0.00003, event_record_bytes=850, profile_item_bytes=3700,
    unify_events_per_batch=2, unify_calls_per_batch=8, profile_writes_per_event=1.0,
    profile_tx_items_per_event=0.04, profile_reads_per_event=2.0, other_wru_per_event=1.0,
    other_rru_per_event=9.0, dynamodb_requests_per_event=4.0, parquet_bytes_per_event=50,
    athena_bytes_per_query_per_event_in_window=15, collect_log_bytes_per_request=280,
    unify_log_bytes_per_invocation=1200, archive_log_bytes_per_invocation=800,
)


@pytest.fixture(scope="module")
def prices():
    return load_prices(PRICES)


@pytest.mark.parametrize(("size", "units"), [(1, 1), (1024, 1), (1025, 2), (3764, 4), (0, 1)])
def test_a_write_costs_one_unit_per_started_kilobyte(size: int, units: int) -> None:
    assert write_units(size) == units


def test_a_transactional_write_costs_twice_the_units() -> None:
    assert write_units(1500, transactional=True) == 4


def test_a_read_costs_one_unit_per_started_4_kb_and_half_when_eventually_consistent() -> None:
    assert read_units(4096) == 1
    assert read_units(4097) == 2
    assert read_units(4097, consistent=False) == 1


def test_an_item_size_counts_attribute_names_and_values_the_way_dynamodb_does() -> None:
    item = {
        "profile_id": {"S": "p-1"},  # 10 + 3
        "recent": {"L": [{"S": "abcdefghijkl"}, {"S": "mnopqrstuvwx"}]},  # 6 + 3 + 2 x (1 + 12)
        "traits": {"M": {"plan": {"S": "pro"}}},  # 6 + 3 + (1 + 4 + 3)
        "event_count": {"N": "123"},  # 11 + 3
    }
    assert item_size(item) == 13 + 35 + 17 + 14


def test_every_price_names_its_source_page(prices) -> None:
    assert prices.region == "us-east-1"
    assert all(url.startswith("https://aws.amazon.com/") for url in prices.sources.values())


def test_the_per_million_figure_is_the_monthly_cost_over_events_times_a_million(prices) -> None:
    model = build(Workload(), MEASURED, prices)
    assert model.total_per_million == pytest.approx(model.total / 10_000_000 * 1e6)
    for line in model.lines:
        assert model.per_million(line.monthly) == pytest.approx(line.monthly / 10_000_000 * 1e6)


def test_doubling_events_doubles_the_costs_that_grow_with_events(prices) -> None:
    # Twice the shards too, so each unify batch holds as many events as before.
    base = Workload(shards=2)
    doubled = replace(base, events_per_month=2 * base.events_per_month, shards=4)
    one, two = build(base, MEASURED, prices), build(doubled, MEASURED, prices)
    grows = {"API Gateway (REST)", "Lambda collect", "Kinesis PUT payload units", "Lambda unify",
             "DynamoDB writes (unify)", "DynamoDB reads (unify)"}
    by_name = {line.component: line.monthly for line in two.lines}
    for line in one.lines:
        if line.component in grows:
            assert by_name[line.component] == pytest.approx(2 * line.monthly), line.component


def test_fixed_costs_do_not_move_with_events(prices) -> None:
    one = build(Workload(), MEASURED, prices)
    two = build(replace(Workload(), events_per_month=2e7), MEASURED, prices)
    fixed = {"Kinesis shard-hours", "KMS", "Secrets Manager", "CloudWatch alarms + dashboard", "SES"}
    by_name = {line.component: line.monthly for line in two.lines}
    for line in one.lines:
        if line.component in fixed:
            assert by_name[line.component] == line.monthly, line.component


def test_a_profile_item_over_a_kilobyte_boundary_costs_another_write_unit_per_put(prices) -> None:
    puts_only = replace(MEASURED, profile_tx_items_per_event=0)
    small = build(Workload(), replace(puts_only, profile_item_bytes=1024), prices)
    large = build(Workload(), replace(puts_only, profile_item_bytes=1025), prices)
    cost = {line.component: line.monthly for line in small.lines}
    more = {line.component: line.monthly for line in large.lines}
    # 1 put per event: one more WRU per event on 10 M events at $0.625 per million
    assert more["DynamoDB writes (unify)"] - cost["DynamoDB writes (unify)"] == pytest.approx(10 * 0.625)


def test_the_http_api_costs_less_per_request_than_rest(prices) -> None:
    rest = build(Workload(api="rest"), MEASURED, prices).lines[0]
    http = build(Workload(api="http"), MEASURED, prices).lines[0]
    assert http.monthly / rest.monthly == pytest.approx(1.00 / 3.50)


def test_the_model_prices_the_templates_own_settings() -> None:
    # Given the template as deployed (its parameters' defaults)
    template = load_template()
    # When the model reads it
    settings = template_settings(template)
    # Then the stream, the unify mapping and the X-Ray rule are the template's
    resources = template["Resources"]
    unify = resources["UnifyFunction"]["Properties"]["Events"]["Stream"]["Properties"]
    rule = resources["ApiTraceSamplingRule"]["Properties"]["SamplingRule"]
    assert settings["shards"] == int(template["Parameters"]["ShardCount"]["Default"])
    assert settings["retention_hours"] == int(template["Parameters"]["StreamRetentionHours"]["Default"])
    assert settings["unify_window_s"] == unify["MaximumBatchingWindowInSeconds"]
    assert settings["api_xray_rate"] == float(template["Parameters"]["ApiTraceSampleRate"]["Default"])
    assert settings["api_xray_reservoir_per_s"] == rule["ReservoirSize"]
    assert settings["alarms"] == sum(1 for r in resources.values() if r["Type"] == "AWS::CloudWatch::Alarm")
    assert Workload(**settings).shards == settings["shards"]


def test_a_longer_batching_window_means_fewer_unify_invocations_and_traces(prices) -> None:
    def line(model, name):
        return next(item.monthly for item in model.lines if item.component.startswith(name))

    short, long = (build(Workload(unify_window_s=w, shards=1), MEASURED, prices) for w in (1, 5))
    assert line(long, "Lambda unify") < line(short, "Lambda unify")
    assert line(long, "X-Ray") < line(short, "X-Ray")


def test_an_api_sampling_rule_without_reservoir_traces_its_rate_of_requests(prices) -> None:
    rule = build(Workload(api_xray_reservoir_per_s=0, api_xray_rate=0.01, function_tracing="PassThrough"),
                 MEASURED, prices)
    traced = Workload().requests_per_month * 0.01
    xray = next(item.monthly for item in rule.lines if item.component == "X-Ray")
    assert xray == pytest.approx(traced / 1e6 * prices["xray_per_million_traces"])
