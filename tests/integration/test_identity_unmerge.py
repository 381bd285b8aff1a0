"""explain, detach and undo_merge on the template's tables (moto)."""

from __future__ import annotations

from typing import Any

import pytest

from cdp.adapters.dynamo_profiles import DynamoIdentityStore
from cdp.identity import explain, lookup_profile, resolve_batch, undo_merge
from cdp.identity.unmerge import detach
from cdp.settings import Settings
from tests.identity_support import CONFIG, NOW, ev


@pytest.fixture
def merged(stack_settings: Settings) -> tuple[DynamoIdentityStore, list[dict[str, Any]], str]:
    """Two people merged by a shared email; returns the store, the archive and the absorbed id."""
    store = DynamoIdentityStore(stack_settings)
    batches = [
        [ev("a1", 1, type_="identify", anonymousId="a", traits={"plan": "free"})],
        [ev("b1", 2, type_="identify", anonymousId="b", traits={"plan": "pro"})],
        [
            ev("x1", 3, type_="identify", anonymousId="a", traits={"email": "s@family.io"}),
            ev("x2", 4, type_="identify", anonymousId="b", traits={"email": "s@family.io"}),
        ],
    ]
    absorbed = ""
    for batch in batches:
        outcome = resolve_batch(batch, store, config=CONFIG, now=NOW)
        for merge in outcome.merges:
            absorbed = merge.other_profile_ids[0]
    return store, [e for b in batches for e in b], absorbed


def test_explain_reads_the_merge_log_table(
    merged: tuple[DynamoIdentityStore, list[dict[str, Any]], str],
) -> None:
    store, _, absorbed = merged
    result = explain("email:s@family.io", store)
    assert [m["message_id"] for m in result["merges"]] == ["x2"]
    assert result["absorbed_profiles"] == [absorbed]


def test_undo_merge_restores_both_profiles_in_dynamodb(
    merged: tuple[DynamoIdentityStore, list[dict[str, Any]], str],
) -> None:
    store, archive, absorbed = merged
    undo_merge(absorbed, store, events=archive, now=NOW)
    restored = lookup_profile("anonymous_id:b", store)
    assert (restored["profile_id"], restored["traits"]["plan"]) == (absorbed, "pro")  # type: ignore[index]
    assert lookup_profile("anonymous_id:a", store)["traits"]["plan"] == "free"  # type: ignore[index]


def test_detach_writes_the_new_profile_and_its_index_entry(
    merged: tuple[DynamoIdentityStore, list[dict[str, Any]], str],
) -> None:
    store, archive, _ = merged
    result = detach("email:s@family.io", store, events=archive, now=NOW)
    alone = lookup_profile("email:s@family.io", store)
    assert alone["identifiers"] == {"email": ["s@family.io"]}  # type: ignore[index]
    assert alone["profile_id"] in result.profiles  # type: ignore[index]
