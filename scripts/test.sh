#!/usr/bin/env bash
# The test command: fetches what a fresh clone lacks, checks the example pipelines with
# taplo, then runs every test of the workspace.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup-duckdb.sh
# guano-py, the reference GUANO reader, checks the metadata our recordings carry.
python3 -c "import guano" 2>/dev/null || python3 -m pip install --quiet --disable-pip-version-check guano==1.0.16
scripts/taplo-check.sh
cargo test --workspace --locked "$@"
