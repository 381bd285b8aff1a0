"""What the identity store cannot hold, checked before unify writes: one event is refused, not its batch.

Unify must defend itself whatever the collector checked: records also come from replays, imports
and older collectors. The limits are DynamoDB's, for the places an event's values are stored.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from cdp.identity.identifiers import Extracted, alias_candidates
from cdp.identity.profile import event_traits

#: The identity index's partition key is the identifier itself (DynamoDB: 2048 bytes).
IDENTIFIER_MAX_BYTES = 2048
#: A messageId is stored in merge-log items and real-time run ids; far below the item limit.
MESSAGE_ID_MAX_BYTES = 1024
#: A profile item holds every trait of a person under DynamoDB's 400 KB item limit; one event may
#: bring at most this much, so that a profile is not filled by a single event.
EVENT_TRAITS_MAX_BYTES = 32 * 1024


def storage_violation(event: Mapping[str, Any], extracted: Extracted) -> str | None:
    """The reason the store would refuse ``event`` (a stable code), or None when it fits."""
    message_id = event.get("messageId")
    if isinstance(message_id, str) and len(message_id.encode("utf-8")) > MESSAGE_ID_MAX_BYTES:
        return "message_id_too_long"
    keys = [*extracted.identifiers, *(identifier for identifier, _ in extracted.blocked)]
    if extracted.alias_of is not None:
        keys.extend(alias_candidates(extracted.alias_of))
    if any(len(key.encode("utf-8")) > IDENTIFIER_MAX_BYTES for key in keys):
        return "identifier_too_long"
    traits = json.dumps(event_traits(event), ensure_ascii=False, separators=(",", ":"), default=str)
    if len(traits.encode("utf-8")) > EVENT_TRAITS_MAX_BYTES:
        return "traits_too_large"
    return None
