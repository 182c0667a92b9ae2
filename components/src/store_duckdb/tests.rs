//! Tests of the DuckDB store.
