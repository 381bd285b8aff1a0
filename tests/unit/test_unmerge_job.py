"""Undoing a merge with the archive: the events come back from a Parquet lake read by DuckDB."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow.fs as pafs

from cdp.adapters.duckdb import DuckDBEngine
from cdp.identity import InMemoryIdentityStore, lookup_profile, resolve_batch
from cdp.identity.profile import new_profile_id
from cdp.jobs.unmerge_job import undo_profile_merge
from cdp.lake.parquet import write_events
from tests.identity_support import CONFIG, NOW, ev


def archived_run(tmp_path: Path, *batches: list[dict[str, Any]]) -> tuple[InMemoryIdentityStore, DuckDBEngine]:
    """Resolve each batch and archive it to a lake in ``tmp_path``, as unify does."""
    store, fs, root = InMemoryIdentityStore(), pafs.LocalFileSystem(), str(tmp_path)
    for number, batch in enumerate(batches):
        resolve_batch(batch, store, config=CONFIG, now=NOW)
        write_events(batch, fs, root, f"batch-{number}")
    return store, DuckDBEngine(fs, root)


def test_undoing_the_first_merge_of_a_chain_keeps_every_event_of_the_survivor(tmp_path: Path) -> None:
    # Given c (oldest), then b, then a; a is merged into b, and b later into c
    store, engine = archived_run(
        tmp_path,
        [ev("c1", 1, anonymousId="c")],
        [ev("b1", 2, anonymousId="b")],
        [ev("a1", 3, anonymousId="a")],
        [
            ev("ab1", 4, type_="identify", anonymousId="a", traits={"email": "ab@family.io"}),
            ev("ab2", 5, type_="identify", anonymousId="b", traits={"email": "ab@family.io"}),
        ],
        [
            ev("bc1", 6, type_="identify", anonymousId="b", traits={"email": "bc@family.io"}),
            ev("bc2", 7, type_="identify", anonymousId="c", traits={"email": "bc@family.io"}),
        ],
    )
    a_profile = new_profile_id("anonymous_id:a")
    survivor = lookup_profile("anonymous_id:c", store)
    assert survivor is not None and survivor["event_count"] == 7
    b_profile = store.profiles[a_profile].merged_into
    assert b_profile is not None and store.profiles[b_profile].merged_into == survivor["profile_id"]

    # When the merge of a is undone
    undo_profile_merge(a_profile, store, engine, config=CONFIG, now=NOW)

    # Then a gets back the event only it carried (ab1 goes with the email, which a never had);
    # the survivor keeps the six others, its own included
    a, c = lookup_profile("anonymous_id:a", store), lookup_profile("anonymous_id:c", store)
    assert a is not None and c is not None and a["profile_id"] == a_profile
    assert (a["event_count"], c["event_count"]) == (1, 6)
