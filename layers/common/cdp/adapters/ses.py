"""What an SES call's failure means, and the single-attempt client (:mod:`cdp.adapters.sesv2` sends).

Every email goes through SES v2 raw (:class:`cdp.adapters.sesv2.SesV2RawSender`); moto's SES keeps
sent mail locally. SES has no idempotency token, so what a failed call means decides whether it may
be retried:

| what happened | error | sent? |
| --- | --- | --- |
| SES answered a refusal (4xx): throttled, MessageRejected, sender not verified, no such configuration set, sending paused | ``EmailNotSent`` (retryable) | no |
| SES answered that the message is invalid (InvalidParameterValue, ValidationError) | ``EmailNotSent`` (not retryable) | no |
| no connection was made (connect timeout, endpoint unreachable) | ``EmailNotSent`` (retryable) | no |
| read timeout, reset connection, 5xx: the request went out, the answer did not come back | ``SendOutcomeUnknown`` | unknown |

The client makes exactly one attempt per call: the SDK's own retries would resend after a read
timeout, which only the effect ledger may decide.
"""

from __future__ import annotations

from typing import Any

from cdp.adapters.errors import THROTTLING_CODES, error_code
from cdp.errors import EmailNotSent, SendOutcomeUnknown
from cdp.settings import Settings

PERMANENT_CODES = frozenset({"InvalidParameterValue", "ValidationError"})


def single_attempt_client(settings: Settings, service: str = "sesv2") -> Any:
    """An SES v2 client configured like :func:`cdp.adapters.aws.aws_client`'s, but making one attempt."""
    import boto3.session
    from botocore.config import Config

    from cdp.adapters.aws import botocore_config, endpoint_url

    config = botocore_config(settings).merge(Config(retries={"mode": "standard", "total_max_attempts": 1}))
    return boto3.session.Session().client(service, region_name=settings.aws_region,
                                          endpoint_url=endpoint_url(settings, service), config=config)


def send_error(exc: BaseException) -> Exception:
    """The domain error for an exception of ``send_email``: refused (not sent) or outcome unknown."""
    from botocore.exceptions import ClientError, ConnectTimeoutError, EndpointConnectionError

    if isinstance(exc, ConnectTimeoutError | EndpointConnectionError):
        return EmailNotSent("could not connect to SES", retryable=True, code="connect")
    if isinstance(exc, ClientError):
        code = error_code(exc) or "unknown"
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
        if code in THROTTLING_CODES:
            return EmailNotSent("SES throttled the email", retryable=True, code=code)
        if status >= 500 or status == 0:
            return SendOutcomeUnknown("SES failed while handling the email", code=code)
        return EmailNotSent("SES refused the email", retryable=code not in PERMANENT_CODES, code=code)
    return SendOutcomeUnknown("no answer from SES", code=type(exc).__name__)


def _tag(value: str) -> str:
    # SES tag values allow only ASCII letters, digits, underscore and dash.
    return "".join(c if c.isalnum() or c in "_-" else "_" for c in value)[:256] or "none"
