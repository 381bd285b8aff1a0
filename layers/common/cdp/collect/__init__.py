"""Collection: the Segment-compatible tracking API's domain (no AWS calls, no heavy imports).

:func:`ingest` authenticates a request, validates and enriches its events, quarantines what a
known source sent wrong and hands the rest to an :class:`EventSink`.
"""

from .body import MAX_EVENT_BYTES, MAX_REQUEST_BYTES, decode_body, write_key_from_authorization
from .events import EVENT_TYPES, OutgoingRecord, RequestFacts, normalise_event, partition_key
from .ingest import (
    ROUTES,
    EventSink,
    IngestRequest,
    IngestResult,
    Quarantine,
    QuarantineEntry,
    Rejection,
    Source,
    SourceStore,
    ingest,
)

__all__ = [
    "EVENT_TYPES",
    "MAX_EVENT_BYTES",
    "MAX_REQUEST_BYTES",
    "ROUTES",
    "EventSink",
    "IngestRequest",
    "IngestResult",
    "Quarantine",
    "QuarantineEntry",
    "Rejection",
    "RequestFacts",
    "Source",
    "SourceStore",
    "OutgoingRecord",
    "decode_body",
    "ingest",
    "normalise_event",
    "partition_key",
    "write_key_from_authorization",
]
