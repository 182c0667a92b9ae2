#!/usr/bin/env bash
# Fetches the prebuilt DuckDB library (libduckdb.so, DuckDB 1.5.6, Parquet built in) so
# that cargo links against it instead of compiling DuckDB's C++ (45-60 min on 2 cores).
#
#   scripts/setup-duckdb.sh            # this machine's architecture, into .duckdb/
#   scripts/setup-duckdb.sh arm64      # another one (amd64 | arm64), into .duckdb/<arch>/
#
# .cargo/config.toml points DUCKDB_LIB_DIR at .duckdb/ for host builds and gives our
# binaries an rpath to it; scripts/package.sh points it at .duckdb/<arch>/ for a cross
# build. Idempotent: does nothing when the library is already there.
# The library ships in DuckDB's official Node.js bindings package on the npm registry.
# For a self-contained binary instead: cargo build --release --features bundled
set -euo pipefail
cd "$(dirname "$0")/.."
version="1.5.6-r.1"
case "$(uname -m)" in
    x86_64 | amd64) host="amd64" ;;
    aarch64 | arm64) host="arm64" ;;
    *) host="" ;;
esac
want="${1:-$host}"
case "$want" in
    amd64) npm_arch="x64" ;;
    arm64) npm_arch="arm64" ;;
    *) echo "setup-duckdb: no prebuilt DuckDB for ${want:-$(uname -m)} (amd64 and arm64 only); build with --features bundled" >&2; exit 1 ;;
esac
if [[ "$want" == "$host" ]]; then dest=".duckdb"; else dest=".duckdb/$want"; fi
stamp="$dest/VERSION"
if [[ -f "$dest/libduckdb.so" && "$(cat "$stamp" 2>/dev/null)" == "$version" ]]; then
    exit 0
fi
command -v npm >/dev/null || { echo "setup-duckdb: npm is needed (apt-get install npm), or build with --features bundled" >&2; exit 1; }
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
echo "setup-duckdb: fetching @duckdb/node-bindings-linux-$npm_arch@$version" >&2
(cd "$work" && npm pack --silent "@duckdb/node-bindings-linux-$npm_arch@$version" >/dev/null)
tar -xzf "$work"/*.tgz -C "$work"
mkdir -p "$dest"
cp "$work/package/libduckdb.so" "$dest/libduckdb.so"
cp "$work/package/LICENSE" "$dest/LICENSE" 2>/dev/null || true
echo "$version" > "$stamp"
echo "setup-duckdb: installed $dest/libduckdb.so" >&2
