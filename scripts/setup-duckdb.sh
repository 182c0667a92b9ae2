#!/usr/bin/env bash
# Fetches the prebuilt DuckDB library (libduckdb.so, DuckDB 1.5.6, Parquet built in) into
# .duckdb/ so that cargo links against it instead of compiling DuckDB's C++ (45-60 min on
# 2 cores). .cargo/config.toml points DUCKDB_LIB_DIR at .duckdb/ and gives our binaries an
# rpath to it. Idempotent: does nothing when the library is already there.
# The library ships in DuckDB's official Node.js bindings package on the npm registry.
# For a self-contained binary instead: cargo build --release --features bundled
set -euo pipefail
cd "$(dirname "$0")/.."
version="1.5.6-r.1"
dest=".duckdb"
stamp="$dest/VERSION"
if [[ -f "$dest/libduckdb.so" && "$(cat "$stamp" 2>/dev/null)" == "$version" ]]; then
    exit 0
fi
case "$(uname -m)" in
    x86_64 | amd64) arch="x64" ;;
    aarch64 | arm64) arch="arm64" ;;
    *) echo "setup-duckdb: no prebuilt DuckDB for $(uname -m); build with --features bundled" >&2; exit 1 ;;
esac
command -v npm >/dev/null || { echo "setup-duckdb: npm is needed (apt-get install npm), or build with --features bundled" >&2; exit 1; }
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
echo "setup-duckdb: fetching @duckdb/node-bindings-linux-$arch@$version" >&2
(cd "$work" && npm pack --silent "@duckdb/node-bindings-linux-$arch@$version" >/dev/null)
tar -xzf "$work"/*.tgz -C "$work"
mkdir -p "$dest"
cp "$work/package/libduckdb.so" "$dest/libduckdb.so"
cp "$work/package/LICENSE" "$dest/LICENSE" 2>/dev/null || true
echo "$version" > "$stamp"
echo "setup-duckdb: installed $dest/libduckdb.so" >&2
