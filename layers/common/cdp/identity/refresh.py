"""Time-driven lifecycle changes: a customer churns by *not* acting, so no event will say so.

Run on a schedule (e.g. with the segment job): every live profile whose stage changed with the
passage of time is rewritten at its expected version; a profile updated meanwhile is skipped
(the next run or its next event settles it).
"""

from __future__ import annotations

from datetime import datetime

from cdp.errors import ConcurrentUpdate
from cdp.identity.config import IdentityConfig
from cdp.identity.profile import refresh_stage
from cdp.identity.store import IdentityStore
from cdp.times import format_time


def refresh_lifecycle_stages(store: IdentityStore, *, config: IdentityConfig, now: datetime) -> int:
    """Recompute every live profile's stage as of ``now``; returns how many changed."""
    changed = 0
    at = format_time(now)
    for profile in store.scan_profiles():
        if profile.merged_into is not None or not refresh_stage(profile, config, now, at):
            continue
        profile.updated_at = at
        try:
            store.put_profile(profile)
        except ConcurrentUpdate:
            continue
        changed += 1
    return changed
