"""Segments as code: YAML definitions, one SQL compiler for DuckDB and Athena, membership runs."""
