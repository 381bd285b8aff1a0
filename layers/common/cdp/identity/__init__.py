"""Identity resolution and unified profiles.

``resolve_batch`` links the identifiers events carry, merges the profiles they connect and
applies each event once; ``lookup_profile`` reads a profile by any identifier. Storage is a port
(:class:`IdentityStore`): :class:`InMemoryIdentityStore` here, ``DynamoIdentityStore`` in
``cdp.adapters.dynamo_profiles``.
"""

from cdp.identity.config import ComputedTrait, IdentifierSpec, IdentityConfig, LifecycleConfig
from cdp.identity.explain import explain
from cdp.identity.identifiers import Extracted, extract, make_identifier, parse_identifier
from cdp.identity.lookup import find_profile, iter_identity_map, iter_profiles, lookup_profile
from cdp.identity.profile import Profile
from cdp.identity.refresh import refresh_lifecycle_stages
from cdp.identity.resolve import BatchOutcome, resolve_batch
from cdp.identity.store import IdentityStore, InMemoryIdentityStore, MergeLogEntry
from cdp.identity.unmerge import UnmergeResult, detach, normalise_archived, undo_merge

__all__ = [
    "BatchOutcome",
    "ComputedTrait",
    "LifecycleConfig",
    "UnmergeResult",
    "detach",
    "explain",
    "normalise_archived",
    "undo_merge",
    "Extracted",
    "IdentifierSpec",
    "IdentityConfig",
    "IdentityStore",
    "InMemoryIdentityStore",
    "MergeLogEntry",
    "Profile",
    "extract",
    "find_profile",
    "iter_identity_map",
    "iter_profiles",
    "lookup_profile",
    "make_identifier",
    "parse_identifier",
    "refresh_lifecycle_stages",
    "resolve_batch",
]
