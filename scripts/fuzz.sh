#!/usr/bin/env bash
# Runs each coverage-guided fuzzer in fuzz/ (cargo fuzz, libFuzzer) for SECONDS (default
# 60), starting from the checked-in corpus, and prints how many inputs each ran. New
# interesting inputs go to a scratch folder, not the checked-in corpus; a crash leaves
# its input in fuzz/artifacts/<target>/ and fails the script.
# Stable Rust: no sanitizer (-s none); the code is safe Rust and a panic is the bug looked
# for. Needs cargo-fuzz (cargo install cargo-fuzz --locked).
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-60}"
scripts/setup-duckdb.sh
# cargo fuzz sets RUSTFLAGS, which replaces .cargo/config.toml's rpath: say where
# libduckdb.so is instead.
export LD_LIBRARY_PATH="$PWD/.duckdb${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
for target in pipeline_loader audio_reader; do
    mkdir -p "$scratch/$target"
    log="$scratch/$target.log"
    if ! (cd fuzz && cargo fuzz run -s none --codegen-units 16 "$target" "$scratch/$target" "corpus/$target" -- \
        -max_total_time="$seconds" -max_len=8192 -print_final_stats=1) >"$log" 2>&1; then
        tail -n 40 "$log"
        echo "fuzz: $target failed (input in fuzz/artifacts/$target/)" >&2
        exit 1
    fi
    runs="$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo '?')"
    echo "fuzz: $target ran $runs inputs in ${seconds} s without a crash"
done
