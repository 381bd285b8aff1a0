"""Invokes Lambda handlers in-process, the way the Lambda runtime would.

Each function's module is loaded from its CodeUri under a module name of its own (two
functions may both have a ``handler.py``), once, after the environment is set, so that
handler modules behave as on a cold start.
"""

from __future__ import annotations

import importlib.util
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .template import FunctionSpec


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


@dataclass
class InvocationStats:
    invocations: int = 0
    errors: int = 0
    seconds: float = 0.0


class LocalFunction:
    """One Lambda function of the template, loadable and invocable in-process."""

    def __init__(self, spec: FunctionSpec, function_name: str, region: str, account_id: str) -> None:
        self.spec = spec
        self.function_name = function_name
        self.region = region
        self.account_id = account_id
        self.stats = InvocationStats()
        self._handler: Callable[[Any, Any], Any] | None = None
        self._lock = threading.Lock()

    def _load(self) -> Callable[[Any, Any], Any]:
        with self._lock:
            if self._handler is None:
                module_name = f"cdp_fn_{self.spec.logical_id.lower()}"
                path = self.spec.module_file
                spec = importlib.util.spec_from_file_location(module_name, path)
                if spec is None or spec.loader is None:
                    raise ImportError(f"cannot load handler module {path}")
                module = importlib.util.module_from_spec(spec)
                sys.modules[module_name] = module
                spec.loader.exec_module(module)
                self._handler = getattr(module, self.spec.handler_attr)
            return self._handler

    def invoke(self, event: Any) -> Any:
        handler = self._load()
        context = LambdaContext(function_name=self.function_name, timeout_s=self.spec.timeout,
                                region=self.region, account_id=self.account_id)
        started = time.perf_counter()
        self.stats.invocations += 1
        try:
            return handler(event, context)
        except Exception:
            self.stats.errors += 1
            raise
        finally:
            self.stats.seconds += time.perf_counter() - started
