#!/usr/bin/env bash
# The test command: fetches what a fresh clone lacks, checks the example pipelines with
# taplo, then runs every test of the workspace.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup-duckdb.sh
scripts/taplo-check.sh
cargo test --workspace --locked "$@"
