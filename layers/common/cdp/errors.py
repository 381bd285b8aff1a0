"""Typed errors of the domain. The edge (handlers) maps them to responses in one table."""

from __future__ import annotations


class CdpError(Exception):
    """Base of every error the domain raises on purpose."""

    code = "cdp_error"

    def __init__(self, reason: str = "", **details: object) -> None:
        super().__init__(reason or self.code)
        self.reason = reason or self.code
        self.details = details


class InvalidEvent(CdpError):
    code = "invalid_event"


class WriteKeyRejected(CdpError):
    code = "write_key_rejected"


class Unauthorized(CdpError):
    code = "unauthorized"


class Forbidden(CdpError):
    """A known caller without the scope the route needs (details: scope, operator)."""

    code = "forbidden"


class InvalidOperator(CdpError):
    """An operator cannot be created as asked (reason: invalid_name, unknown_scope, no_scope)."""

    code = "invalid_operator"


class NotFound(CdpError):
    code = "not_found"


class StoreError(CdpError):
    """A data store or AWS service failed.

    ``retryable`` says whether the same call may succeed later (a timeout, a 5xx, throttling, a lost
    race) or not (validation, access denied, a missing resource). ``cdp.adapters.errors`` decides it.
    """

    code = "store_error"
    retryable_by_default = True

    def __init__(self, reason: str = "", *, retryable: bool | None = None, **details: object) -> None:
        super().__init__(reason, **details)
        self.retryable = self.retryable_by_default if retryable is None else retryable


class ConcurrentUpdate(StoreError):
    """An optimistic-locking condition failed; re-read and retry."""

    code = "concurrent_update"


class ServiceThrottled(StoreError):
    """An AWS service throttled us (DynamoDB, Kinesis, SES ...); retry after a pause."""

    code = "service_throttled"


class MergeBlocked(CdpError):
    code = "merge_blocked"


class InvalidSegment(CdpError):
    code = "invalid_segment"


class InvalidCampaign(CdpError):
    """A campaign file does not parse or names something unknown (reason has file:line: field)."""

    code = "invalid_campaign"


class InvalidJourney(CdpError):
    """config/journey.yaml does not parse or names an unknown stage (reason has file:line)."""

    code = "invalid_journey"


# ---------------------------------------------------------------- collection


class MalformedRequest(InvalidEvent):
    """The request body cannot be read as what the route expects (reason names why)."""

    code = "malformed_request"


class PayloadTooLarge(InvalidEvent):
    """The request exceeds a documented size limit (details: limit, limit_bytes)."""

    code = "payload_too_large"


class EventsRejected(InvalidEvent):
    """Every event of the request was rejected (details: rejected, a list of index/reason)."""

    code = "events_rejected"


class StreamUnavailable(StoreError):
    """Some events could not be written to the stream; the sender should retry."""

    code = "stream_unavailable"


class Throttled(CdpError):
    """Too many requests; the sender should retry after a pause."""

    code = "throttled"


# ---------------------------------------------------------------- identity


class InvalidIdentifier(InvalidEvent):
    """An identifier is not ``<type>:<value>`` with a known type and a valid value."""

    code = "invalid_identifier"


class IdentifierTaken(ConcurrentUpdate):
    """Another writer claimed an identifier first (details: identifiers); re-read and retry."""

    code = "identifier_taken"


class InvalidConfig(CdpError):
    """A configuration file or mapping is not valid (reason names what)."""

    code = "invalid_config"


class MissingSetting(InvalidConfig):
    """A required environment variable is absent or empty (details: name)."""

    code = "missing_setting"


class MalformedSetting(InvalidConfig):
    """An environment variable does not parse as its setting's type (details: name, expected)."""

    code = "malformed_setting"


class InvalidUnmerge(CdpError):
    """An unmerge that cannot be done as asked (e.g. the profile was never merged)."""

    code = "invalid_unmerge"


# ---------------------------------------------------------------- segments


class SegmentsIncomplete(CdpError):
    """Segments of a scheduled tick failed for a reason that may pass (throttling, a timeout): the tick
    is to be run again under its run id (details: segments)."""

    code = "segments_incomplete"


class QueryFailed(StoreError):
    """A segment query failed or was cancelled (details: engine, state, query_id); nothing was changed."""

    code = "query_failed"


class QueryTimedOut(QueryFailed):
    """A segment query did not finish in the time allowed; it was asked to stop."""

    code = "query_timed_out"


class QueryCancelled(QueryFailed):
    """A segment query was cancelled: by the Athena work group's bytes-scanned cutoff, or by hand."""

    code = "query_cancelled"


# ---------------------------------------------------------------- activation


class EmailNotSent(StoreError):
    """The email provider answered that it did not accept the message (details: code).

    ``retryable`` says whether sending again may succeed (throttling, a sender or configuration set
    not verified yet) or cannot (the message itself is invalid). Either way nothing was sent.
    """

    code = "email_not_sent"


class SendOutcomeUnknown(StoreError):
    """The request may have reached the provider but no answer came back (a read timeout, a reset
    connection, a 5xx): the message may or may not have been sent."""

    code = "send_outcome_unknown"


class EffectInFlight(StoreError):
    """Another attempt holds the claim on this effect and its hold has not expired; retry later."""

    code = "effect_in_flight"


# ---------------------------------------------------------------- destinations (ad audiences, webhooks)


class DestinationRefused(StoreError):
    """An ad platform or a webhook endpoint did not take a request (details: status, code).

    ``action`` says what to do: ``retry`` (a transient failure: try again with backoff), ``slow_down``
    (rate-limited: try again after ``retry_after`` seconds or a longer backoff), ``abort`` (the request
    or the credentials are wrong: retrying cannot help; it is dead-lettered) or ``disable`` (a webhook
    endpoint answered 410 Gone: the destination is switched off).
    """

    code = "destination_refused"

    def __init__(self, reason: str = "", *, action: str = "retry", retry_after: float | None = None,
                 **details: object) -> None:
        super().__init__(reason, retryable=action in ("retry", "slow_down"), **details)
        self.action = action
        self.retry_after = retry_after


class UnsafeEndpoint(InvalidConfig):
    """A webhook URL that may not be called (not HTTPS on AWS, or a private, loopback or link-local host)."""

    code = "unsafe_endpoint"
