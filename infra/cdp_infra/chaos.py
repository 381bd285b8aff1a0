"""Faults, injected into the local stack at random but reproducibly (a seed), to show that every effect
still happens exactly once.

What it injects, and where:

- **crashes** of a function before or after one of its AWS writes (DynamoDB, Kinesis, SQS, SES), or
  after its handler returned and before the event source saw the answer: :class:`SimulatedCrash`, a
  ``BaseException`` so that no ``except Exception`` in the code under test can swallow it (a killed
  process runs no handler), which the invocation wrapper reports to the event source as a function
  error (:class:`FunctionCrashed`);
- **throttling** of DynamoDB, Kinesis and SES calls: the ``ClientError`` the service answers once the
  SDK's own retries are spent (ProvisionedThroughputExceededException, ThrottlingException, Throttling);
- **duplicate** deliveries (a batch or message delivered again at once) and **out-of-order** ones (an
  earlier batch delivered again after later ones), to the stream and queue consumers;
- **poller restarts** mid-batch (:meth:`cdp_infra.pollers._Poller.restart`): a stream poller resumes
  at its checkpoint.

Calls are intercepted at ``botocore.client.BaseClient._make_api_call`` (boto3 and PynamoDB both call
it; pyarrow's S3 writes do not, hence the crash after the handler), only on a thread that is running
an invocation wrapped here, so the stack's own plumbing (pollers, checks) is left alone.

Each decision is drawn from a generator seeded by ``(seed, function, delivery, attempt)``: the same
delivery meets the same faults whatever the thread interleaving. Batches formed by time windows may
differ between runs, so two runs with one seed inject similar, not identical, faults.

A fault between SES accepting a message and the ledger recording it (a crash after the send or
before the invocation's next DynamoDB write, the ledger's ``mark_sent``, or a throttled
``mark_sent``) is injected too: SES's Send event (the local stack publishes it,
``LocalConfig.ses_send_events``) confirms the claim before the redelivery's takeover. With
``crash_after_send=False`` (a stack without Send events) those faults are left out and counted as
"(not injected)", as the crash matrix then allows a second send.
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
import threading
from collections import Counter, deque
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger("cdp.local.chaos")

#: Operations that change something (crash points).
WRITE_PREFIXES = ("Put", "Update", "Delete", "BatchWrite", "TransactWrite", "Send", "Change")
#: service -> the error code its throttling answers with.
THROTTLE_CODES = {"dynamodb": "ProvisionedThroughputExceededException",
                  "kinesis": "ProvisionedThroughputExceededException", "ses": "Throttling",
                  "sesv2": "TooManyRequestsException"}
#: Calls that hand an email to SES (every email goes through SES v2; v1 names kept for older code).
EMAIL_SENDS = {("ses", "SendEmail"), ("ses", "SendRawEmail"), ("sesv2", "SendEmail")}


class SimulatedCrash(BaseException):  # noqa: N818 - a crash is not an error the code may handle
    """The process died here."""


class FunctionCrashed(RuntimeError):
    """What the event source sees of a crashed invocation: a function error."""


@dataclass(frozen=True)
class ChaosConfig:
    seed: int = 1
    crash_rate: float = 0.2  # invocations that crash at a random write (or after the handler)
    throttle_rate: float = 0.1  # invocations that meet one throttled DynamoDB/Kinesis/SES call
    duplicate_rate: float = 0.1  # deliveries delivered again at once
    reorder_rate: float = 0.05  # deliveries followed by an earlier one delivered again
    restart_every_s: float = 3.0  # a random poller restarted this often (0: never)
    # A fault between SES accepting and the ledger recording it (a crash after the send or before the
    # next DynamoDB write, a throttled record): injected, since SES's Send event confirms the claim;
    # False leaves it out (counted "not injected") for a stack that publishes no Send events.
    crash_after_send: bool = True


@dataclass
class Plan:
    """The faults of one invocation."""

    crash_at: int | None = None  # index among the invocation's writes (past the last: after the handler)
    crash_after: bool = False  # after that write, or before it
    throttle_at: int | None = None  # index among its DynamoDB, Kinesis and SES calls
    writes: int = 0
    throttleable: int = 0
    # SES accepted a message that no DynamoDB write has recorded since (the ledger's mark_sent).
    unrecorded_send: bool = False


@dataclass
class FaultInjector:
    config: ChaosConfig = field(default_factory=ChaosConfig)
    counts: Counter[str] = field(default_factory=Counter)
    # Every message SES accepted: (to, segment tag, run tag).
    sends: list[tuple[str, str, str]] = field(default_factory=list)
    # Tests choose the faults: (function, event) -> Plan.
    planner: Callable[[str, Any], Plan] | None = None

    def __post_init__(self) -> None:
        # The plan of the invocation in progress: a context variable, so it follows the invocation
        # into the threads it writes from (unify writes a batch's survivors at once).
        self._invocation: ContextVar[Plan | None] = ContextVar(f"chaos-plan-{id(self)}", default=None)
        self._lock = threading.Lock()
        self._deliveries: Counter[str] = Counter()
        self._writes_seen: dict[str, list[int]] = {}  # function -> [invocations, writes]
        self._original: Any = None
        self._stop = threading.Event()
        self._restarter: threading.Thread | None = None
        self._calm = False

    # ------------------------------------------------------------------ the SDK hook
    def install(self) -> FaultInjector:
        from botocore.client import BaseClient

        if self._original is None:
            self._original = BaseClient._make_api_call
            injector = self

            def _make_api_call(client: Any, operation: str, params: dict[str, Any]) -> Any:
                return injector._call(client, operation, params)

            BaseClient._make_api_call = _make_api_call  # type: ignore[method-assign]
        return self

    def uninstall(self) -> None:
        from botocore.client import BaseClient

        self.stop_restarts()
        if self._original is not None:
            BaseClient._make_api_call = self._original  # type: ignore[method-assign]
            self._original = None

    def __enter__(self) -> FaultInjector:
        return self.install()

    def __exit__(self, *exc: object) -> None:
        self.uninstall()

    def _count(self, kind: str) -> None:
        with self._lock:
            self.counts[kind] += 1

    def _call(self, client: Any, operation: str, params: dict[str, Any]) -> Any:
        service = client.meta.service_model.service_name
        inv = self._invocation.get()
        is_write = operation.startswith(WRITE_PREFIXES)
        # The write that records an accepted send: a fault before it is the window the Send event closes.
        window = inv is not None and inv.unrecorded_send and service == "dynamodb" and is_write
        recording = window and not self.config.crash_after_send
        if inv is not None and service in THROTTLE_CODES:
            with self._lock:
                index, inv.throttleable = inv.throttleable, inv.throttleable + 1
            if index == inv.throttle_at and recording:
                self._count("throttle of the ledger's record of an SES send (not injected)")
            elif index == inv.throttle_at:
                self._count("throttle of the ledger's record of an SES send" if window else f"throttle {service}")
                raise throttling_error(service, operation)
        with self._lock:
            crash_here = inv is not None and is_write and inv.writes == inv.crash_at
            if inv is not None and is_write:
                inv.writes += 1
        if crash_here and inv is not None and not inv.crash_after:
            if recording:
                crash_here = False  # see the module's docstring
                self._count("crash before the ledger's record of an SES send (not injected)")
            else:
                self._count("crash before the ledger's record of an SES send" if window
                            else f"crash before a {service} write")
                raise SimulatedCrash(f"before {service}.{operation}")
        result = self._original(client, operation, params)
        if inv is not None and service == "dynamodb" and is_write:
            inv.unrecorded_send = False
        if (service, operation) in EMAIL_SENDS:
            if operation == "SendEmail":
                self._record_send(params)
            if inv is not None:
                inv.unrecorded_send = True
            if crash_here and not self.config.crash_after_send:
                crash_here = False  # see the module's docstring
                self._count("crash after an SES send (not injected)")
        if crash_here:
            self._count("crash after an SES send" if (service, operation) in EMAIL_SENDS
                        else f"crash after a {service} write")
            raise SimulatedCrash(f"after {service}.{operation}")
        return result

    def _record_send(self, params: dict[str, Any]) -> None:
        tags = {t["Name"]: t["Value"] for t in params.get("Tags") or params.get("EmailTags") or []}
        addresses = list(params.get("Destination", {}).get("ToAddresses", []))
        raw = params.get("Content", {}).get("Raw", {}).get("Data")
        if raw and not addresses:  # SES v2 raw: the To header
            from email import message_from_bytes

            addresses = [str(message_from_bytes(raw)["To"])]
        with self._lock:
            for to in addresses:
                self.sends.append((to, tags.get("segment", ""), tags.get("run", "")))

    def calm(self) -> None:
        """No more faults (the operator fixed the cause before replaying); SES sends are still counted."""
        self.stop_restarts()
        self._calm = True

    # ------------------------------------------------------------------ invocations
    def _plan(self, function: str, event: Any) -> Plan:
        if self._calm:
            return Plan()
        if self.planner is not None:
            return self.planner(function, event)
        key = delivery_key(function, event)
        with self._lock:
            self._deliveries[key] += 1
            attempt = self._deliveries[key]
            seen = self._writes_seen.setdefault(function, [0, 0])
            mean_writes = seen[1] / seen[0] if seen[0] else 2.0
        rng = random.Random(f"{self.config.seed}|{key}|{attempt}")
        crash_at = throttle_at = None
        if rng.random() < self.config.crash_rate:
            # Past the last write: the crash comes after the handler returned.
            crash_at = rng.randrange(int(mean_writes) + 1)
        crash_after = rng.random() < 0.5
        if rng.random() < self.config.throttle_rate:
            throttle_at = rng.randrange(int(mean_writes) + 1)
        return Plan(crash_at, crash_after, throttle_at)

    def invoke(self, function: str, invoke: Callable[[Any], Any], event: Any) -> Any:
        """Run one invocation under the plan drawn for it; a crash surfaces as :class:`FunctionCrashed`."""
        inv = self._plan(function, event)
        token = self._invocation.set(inv)
        try:
            response = invoke(event)
            if inv.crash_at is not None and inv.writes <= inv.crash_at:
                self._count("crash after the handler returned")
                raise SimulatedCrash("after the handler returned")
            return response
        except SimulatedCrash as exc:
            raise FunctionCrashed(str(exc)) from None
        finally:
            self._invocation.reset(token)
            with self._lock:
                seen = self._writes_seen.setdefault(function, [0, 0])
                seen[0] += 1
                seen[1] += inv.writes

    def attach(self, function: Any, *, redeliver: bool) -> None:
        """Wrap ``function.invoke`` (a :class:`cdp_infra.runtime.LocalFunction`); ``redeliver``: it is an
        event source mapping's target, so its deliveries may come twice or out of order."""
        original = function.invoke
        name = function.spec.logical_id
        earlier: deque[Any] = deque(maxlen=8)

        def invoke(event: Any) -> Any:
            response = self.invoke(name, original, event)
            if not redeliver or self._calm:
                return response
            rng = random.Random(f"{self.config.seed}|redeliver|{delivery_key(name, event)}")
            if rng.random() < self.config.duplicate_rate:
                self._count(f"duplicate delivery to {name}")
                self._quietly(name, original, event)
            if earlier and rng.random() < self.config.reorder_rate:
                self._count(f"out-of-order delivery to {name}")
                self._quietly(name, original, earlier[rng.randrange(len(earlier))])
            earlier.append(event)
            return response

        function.invoke = invoke

    def _quietly(self, name: str, original: Callable[[Any], Any], event: Any) -> None:
        # A redelivery's own failure changes nothing for the delivery that already succeeded.
        try:
            self.invoke(name, original, event)
        except Exception as exc:
            log.debug("redelivery to %s failed: %s", name, exc)

    # ------------------------------------------------------------------ pollers
    def start_restarts(self, pollers: list[Any]) -> None:
        """Restart a random poller every ``restart_every_s`` until :meth:`stop_restarts`."""
        if self.config.restart_every_s <= 0 or not pollers:
            return
        rng = random.Random(f"{self.config.seed}|restarts")

        def loop() -> None:
            while not self._stop.wait(self.config.restart_every_s):
                poller = pollers[rng.randrange(len(pollers))]
                poller.restart()
                self._count(f"poller restart {poller.function.spec.logical_id}")

        self._restarter = threading.Thread(target=loop, name="chaos-restarts", daemon=True)
        self._restarter.start()

    def stop_restarts(self) -> None:
        self._stop.set()
        if self._restarter is not None:
            self._restarter.join(timeout=60)
            self._restarter = None


def throttling_error(service: str, operation: str) -> Exception:
    from botocore.exceptions import ClientError

    code = THROTTLE_CODES[service]
    return ClientError({"Error": {"Code": code, "Message": "Rate exceeded (injected)"},
                        "ResponseMetadata": {"HTTPStatusCode": 400}}, operation)


def delivery_key(function: str, event: Any) -> str:
    """A stable name for one delivery: the function and the records (or request) it carries."""
    records = event.get("Records") if isinstance(event, dict) else None
    if records:
        ids = [str(r.get("eventID") or r.get("messageId")) for r in records]
        what = f"{ids[0]}..{ids[-1]}#{len(ids)}"
    elif isinstance(event, dict) and "detail-type" in event:  # a schedule's tick: its id is random
        what = f"{event.get('resources')}@{event.get('time')}"
    elif isinstance(event, dict) and "body" in event:
        what = hashlib.sha256(str(event.get("body")).encode()).hexdigest()[:16]
    else:
        what = hashlib.sha256(json.dumps(event, sort_keys=True, default=str).encode()).hexdigest()[:16]
    return f"{function}:{what}"
