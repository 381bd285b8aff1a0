"""Invokes Lambda handlers in-process, the way the Lambda runtime would.

Each function's module is loaded from its CodeUri under a module name of its own (two
functions may both have a ``handler.py``), once, after the environment is set, so that
handler modules behave as on a cold start.

Metrics: on Lambda, Powertools prints each metric set as an EMF JSON line and CloudWatch Logs
turns it into metrics. Here :func:`capture_emf` routes those lines, when printed during an
invocation, to the :class:`MetricsRecorder` of the invoked function instead of stdout.

An execution environment is a thread of the stack's process, or (``LocalFunction(own_process=True)``)
a process of its own, as each is a sandbox of its own on Lambda: the functions that carry the
whole stream then do not wait for the stack's GIL (:class:`ProcessEnvironment`).
"""

from __future__ import annotations

import builtins
import importlib.util
import json
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, MutableMapping
from dataclasses import dataclass, field
from typing import Any

from .template import FunctionSpec

# Properties of an EMF line that break a count down without being a dimension
# (cdp.observability.DETAIL_PROPERTIES; tests/unit/test_observability.py holds them equal).
DETAIL_PROPERTIES = ("segment",)


@dataclass
class LambdaContext:
    """The attributes of the Lambda context object that handlers and Powertools read."""

    function_name: str
    timeout_s: int
    memory_limit_in_mb: int = 512
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    region: str = "us-east-1"
    account_id: str = "123456789012"
    log_group_name: str = ""
    log_stream_name: str = "local"
    function_version: str = "$LATEST"
    _deadline: float = field(default=0.0)

    def __post_init__(self) -> None:
        self._deadline = time.monotonic() + self.timeout_s
        self.log_group_name = f"/aws/lambda/{self.function_name}"

    @property
    def invoked_function_arn(self) -> str:
        return f"arn:aws:lambda:{self.region}:{self.account_id}:function:{self.function_name}"

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


class MetricsRecorder:
    """Sums of the metrics each function flushed, by function, metric name and dimensions.

    Keys read ``EventsRejected{reason=invalid_type}``; the ``service`` dimension, the same for
    every metric, is left out.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._totals: dict[str, dict[str, float]] = {}

    def record(self, function: str, blob: Mapping[str, object]) -> None:
        """Add one EMF metric set (one printed line) flushed by ``function``."""
        aws = blob.get("_aws")
        directives = aws.get("CloudWatchMetrics", []) if isinstance(aws, dict) else []
        with self._lock:
            totals = self._totals.setdefault(function, {})
            for directive in directives:
                # A count broken down by a property of the line (not a dimension) is keyed the same way.
                names = sorted(({d for dims in directive.get("Dimensions", []) for d in dims} - {"service"})
                               | {p for p in DETAIL_PROPERTIES if p in blob})
                labels = ",".join(f"{d}={blob.get(d)}" for d in names)
                for metric in directive.get("Metrics", []):
                    values = blob.get(metric["Name"], 0)
                    total = sum(values) if isinstance(values, list) else float(values)  # type: ignore[arg-type]
                    key = f"{metric['Name']}{{{labels}}}" if labels else metric["Name"]
                    totals[key] = totals.get(key, 0.0) + total

    def snapshot(self) -> dict[str, dict[str, float]]:
        with self._lock:
            return {fn: dict(sorted(metrics.items())) for fn, metrics in sorted(self._totals.items())}

    def totals(self) -> dict[str, float]:
        """Each metric name summed over functions and dimensions."""
        out: dict[str, float] = {}
        for metrics in self.snapshot().values():
            for key, value in metrics.items():
                name = key.split("{", 1)[0]
                out[name] = out.get(name, 0.0) + value
        return out


_invocation = threading.local()


def _print_or_record(*args: object, **kwargs: object) -> None:
    """``print`` for Powertools' metrics modules: EMF lines of an invocation go to its recorder."""
    target = getattr(_invocation, "target", None)
    if target is not None and len(args) == 1 and not kwargs and isinstance(args[0], str):
        try:
            blob = json.loads(args[0])
        except ValueError:
            blob = None
        if isinstance(blob, dict) and "_aws" in blob:
            recorder, function = target
            recorder.record(function, blob)
            return
    builtins.print(*args, **kwargs)  # type: ignore[call-overload]


class PerThread(MutableMapping[str, Any]):
    """A dict of which each thread sees its own copy (starting from ``initial``)."""

    def __init__(self, initial: Mapping[str, Any] | None = None) -> None:
        self._initial = dict(initial or {})
        self._local = threading.local()

    def _mine(self) -> dict[str, Any]:
        mine: dict[str, Any] | None = getattr(self._local, "values", None)
        if mine is None:
            mine = self._local.values = dict(self._initial)
        return mine

    def __getitem__(self, key: str) -> Any:
        return self._mine()[key]

    def __setitem__(self, key: str, value: Any) -> None:
        self._mine()[key] = value

    def __delitem__(self, key: str) -> None:
        del self._mine()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._mine())

    def __len__(self) -> int:
        return len(self._mine())

    def clear(self) -> None:
        self._mine().clear()


