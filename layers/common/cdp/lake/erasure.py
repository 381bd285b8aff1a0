"""Rows of a person in Parquet tables (events, snapshots): the mask an erasure drops (pyarrow)."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

from cdp.privacy.matching import JSON_COLUMNS, Needles


def person_rows(table: pa.Table, needles: Needles) -> pa.ChunkedArray | pa.Array:
    """True for each row holding any trace of the person.

    Identifier columns (``user_id``, ``anonymous_id``, ``email``) are compared whole; JSON text
    columns are searched for the quoted values; any other string column (snapshots: ``identifier``,
    ``profile_id``, ``identifiers``...) for every trace string.
    """
    mask = pa.array([False] * table.num_rows, pa.bool_())
    columns = needles.column_values()
    # An alias's previousId is a user id or an anonymous id, bare.
    columns["previous_id"] = sorted({*columns.get("user_id", []), *columns.get("anonymous_id", [])})
    strings = needles.strings()
    for name in table.column_names:
        column = table.column(name)
        if not pa.types.is_string(column.type) and not pa.types.is_large_string(column.type):
            if pa.types.is_list(column.type) and pa.types.is_string(column.type.value_type):
                column = pc.binary_join(column, "\x1f")
            else:
                continue
        if name in columns:
            if not columns[name]:
                continue
            hit = pc.is_in(column, value_set=pa.array(columns[name]))
        else:
            patterns = needles.quoted if name in JSON_COLUMNS else strings
            hit = None
            for pattern in patterns:
                term = pc.match_substring(column, pattern)
                hit = term if hit is None else pc.or_(hit, term)
            if hit is None:
                continue
        mask = pc.or_(mask, pc.fill_null(hit, False))
    return mask
