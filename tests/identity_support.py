"""What the identity tests share: a fixed clock, the default configuration and an event builder."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from cdp.identity import IdentityConfig

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
CONFIG = IdentityConfig()


def ev(message_id: str, minute: int = 0, type_: str = "track", **fields: Any) -> dict[str, Any]:
    """A Segment event at 10:<minute> on the test day."""
    return {
        "messageId": message_id,
        "type": type_,
        "timestamp": f"2026-11-20T10:{minute:02d}:00.000Z",
        **fields,
    }
