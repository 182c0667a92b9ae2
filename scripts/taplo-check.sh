#!/usr/bin/env bash
# Checks the example pipelines against schemas/pipeline.schema.json with taplo (the TOML
# toolkit behind VS Code's Even Better TOML), as an editor would, and checks that taplo
# rejects a misspelt parameter. Installs @taplo/cli from npm into a temporary folder.
set -euo pipefail
cd "$(dirname "$0")/.."
tools="${TAPLO_DIR:-$(mktemp -d)}"
[[ -x "$tools/node_modules/.bin/taplo" ]] || (cd "$tools" && npm install --silent --no-audit --no-fund @taplo/cli@0.7 >/dev/null)
taplo="$tools/node_modules/.bin/taplo"
"$taplo" check pipelines/*.toml 2>/dev/null || { echo "taplo-check: an example pipeline fails the schema" >&2; "$taplo" check pipelines/*.toml; exit 1; }
bad="pipelines/.taplo-misspelt.toml"
trap 'rm -f "$bad"' EXIT
sed 's/^low_freq = /low_frequency = /' pipelines/demo.toml > "$bad"
if "$taplo" check "$bad" >/dev/null 2>&1; then
    echo "taplo-check: taplo accepted a misspelt parameter; the schema is too loose" >&2
    exit 1
fi
echo "taplo-check: examples accepted, misspelt parameter rejected"
