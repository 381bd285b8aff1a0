"""Builds the query engine the settings name: Athena on AWS, DuckDB over the same lake locally."""

from __future__ import annotations

from cdp.segments.engines import QueryEngine
from cdp.settings import Settings


def query_engine(settings: Settings) -> QueryEngine:
    if settings.query_engine == "duckdb":
        from cdp.adapters.duckdb import DuckDBEngine
        from cdp.adapters.lake import lake_filesystem, lake_root

        return DuckDBEngine(lake_filesystem(settings), lake_root(settings))
    if settings.query_engine == "athena":
        from cdp.adapters.athena import AthenaEngine
        from cdp.adapters.aws import aws_client

        return AthenaEngine(aws_client(settings, "athena"),
                            workgroup=settings.athena_workgroup, database=settings.glue_database)
    raise ValueError(f"unknown QUERY_ENGINE {settings.query_engine!r} (athena or duckdb)")
