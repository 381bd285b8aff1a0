"""Independent calls of one invocation, issued at once: a batch's profile writes, its membership
writes per segment, its SendMessageBatch calls.

Each such call spends most of its time waiting for DynamoDB or SQS; one after another, those waits
added up to half of unify's time per batch. ``each`` runs them on a pool kept by the warm
container, and returns only once every call has ended, written or failed: no call is left running
behind the caller's next step (the crash matrices order the steps, not the calls within one).

Each call runs in a copy of the caller's context (``contextvars``), so what the invocation keeps
there (log keys, a fault plan under test) follows it into the pool's threads.
"""

from __future__ import annotations

import contextvars
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, wait
from typing import TypeVar

#: Calls in flight at once, per container (botocore keeps 10 connections per client).
WORKERS = 8

T = TypeVar("T")

_PREFIX = "cdp-calls"
_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def _executor() -> ThreadPoolExecutor:
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(WORKERS, thread_name_prefix=_PREFIX)
        return _pool


def each(call: Callable[[T], object], items: Sequence[T]) -> list[BaseException | None]:
    """``call(item)`` for every item, up to :data:`WORKERS` at once; what each raised (None: it
    returned), in the items' order. Every call has ended when this returns. Called from a call of
    the pool, it runs them one after another (a pool waiting on itself could wait for ever)."""
    if len(items) < 2 or threading.current_thread().name.startswith(_PREFIX):
        raised: list[BaseException | None] = []
        for item in items:
            try:
                call(item)
            except Exception as exc:
                raised.append(exc)
            else:
                raised.append(None)
        return raised
    pool = _executor()
    futures = [pool.submit(contextvars.copy_context().run, call, item) for item in items]
    wait(futures)
    return [future.exception() for future in futures]


def all_of(call: Callable[[T], object], items: Sequence[T]) -> None:
    """``call(item)`` for every item, at once; once all have ended, the first error (in the items'
    order) is raised."""
    for exc in each(call, items):
        if exc is not None:
            raise exc