def capture_emf() -> None:
    """Make Powertools' EMF output reach the invoked function's recorder (idempotent).

    Powertools prints metric sets with the builtin ``print`` from two modules; a module-level
    ``print`` in those modules shadows the builtin. Lines printed outside an invocation, or by
    a function without a recorder, still go to stdout.

    Powertools keeps one metric set per process: Lambda runs one invocation at a time in it.
    Here invocations run at once in threads, and one's flush would empty another's set (its flush
    then fails with "Must contain at least one metric"), so each thread gets a set of its own.
    """
    from aws_lambda_powertools.metrics import Metrics, base
    from aws_lambda_powertools.metrics.provider.cloudwatch_emf import cloudwatch

    for module in (base, cloudwatch):
        module.print = _print_or_record  # type: ignore[attr-defined]
    for name in ("_metrics", "_dimensions", "_metadata"):
        if not isinstance(getattr(Metrics, name), PerThread):
            setattr(Metrics, name, PerThread(getattr(Metrics, name)))
    observability = sys.modules.get("cdp.observability")
    instance = getattr(observability, "metrics", None)
    if isinstance(instance, Metrics):  # made before this was called: point it at the shared sets
        instance.metric_set = instance.provider.metric_set = Metrics._metrics  # type: ignore[attr-defined]
        instance.dimension_set = instance.provider.dimension_set = Metrics._dimensions  # type: ignore[attr-defined]
        instance.metadata_set = instance.provider.metadata_set = Metrics._metadata  # type: ignore[attr-defined]


class _OncePaths(list):  # type: ignore[type-arg]
    """A loader's search paths, each kept once: boto3 appends its own on every session it makes."""

    def append(self, path: Any) -> None:
        if path not in self:
            super().append(path)


def share_service_models() -> None:
    """Every botocore session of the process reads AWS's service descriptions through one loader
    (idempotent).

    Each execution environment makes its own boto3 sessions and clients, as on Lambda; each new
    session parsed the same JSON files again (the endpoints, each service's model): a third of the
    stack's CPU time in a short run went there. They are read once per process now; botocore
    already shares them between the clients of one session, and nothing writes to them.
    """
    from botocore import loaders, session

    if getattr(session.create_loader, "shared", False):
        return
    made: dict[str | None, Any] = {}
    lock = threading.Lock()

    def create_loader(search_path_string: str | None = None) -> Any:
        with lock:
            loader = made.get(search_path_string)
            if loader is None:
                loader = made[search_path_string] = loaders.create_loader(search_path_string)
                loader._search_paths = _OncePaths(loader.search_paths)
            return loader

    create_loader.shared = True  # type: ignore[attr-defined]
    session.create_loader = create_loader  # type: ignore[attr-defined]


class _SentBack:
    """The recorder of a worker process: the EMF metric sets of one invocation, sent back with its answer."""

    def __init__(self) -> None:
        self.blobs: list[Mapping[str, object]] = []

    def record(self, function: str, blob: Mapping[str, object]) -> None:
        self.blobs.append(blob)


def load_handler(spec: FunctionSpec, module_name: str) -> Callable[[Any, Any], Any]:
    """Load the handler's module from its CodeUri under ``module_name`` (a cold start); its handler."""
    found = importlib.util.spec_from_file_location(module_name, spec.module_file)
    if found is None or found.loader is None:
        raise ImportError(f"cannot load handler module {spec.module_file}")
    module = importlib.util.module_from_spec(found)
    sys.modules[module_name] = module
    found.loader.exec_module(module)
    handler: Callable[[Any, Any], Any] = getattr(module, spec.handler_attr)
    return handler


def serve(incoming: Any, outgoing: Any) -> None:
    """A worker process (``python -m cdp_infra.worker``): the first message is its function's spec,
    its module's name and the GIL's switch interval; then one invocation per message until the stack
    closes the pipe."""
    spec, module_name, switch_interval_s = incoming.recv()
    sys.setswitchinterval(switch_interval_s)
    capture_emf()
    share_service_models()
    handler = load_handler(spec, module_name)
    while True:
        try:
            event, context = incoming.recv()
        except EOFError:
            return
        sent_back = _SentBack()
        _invocation.target = (sent_back, spec.logical_id)
        try:
            answer: tuple[bool, Any] = (True, handler(event, context))
        except Exception as exc:  # the invocation's error, raised again by the caller
            answer = (False, f"{type(exc).__name__}: {exc}")
        finally:
            _invocation.target = None
        try:
            outgoing.send((answer, sent_back.blobs))
        except OSError:  # the stack is gone
            return


class FunctionError(Exception):
    """The handler raised in its worker process (its exception's type and message), or the process died."""


