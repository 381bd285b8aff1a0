"""Reading import files row by row with bounded memory: CSV, JSON lines and Parquet, in batches.

CSV and Parquet are read by pyarrow in record batches (every CSV column as text: the mapping says
what converts to a number). JSON lines are read line by line from pyarrow's (decompressing) input
stream, so one bad line is one rejected row, not a failed file. ``.gz`` files are decompressed.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from cdp.errors import InvalidConfig

from .run import Row

FORMATS = ("csv", "jsonl", "parquet")
_SUFFIXES = {".csv": "csv", ".tsv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl",
             ".parquet": "parquet", ".pq": "parquet"}
#: Bytes of a file parsed at a time (CSV blocks; Parquet reads one row group's batch at a time).
BLOCK_BYTES = 1 << 20
BATCH_ROWS = 2000


def file_format(name: str) -> str:
    """``csv``, ``jsonl`` or ``parquet`` from the file's name (``.gz`` is looked through)."""
    suffixes = [s.lower() for s in Path(name).suffixes]
    if suffixes and suffixes[-1] == ".gz":
        suffixes.pop()
    found = _SUFFIXES.get(suffixes[-1]) if suffixes else None
    if found is None:
        raise InvalidConfig("unknown_format", file=name, expected=", ".join(sorted(_SUFFIXES)))
    return found


def read_rows(path: str | Path, fmt: str | None = None, *, columns: frozenset[str] | None = None) -> Iterator[Row]:
    """Every row of the file in order, numbered from 1 (the header of a CSV is not a row)."""
    fmt = fmt or file_format(str(path))
    if fmt == "csv":
        return _csv_rows(Path(path), columns)
    if fmt == "jsonl":
        return _jsonl_rows(Path(path))
    if fmt == "parquet":
        return _parquet_rows(Path(path), columns)
    raise InvalidConfig("unknown_format", file=str(path))


def _csv_rows(path: Path, columns: frozenset[str] | None) -> Iterator[Row]:
    import pyarrow as pa
    import pyarrow.csv as pacsv

    delimiter = "\t" if ".tsv" in [s.lower() for s in path.suffixes] else ","
    header = _csv_header(path, delimiter)
    malformed: list[tuple[int, str]] = []

    def on_invalid(row: Any) -> str:
        malformed.append((row.number or 0, row.text or ""))
        return "skip"

    reader = pacsv.open_csv(
        pa.input_stream(str(path), compression="detect"),
        read_options=pacsv.ReadOptions(block_size=BLOCK_BYTES, use_threads=False),
        parse_options=pacsv.ParseOptions(delimiter=delimiter, invalid_row_handler=on_invalid,
                                         newlines_in_values=True),
        convert_options=pacsv.ConvertOptions(
            column_types={name: pa.string() for name in header}, strings_can_be_null=True,
            include_columns=[h for h in header if columns is None or h in columns] or header[:1],
        ),
    )
    # pyarrow numbers a skipped row among all rows, header included: that row's data row is number - 1.
    pending: dict[int, str] = {}
    number = 0
    for batch in reader:
        for line, text in malformed:
            if line > number + 1:
                pending[line - 1] = text
            else:  # position unknown: before the block's good rows
                number += 1
                yield Row(number, malformed=text)
        malformed.clear()
        for values in batch.to_pylist():
            number += 1
            while number in pending:
                yield Row(number, malformed=pending.pop(number))
                number += 1
            yield Row(number, values=values)
    for line, text in malformed:
        pending.setdefault(line - 1 if line > number + 1 else number + 1 + len(pending), text)
    for row_number in sorted(pending):
        yield Row(row_number, malformed=pending[row_number])


def _csv_header(path: Path, delimiter: str) -> list[str]:
    import pyarrow as pa

    with pa.input_stream(str(path), compression="detect") as stream:
        head = stream.read(BLOCK_BYTES)
    text = head.decode("utf-8-sig", errors="replace")
    first = next(csv.reader(io.StringIO(text), delimiter=delimiter), None)
    if not first:
        raise InvalidConfig("empty_file", file=str(path))
    return first


def _jsonl_rows(path: Path) -> Iterator[Row]:
    import pyarrow as pa

    with pa.input_stream(str(path), compression="detect") as raw:
        stream = io.TextIOWrapper(io.BufferedReader(raw, buffer_size=BLOCK_BYTES), encoding="utf-8",  # type: ignore[arg-type]
                                  errors="replace")
        number = 0
        for line in stream:
            if not line.strip():
                continue
            number += 1
            try:
                values = json.loads(line)
            except ValueError:
                yield Row(number, malformed=line.rstrip("\n"))
                continue
            if isinstance(values, dict):
                yield Row(number, values=values)
            else:
                yield Row(number, malformed=line.rstrip("\n"))


def _parquet_rows(path: Path, columns: frozenset[str] | None) -> Iterator[Row]:
    import pyarrow.parquet as pq

    with pq.ParquetFile(str(path)) as parquet:
        names = parquet.schema_arrow.names
        wanted = [n for n in names if columns is None or n in columns] or names[:1]
        number = 0
        for batch in parquet.iter_batches(batch_size=BATCH_ROWS, columns=wanted):
            for values in batch.to_pylist():
                number += 1
                yield Row(number, values=values)
