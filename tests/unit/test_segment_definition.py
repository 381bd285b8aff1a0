"""Segment definitions: the YAML language and its validation errors (file, line, field)."""

from __future__ import annotations

from pathlib import Path

import pytest

from cdp.errors import InvalidSegment
from cdp.segments.definition import (
    AllOf,
    AnyOf,
    BehaviourCondition,
    ConsentCondition,
    FieldCondition,
    LifecycleCondition,
    Not,
    Predicate,
    PropertyFilter,
    load_segments,
    parse_segment,
)

REPO_SEGMENTS = Path(__file__).resolve().parents[2] / "segments"


def error_of(text: str, source: str = "s.yaml") -> InvalidSegment:
    with pytest.raises(InvalidSegment) as caught:
        parse_segment(text, source)
    return caught.value


def test_repeat_buyers_ships_as_two_orders_within_30_days():
    defs = {d.name: d for d in load_segments(REPO_SEGMENTS)}

    condition = defs["repeat-buyers"].condition

    assert condition == BehaviourCondition(
        event="Order Completed", within_days=30, predicates=(Predicate("gte", 2),)
    )


def test_every_shipped_definition_is_valid():
    assert load_segments(REPO_SEGMENTS)


def test_a_behaviour_without_measure_means_at_least_once():
    defn = parse_segment("name: x\ncondition: {event: Signed Up, within_days: 7}\n")

    assert defn.condition == BehaviourCondition(
        event="Signed Up", within_days=7, predicates=(Predicate("gte", 1),)
    )


def test_min_and_max_count_combine():
    defn = parse_segment("name: x\ncondition: {event: A, within_days: 7, min_count: 2, max_count: 5}\n")

    assert defn.condition.predicates == (Predicate("gte", 2), Predicate("lte", 5))


def test_the_full_language_parses_into_the_model():
    text = """
name: vip
description: big spenders who consent to email
schedule: rate(1 day)
condition:
  all:
    - trait: plan
      in: [pro, team]
    - computed: lifetime_value
      gte: 100
    - lifecycle: [new_customer, engaged_customer]
    - consent: email
    - any:
        - event: Order Completed
          within_days: 90
          where:
            - {property: currency, eq: EUR}
          sum: {property: total, gte: 500}
        - event: Order Completed
          within_days: 365
          first: {within_days: 30}
    - not:
        event: Refund Requested
        within_days: 30
"""
    defn = parse_segment(text, "vip.yaml")

    assert defn.schedule == "rate(1 day)"
    assert defn.condition == AllOf(
        (
            FieldCondition("trait", ("plan",), (Predicate("in", ("pro", "team")),)),
            FieldCondition("computed", ("lifetime_value",), (Predicate("gte", 100),)),
            LifecycleCondition(("new_customer", "engaged_customer")),
            ConsentCondition("email"),
            AnyOf(
                (
                    BehaviourCondition(
                        event="Order Completed",
                        within_days=90,
                        measure="sum",
                        predicates=(Predicate("gte", 500),),
                        where=(PropertyFilter(("currency",), (Predicate("eq", "EUR"),)),),
                        property=("total",),
                    ),
                    BehaviourCondition(
                        event="Order Completed",
                        within_days=365,
                        measure="first",
                        predicates=(Predicate("within_days", 30),),
                    ),
                )
            ),
            Not(BehaviourCondition(event="Refund Requested", within_days=30)),
        )
    )
    assert not defn.is_realtime


def test_a_definition_of_profile_fields_only_is_realtime():
    defn = parse_segment("name: x\ncondition: {all: [{trait: plan, eq: pro}, {lifecycle: lead}]}\n")

    assert defn.is_realtime


def test_the_name_defaults_to_the_file_stem():
    defn = parse_segment("condition: {lifecycle: lead}\n", "segments/leads.yaml")

    assert defn.name == "leads"


def test_an_unknown_field_is_named_with_its_line():
    error = error_of("name: x\ncondition:\n  event: A\n  within_days: 3\n  min_cuont: 2\n")

    assert str(error).startswith("s.yaml:5: condition.min_cuont: unknown field")
    assert error.details == {"file": "s.yaml", "line": 5, "field": "condition.min_cuont"}


def test_a_missing_window_is_reported_on_the_condition():
    error = error_of("name: x\ncondition:\n  event: A\n")

    assert "s.yaml:3: condition: within_days: is required" in str(error)


