"""Events the CDP itself writes about a known person (opt-outs, email outcomes) into the stream.

They are normalised exactly as the collector normalises any event (receivedAt, size and value
checks, serialisation), but need no ``userId``/``anonymousId``: the person is found by the
identifiers the event carries (``context.traits.email``), as unify does for any event. Inventing an
anonymousId would give every person an identifier no one ever sent.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from cdp.collect.events import OutgoingRecord, RequestFacts, normalise_event

_PLACEHOLDER = "cdp-internal-placeholder"


def internal_record(raw: dict[str, Any], *, source_id: str, now: datetime) -> OutgoingRecord:
    identified = bool(raw.get("userId") or raw.get("anonymousId"))
    record = normalise_event(raw if identified else {**raw, "anonymousId": _PLACEHOLDER}, route_type=None,
                             facts=RequestFacts(source_id=source_id, received_at=now))
    if identified:
        return record
    event = {k: v for k, v in record.event.items() if k != "anonymousId"}
    email = ((event.get("context") or {}).get("traits") or {}).get("email")
    data = json.dumps(event, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode("utf-8")
    return OutgoingRecord(event=event, data=data, partition_key=f"email:{email}" if email else event["messageId"])
