"""Checked by mypy only: each DynamoDB adapter is the port the domain and the jobs take."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cdp.adapters.dynamo_profiles import DynamoIdentityStore
    from cdp.adapters.membership import DynamoMembershipStore
    from cdp.identity.store import IdentityStore
    from cdp.segments.membership import MembershipStore
    from cdp.settings import Settings

    def _identity(settings: Settings) -> IdentityStore:
        return DynamoIdentityStore(settings)

    def _membership(settings: Settings) -> MembershipStore:
        return DynamoMembershipStore(settings)