class ProcessEnvironment:
    """An execution environment in a process of its own (``python -m cdp_infra.worker``): the
    handler's module is loaded there, each invocation's event and context go to it over a pipe, and
    its answer and metric sets come back. The process inherits the stack's environment variables as
    they are when it starts, and its stdout and stderr (the function's logs).
    """

    def __init__(self, spec: FunctionSpec, module_name: str, metrics: MetricsRecorder | None) -> None:
        from multiprocessing.connection import Connection

        to_child, from_parent = os.pipe()
        from_child, to_parent = os.pipe()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "cdp_infra.worker", str(to_child), str(to_parent)],
            pass_fds=(to_child, to_parent), stdin=subprocess.DEVNULL)
        os.close(to_child)
        os.close(to_parent)
        self._send = Connection(from_parent, readable=False)
        self._receive = Connection(from_child, writable=False)
        self._send.send((spec, module_name, sys.getswitchinterval()))
        self.spec, self.metrics = spec, metrics
        self.alive = True

    @property
    def pid(self) -> int:
        return self.process.pid

    def __call__(self, event: Any, context: Any) -> Any:
        try:
            self._send.send((event, context))
            (ok, value), blobs = self._receive.recv()
        except (EOFError, OSError) as exc:
            self.alive = False
            raise FunctionError(f"the execution environment exited: {exc!r}") from exc
        if self.metrics is not None:
            for blob in blobs:
                self.metrics.record(self.spec.logical_id, blob)
        if not ok:
            raise FunctionError(value)
        return value

    def stop(self) -> None:
        self.alive = False
        self._send.close()  # the worker's next read ends: it exits
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)
        self._receive.close()


@dataclass
class InvocationStats:
    invocations: int = 0
    errors: int = 0
    seconds: float = 0.0


class LocalFunction:
    """One Lambda function of the template, loadable and invocable in-process.

    Lambda runs one invocation at a time in an execution environment and starts another
    environment for a concurrent one. Handler code relies on that: Chalice keeps the current
    request on its app object, Powertools keeps per-invocation state in module globals. So each
    concurrent invocation here gets an environment of its own (a separate instance of the
    handler's module), and an idle environment is reused, warm, by the next invocation.
    ``own_process``: each environment is a :class:`ProcessEnvironment` instead.
    """

    def __init__(self, spec: FunctionSpec, function_name: str, region: str, account_id: str,
                 metrics: MetricsRecorder | None = None, *, own_process: bool = False) -> None:
        self.spec = spec
        self.own_process = own_process
        self.metrics = metrics
        self.function_name = function_name
        self.region = region
        self.account_id = account_id
        self.stats = InvocationStats()
        self._lock = threading.Lock()
        self._environments: list[Callable[[Any, Any], Any]] = []  # each environment's handler
        self._idle: list[Callable[[Any, Any], Any]] = []

    @property
    def module_name(self) -> str:
        """The module of the first execution environment (the one a single-threaded caller gets)."""
        return f"cdp_fn_{self.spec.logical_id.lower()}"

    def _load(self) -> Callable[[Any, Any], Any]:
        """The first environment's handler, its module loaded on first use."""
        with self._lock:
            if not self._environments:
                self._idle.append(self._new_environment())
            return self._environments[0]

    def _new_environment(self) -> Callable[[Any, Any], Any]:
        n = len(self._environments)
        module_name = self.module_name if n == 0 else f"{self.module_name}_env{n}"
        handler = (ProcessEnvironment(self.spec, module_name, self.metrics) if self.own_process
                   else load_handler(self.spec, module_name))
        self._environments.append(handler)
        return handler

    def _acquire(self) -> Callable[[Any, Any], Any]:
        with self._lock:
            return self._idle.pop() if self._idle else self._new_environment()

    def _release(self, handler: Callable[[Any, Any], Any]) -> None:
        with self._lock:
            if getattr(handler, "alive", True):
                self._idle.append(handler)
            else:  # a process that died is not reused: the next invocation starts a new one (cold)
                self._environments.remove(handler)

    @property
    def environments(self) -> int:
        return len(self._environments)

    def prewarm(self, environments: int = 1) -> None:
        """Start this many execution environments now (their cold start), idle until invoked."""
        with self._lock:
            while len(self._environments) < environments:
                self._idle.append(self._new_environment())

    @property
    def pids(self) -> list[int]:
        """The processes of the environments that run in their own."""
        return [e.pid for e in self._environments if isinstance(e, ProcessEnvironment) and e.pid is not None]

    def stop(self) -> None:
        """Stop the environments' processes (those of an in-process function need nothing)."""
        with self._lock:
            environments, self._environments, self._idle = list(self._environments), [], []
        for environment in environments:
            if isinstance(environment, ProcessEnvironment):
                environment.stop()

    def invoke(self, event: Any) -> Any:
        handler = self._acquire()
        context = LambdaContext(function_name=self.function_name, timeout_s=self.spec.timeout,
                                region=self.region, account_id=self.account_id)
        started = time.perf_counter()
        self.stats.invocations += 1
        _invocation.target = (self.metrics, self.spec.logical_id) if self.metrics is not None else None
        try:
            return handler(event, context)
        except Exception:
            self.stats.errors += 1
            raise
        finally:
            _invocation.target = None
            self.stats.seconds += time.perf_counter() - started
            self._release(handler)
