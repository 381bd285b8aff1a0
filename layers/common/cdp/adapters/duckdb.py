"""DuckDB as a segment query engine: the same SQL as Athena, run locally over the lake's Parquet.

``DuckDBEngine`` reads through any ``pyarrow.fs.FileSystem`` (local directory, S3, moto's S3) and
registers ``events`` (Hive partitions, ``dt`` a string as the Glue table declares), ``identity`` and
``profiles`` as views. Bytes scanned are counted per scan (see CountingDataset), so local previews
report what the query read, as Athena does.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.fs as pafs

from cdp.adapters.errors import query_errors
from cdp.errors import QueryFailed
from cdp.lake import EVENTS_PREFIX, IDENTITY_PREFIX, PROFILES_PREFIX
from cdp.lake.parquet import EVENTS_SCHEMA, IDENTITY_SCHEMA, PROFILES_SCHEMA, published_files
from cdp.segments.engines import QueryResult

PARTITION_SCHEMA = pa.schema([("dt", pa.string())])


# ---------------------------------------------------------------- byte counting


@dataclass
class ByteCounter:
    value: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, n: int) -> None:
        with self._lock:
            self.value += n

    def take(self) -> int:
        with self._lock:
            value, self.value = self.value, 0
            return value


class CountingDataset(ds.FileSystemDataset):
    """A Parquet dataset that adds to a counter the bytes each scan will read.

    DuckDB asks the dataset for a scanner with the columns the query needs and the filter it pushed
    down; partitions the filter excludes are never opened. The bytes counted are those of the chosen
    columns' chunks in the files that remain (what Athena bills as data scanned, read from the files'
    footers). Counting here rather than by wrapping the filesystem in Python keeps reads native.
    """

    counter: ByteCounter
    # Bytes per column of each file, read from its footer once (the dataset is reused while the
    # lake's listing is unchanged, see DuckDBEngine._dataset).
    column_bytes: dict[str, dict[str, int]]

    def scanner(self, columns: list[str] | None = None, filter: Any = None, **kwargs: Any) -> ds.Scanner:  # noqa: A002
        wanted = set(columns) if columns is not None else set(self.schema.names)
        total = 0
        for fragment in self.get_fragments(filter=filter):
            sizes = self.column_bytes.get(fragment.path)
            if sizes is None:
                sizes = self.column_bytes[fragment.path] = _column_bytes(fragment.metadata)
            total += sum(n for name, n in sizes.items() if name in wanted)
        self.counter.add(total)
        return super().scanner(columns=columns, filter=filter, **kwargs)


def _column_bytes(metadata: Any) -> dict[str, int]:
    sizes: dict[str, int] = {}
    for i in range(metadata.num_row_groups):
        group = metadata.row_group(i)
        for j in range(group.num_columns):
            chunk = group.column(j)
            name = chunk.path_in_schema.split(".")[0]
            sizes[name] = sizes.get(name, 0) + chunk.total_compressed_size
    return sizes


# ---------------------------------------------------------------- DuckDB


class DuckDBEngine:
    """Runs segment SQL locally with DuckDB over the lake's Parquet files.

    ``root`` is the lake's base path in ``filesystem`` (a directory, or ``bucket`` / ``bucket/prefix``
    for S3). Datasets are discovered on every run so files written since are seen. With
    ``count_bytes`` each result reports the bytes of the column chunks the query scanned.
    """

    dialect = "duckdb"

    def __init__(self, filesystem: pafs.FileSystem, root: str, *, count_bytes: bool = True) -> None:
        self.root = root.rstrip("/")
        self.filesystem = filesystem
        self.counter = ByteCounter()
        self.count_bytes = count_bytes
        self._con: Any = None
        # folder -> (the listing it was built from, the dataset): a job that runs many queries
        # opens each file's footer once, not once per query; a changed listing builds it again.
        self._datasets: dict[str, tuple[tuple[tuple[str, int | None, int | None], ...], Any]] = {}

    def run(self, sql: str) -> QueryResult:
        import duckdb  # heavy: imported only by the functions that query

        con = self._connection()
        # The lake may be S3: a listing or a read that fails is a (retryable) QueryFailed too.
        with query_errors("DuckDB could not read the lake", engine="duckdb"):
            for name, relation in self.tables().items():
                con.register(name, relation)
            self.counter.take()
            try:
                table = con.sql(sql).to_arrow_table()
            except duckdb.Error as exc:
                # A syntax, binder or catalog error (ProgrammingError) fails the same way every time;
                # anything else (reading the lake, memory) may not.
                raise QueryFailed(f"DuckDB query failed: {exc}", engine="duckdb",
                                  retryable=not isinstance(exc, duckdb.ProgrammingError)) from exc
        return QueryResult(rows=table.to_pylist(), bytes_scanned=self.counter.take())

    def close(self) -> None:
        if self._con is not None:
            self._con.close()
            self._con = None

    def _connection(self) -> Any:
        if self._con is None:
            import duckdb

            self._con = duckdb.connect()
            # Timestamps in the lake are UTC; literals in the SQL are UTC too.
            self._con.execute("SET TimeZone = 'UTC'")
        return self._con

    def tables(self) -> dict[str, ds.Dataset | pa.Table]:
        return {
            "events": self._dataset(
                EVENTS_PREFIX, EVENTS_SCHEMA.append(pa.field("dt", pa.string())), hive=True
            ),
            "identity": self._dataset(IDENTITY_PREFIX, IDENTITY_SCHEMA),
            "profiles": self._dataset(PROFILES_PREFIX, PROFILES_SCHEMA),
        }

    def lake_bytes(self, folder: str = EVENTS_PREFIX) -> int:
        """Total size of the Parquet files under ``folder`` (to put bytes scanned in proportion)."""
        infos = self.filesystem.get_file_info(
            pafs.FileSelector(f"{self.root}/{folder}", recursive=True, allow_not_found=True)
        )
        return sum(i.size or 0 for i in infos if i.type == pafs.FileType.File and i.path.endswith(".parquet"))

    def _dataset(self, folder: str, schema: pa.Schema, *, hive: bool = False) -> ds.Dataset | pa.Table:
        base = f"{self.root}/{folder}"
        infos = published_files(self.filesystem, base)
        listing = tuple((i.path, i.size, i.mtime_ns) for i in infos)
        cached = self._datasets.get(folder)
        if cached is not None and cached[0] == listing:
            return cached[1]
        built = self._build(base, [i.path for i in infos], schema, hive=hive)
        self._datasets[folder] = (listing, built)
        return built

    def _build(self, base: str, files: list[str], schema: pa.Schema, *, hive: bool) -> ds.Dataset | pa.Table:
        if not files:
            return schema.empty_table()
        dataset = ds.dataset(
            files,
            filesystem=self.filesystem,
            format="parquet",
            # An explicit schema: columns a file lacks read as nulls; dt stays a string as in Glue.
            schema=schema,
            partitioning=ds.partitioning(PARTITION_SCHEMA, flavor="hive") if hive else None,
            partition_base_dir=base,
        )
        if not self.count_bytes:
            return dataset
        counting = CountingDataset(
            list(dataset.get_fragments()), dataset.schema, dataset.format, dataset.filesystem
        )
        counting.counter = self.counter
        counting.column_bytes = {}
        return counting
