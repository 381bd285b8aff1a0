"""Time-driven lifecycle changes: a customer churns by *not* acting, so no event will say so.

Run on a schedule (e.g. with the segment job): every live profile whose stage changed with the
passage of time is rewritten at its expected version; a profile updated meanwhile is skipped
(the next run or its next event settles it).
"""

from __future__ import annotations

from datetime import datetime

from cdp.errors import ConcurrentUpdate
from cdp.identity.config import IdentityConfig
from cdp.identity.profile import Profile, refresh_stage
from cdp.identity.store import IdentityStore
from cdp.times import format_time


def refresh_lifecycle_stages(store: IdentityStore, *, config: IdentityConfig, now: datetime) -> int:
    """Recompute every live profile's stage as of ``now``; returns how many changed."""
    changed = 0
    for profile in store.scan_profiles():
        try:
            changed += refresh_profile(store, profile, config=config, now=now)
        except ConcurrentUpdate:
            continue
    return changed


def refresh_profile(store: IdentityStore, profile: Profile, *, config: IdentityConfig, now: datetime) -> bool:
    """Rewrite one scanned profile, at its expected version, if its stage changed as of ``now``.

    True if rewritten. Raises ``ConcurrentUpdate`` when it was updated since it was read (its stage
    was changed in memory only; the next run or its next event settles it).
    """
    at = format_time(now)
    if profile.merged_into is not None or not refresh_stage(profile, config, now, at):
        return False
    profile.updated_at = at
    store.put_profile(profile)
    return True