def test_a_bad_window_names_the_field_and_value():
    error = error_of("name: x\ncondition:\n  event: A\n  within_days: soon\n")

    assert str(error).startswith("s.yaml:4: condition.within_days: must be a whole number of days")


def test_an_error_deep_in_a_list_names_its_index_and_line():
    text = "name: x\ncondition:\n  all:\n    - {lifecycle: lead}\n    - trait: age\n      gt: old\n"

    error = error_of(text)

    assert str(error).startswith("s.yaml:6: condition.all[1].gt: must be a number")


def test_an_unknown_lifecycle_stage_lists_the_stages():
    error = error_of("name: x\ncondition: {lifecycle: [lead, whale]}\n")

    assert "condition.lifecycle[1]: unknown lifecycle stage 'whale'" in str(error)
    assert "engaged_customer" in str(error)


def test_two_kinds_in_one_condition_are_refused():
    error = error_of("name: x\ncondition: {trait: plan, lifecycle: lead, eq: pro}\n")

    assert "needs exactly one of" in str(error)


def test_a_trait_without_operator_is_refused():
    error = error_of("name: x\ncondition: {trait: plan}\n")

    assert "needs an operator" in str(error)


def test_a_time_bound_beyond_the_window_is_refused():
    error = error_of("name: x\ncondition: {event: A, within_days: 7, last: {older_than_days: 30}}\n")

    assert "condition.last.older_than_days: 30 days reaches beyond" in str(error)


def test_two_measures_are_refused():
    error = error_of(
        "name: x\ncondition: {event: A, within_days: 7, min_count: 1, sum: {property: t, gt: 1}}\n"
    )

    assert "use one measure" in str(error)


def test_a_sum_needs_its_property():
    error = error_of("name: x\ncondition: {event: A, within_days: 7, sum: {gte: 1}}\n")

    assert "condition.sum: property: is required" in str(error)


def test_mixed_numbers_and_text_in_a_list_are_refused():
    error = error_of("name: x\ncondition: {trait: a, in: [1, two]}\n")

    assert "mixes numbers and text" in str(error)


def test_a_field_path_with_spaces_is_refused():
    error = error_of("name: x\ncondition: {trait: first name, exists: true}\n")

    assert "condition.trait: 'first name' is not a field path" in str(error)


def test_a_duplicate_key_is_refused_with_its_line():
    error = error_of("name: x\ncondition:\n  lifecycle: lead\n  lifecycle: churned\n")

    assert str(error).startswith("s.yaml:4: lifecycle: duplicate key")


def test_broken_yaml_reports_its_line():
    error = error_of("name: x\ncondition: {lifecycle: lead\n")

    assert str(error).startswith("s.yaml:3: not valid YAML")


def test_a_bad_name_is_refused():
    error = error_of("name: Big Spenders\ncondition: {lifecycle: lead}\n")

    assert str(error).startswith("s.yaml:1: name: must be lower-case")


def test_a_missing_condition_is_refused():
    error = error_of("name: x\n")

    assert "condition: is required" in str(error)


def test_a_document_that_is_not_a_mapping_is_refused():
    error = error_of("- a\n- b\n")

    assert "must be a mapping" in str(error)


@pytest.mark.parametrize("schedule", ["rate(5 minutes)", "rate(1 hour)", "cron(0 6 * * ? *)"])
def test_eventbridge_schedules_are_accepted(schedule: str):
    defn = parse_segment(f"name: x\nschedule: {schedule}\ncondition: {{lifecycle: lead}}\n")

    assert defn.schedule == schedule


@pytest.mark.parametrize("schedule", ["every hour", "rate(1 hours)", "rate(2 hour)", "cron(0 6 * *)"])
def test_other_schedules_are_refused(schedule: str):
    error = error_of(f"name: x\nschedule: {schedule}\ncondition: {{lifecycle: lead}}\n")

    assert "s.yaml:2: schedule:" in str(error)


def test_two_files_with_one_name_are_refused(tmp_path: Path):
    (tmp_path / "a.yaml").write_text("name: same\ncondition: {lifecycle: lead}\n")
    (tmp_path / "b.yaml").write_text("name: same\ncondition: {lifecycle: churned}\n")

    with pytest.raises(InvalidSegment, match="already defined"):
        load_segments(tmp_path)


def test_a_missing_directory_is_refused(tmp_path: Path):
    with pytest.raises(InvalidSegment, match="no such segments directory"):
        load_segments(tmp_path / "nope")
