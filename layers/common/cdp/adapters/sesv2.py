"""Email through SES v2, sent raw (our own MIME headers), paced under the account's send rate.

What a failed call means is :func:`cdp.adapters.ses.send_error`'s table (same contract as v1). The
client makes one attempt per call; throttling (nothing sent) is retried here with exponential
backoff up to ``throttle_retries`` times, then raised as a retryable ``EmailNotSent`` so the
claim is released and the queue redelivers: a throttled email is late, never dropped.

Pacing: at most ``GetAccount.SendQuota.MaxSendRate`` sends per second per process (a token
bucket); an account whose quota cannot be read (moto in tests) uses ``default_rate``. The local
stack's emulator answers GetAccount with the local account's quota.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from cdp.adapters.aws import AwsAdapter
from cdp.adapters.ses import _tag, send_error
from cdp.errors import EmailNotSent
from cdp.settings import Settings


class Pacer:
    """At most ``rate`` acquisitions per second (a token bucket of one second's burst)."""

    def __init__(self, rate: float, *, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.rate = max(rate, 0.1)
        self.clock, self.sleep = clock, sleep
        self.tokens = self.rate
        self.updated = clock()
        self.lock = threading.Lock()
        self.waited = 0.0

    def acquire(self) -> None:
        with self.lock:
            now = self.clock()
            self.tokens = min(self.rate, self.tokens + (now - self.updated) * self.rate)
            self.updated = now
            if self.tokens < 1:
                wait = (1 - self.tokens) / self.rate
                self.sleep(wait)
                self.waited += wait
                self.updated = self.clock()
                self.tokens = 1.0
            self.tokens -= 1


class SesV2RawSender(AwsAdapter):
    service = "sesv2"

    def __init__(self, settings: Settings, *, client: Any = None, default_rate: float = 14.0,
                 throttle_retries: int = 5, backoff_s: float = 0.2,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        super().__init__(settings, client=client)
        self.default_rate = default_rate
        self.throttle_retries = throttle_retries
        self.backoff_s = backoff_s
        self.sleep = sleep
        self._pacer: Pacer | None = None
        self.throttled = 0

    @property
    def client(self) -> Any:
        if self._client is None:
            from cdp.adapters.ses import single_attempt_client

            self._client = single_attempt_client(self.settings, service="sesv2")
        return self._client

    def max_send_rate(self) -> float:
        try:
            quota = self.client.get_account().get("SendQuota") or {}
            return float(quota.get("MaxSendRate") or self.default_rate)
        except Exception:  # moto has no GetAccount (the local stack's emulator adds it); AWS always answers it
            return self.default_rate

    @property
    def pacer(self) -> Pacer:
        if self._pacer is None:
            self._pacer = Pacer(self.max_send_rate(), sleep=self.sleep)
        return self._pacer

    def send_raw(self, *, to: str, raw: bytes, tags: Mapping[str, str]) -> str:
        attempt = 0
        while True:
            self.pacer.acquire()
            try:
                # No Destination: SES sends a raw message to its To header (``to``), once.
                out = self.client.send_email(
                    FromEmailAddress=self.settings.email_sender,
                    Content={"Raw": {"Data": raw}},
                    EmailTags=[{"Name": k, "Value": _tag(v)} for k, v in tags.items()],
                    **({"ConfigurationSetName": self.settings.ses_configuration_set}
                       if self.settings.ses_configuration_set else {}))
            except Exception as exc:
                error = send_error(exc)
                if isinstance(error, EmailNotSent) and error.details.get("code") in _THROTTLED \
                        and attempt < self.throttle_retries:
                    self.throttled += 1
                    self.sleep(self.backoff_s * 2 ** attempt)
                    attempt += 1
                    continue
                raise error from exc
            return str(out["MessageId"])


def _throttled() -> frozenset[str]:
    from cdp.adapters.errors import THROTTLING_CODES

    return THROTTLING_CODES | {"TooManyRequestsException", "LimitExceededException"}


_THROTTLED = _throttled()
