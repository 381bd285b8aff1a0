"""Records of the events stream, as the Kinesis event source mapping delivers them to Lambda."""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class DeliveredRecord:
    """One record as the Kinesis event source mapping hands it to Lambda (the collector's OutgoingRecord, read back)."""

    shard_id: str
    sequence_number: str
    data: bytes
    partition_key: str = ""
    # approximateArrivalTimestamp: when the record reached the stream (epoch seconds).
    arrived_at: float | None = None


def stream_records(event: dict[str, Any]) -> list[DeliveredRecord]:
    """The records of a Lambda Kinesis event (``eventID`` is ``<shard id>:<sequence number>``)."""
    records = []
    for r in event.get("Records", []):
        kinesis = r["kinesis"]
        try:
            data = base64.b64decode(kinesis["data"], validate=True)
        except (binascii.Error, ValueError):
            data = b""
        records.append(DeliveredRecord(r["eventID"].split(":", 1)[0], kinesis["sequenceNumber"], data,
                                       str(kinesis.get("partitionKey", "")), kinesis.get("approximateArrivalTimestamp")))
    return records


def decode(record: DeliveredRecord) -> dict[str, Any] | None:
    """The event a record carries, or None when it is not a JSON object."""
    try:
        value = json.loads(record.data)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None
