"""The fault layer of the fault run (cdp_infra.chaos): what it injects, and that it is reproducible."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from cdp.adapters.errors import aws_errors
from cdp.errors import ServiceThrottled
from cdp_infra.chaos import (
    ChaosConfig,
    FaultInjector,
    FunctionCrashed,
    Plan,
    SimulatedCrash,
    throttling_error,
)

KINESIS_EVENT = {"Records": [{"eventID": "shard-0:1"}, {"eventID": "shard-0:2"}]}


def test_a_simulated_crash_is_not_caught_by_the_code_under_test():
    def handler() -> str:
        try:
            raise SimulatedCrash("here")
        except Exception:
            return "swallowed"

    with pytest.raises(SimulatedCrash):
        handler()


def test_a_crash_reaches_the_event_source_as_a_function_error():
    injector = FaultInjector(planner=lambda fn, event: Plan(crash_at=0))

    with pytest.raises(FunctionCrashed):
        injector.invoke("UnifyFunction", lambda event: {"batchItemFailures": []}, KINESIS_EVENT)

    assert injector.counts == {"crash after the handler returned": 1}


def test_an_injected_throttle_is_translated_like_the_services_own():
    with pytest.raises(ServiceThrottled), aws_errors("cannot write"):
        raise throttling_error("dynamodb", "PutItem")


def test_the_same_seed_draws_the_same_faults_for_the_same_delivery():
    config = ChaosConfig(seed=3, crash_rate=0.5, throttle_rate=0.5)
    injectors = [FaultInjector(config), FaultInjector(config)]
    plans = [[injector._plan("UnifyFunction", KINESIS_EVENT) for _ in range(20)] for injector in injectors]

    assert plans[0] == plans[1]
    assert len({(p.crash_at, p.crash_after, p.throttle_at) for p in plans[0]}) > 1  # each attempt draws anew


def test_a_duplicate_delivery_invokes_the_function_twice_with_the_same_event():
    seen: list[Any] = []
    function = SimpleNamespace(spec=SimpleNamespace(logical_id="ActivateFunction"),
                               invoke=lambda event: seen.append(event))
    injector = FaultInjector(ChaosConfig(crash_rate=0, throttle_rate=0, duplicate_rate=1, reorder_rate=0))
    injector.attach(function, redeliver=True)

    function.invoke(KINESIS_EVENT)

    assert seen == [KINESIS_EVENT, KINESIS_EVENT]
    assert injector.counts == {"duplicate delivery to ActivateFunction": 1}


def test_once_calm_no_fault_is_drawn_and_no_delivery_is_repeated():
    seen: list[Any] = []
    function = SimpleNamespace(spec=SimpleNamespace(logical_id="DeliverFunction"),
                               invoke=lambda event: seen.append(event))
    injector = FaultInjector(ChaosConfig(crash_rate=1, throttle_rate=1, duplicate_rate=1, reorder_rate=1))
    injector.attach(function, redeliver=True)

    injector.calm()  # the operator's replay: the cause is fixed
    function.invoke(KINESIS_EVENT)

    assert seen == [KINESIS_EVENT] and injector.counts == {}
    assert injector._plan("DeliverFunction", KINESIS_EVENT) == Plan()
