"""cdp.concurrently: independent calls at once, every one ended before the caller goes on."""

from __future__ import annotations

import contextvars
import threading
import time

import pytest

from cdp import concurrently

PLAN: contextvars.ContextVar[str] = contextvars.ContextVar("plan", default="none")


def test_every_call_ends_before_it_returns_and_each_outcome_keeps_its_items_order() -> None:
    ended: list[int] = []

    def call(n: int) -> None:
        time.sleep(0.02 * (5 - n))  # the first items end last
        ended.append(n)
        if n % 2:
            raise ValueError(f"odd {n}")

    raised = concurrently.each(call, [0, 1, 2, 3, 4])

    assert sorted(ended) == [0, 1, 2, 3, 4]
    assert [str(e) if e else None for e in raised] == [None, "odd 1", None, "odd 3", None]


def test_calls_overlap_and_run_in_a_copy_of_the_callers_context() -> None:
    inside = threading.Barrier(3, timeout=5)  # only passes if three calls are in flight at once
    seen: list[tuple[str, str]] = []

    def call(n: int) -> None:
        inside.wait()
        seen.append((threading.current_thread().name, PLAN.get()))

    token = PLAN.set("crash at 2")
    try:
        concurrently.all_of(call, [1, 2, 3])
    finally:
        PLAN.reset(token)

    assert [plan for _, plan in seen] == ["crash at 2"] * 3
    assert all(name != threading.current_thread().name for name, _ in seen)


def test_all_of_raises_the_first_error_in_the_items_order_once_every_call_has_ended() -> None:
    ended: list[int] = []

    def call(n: int) -> None:
        time.sleep(0.01 * n)
        ended.append(n)
        raise RuntimeError(f"failed {n}")

    with pytest.raises(RuntimeError, match="failed 0"):
        concurrently.all_of(call, [0, 1, 2])
    assert sorted(ended) == [0, 1, 2]


def test_a_single_call_runs_in_the_callers_thread_and_a_crash_is_not_caught() -> None:
    class Crash(BaseException):
        pass

    names: list[str] = []
    assert concurrently.each(lambda _: names.append(threading.current_thread().name), ["one"]) == [None]
    assert names == [threading.current_thread().name]
    with pytest.raises(Crash):
        concurrently.each(lambda _: (_ for _ in ()).throw(Crash()), ["one"])


def test_a_call_of_the_pool_that_fans_out_again_runs_its_calls_one_after_another() -> None:
    # The pool's threads all waiting on calls queued behind them would never end.
    inner: list[str] = []

    def outer(n: int) -> None:
        concurrently.all_of(lambda m: inner.append(threading.current_thread().name), [1, 2])

    concurrently.all_of(outer, list(range(concurrently.WORKERS * 2)))

    assert len(inner) == concurrently.WORKERS * 4
