#!/usr/bin/env bash
# Reliability checks (issue 4), called from .ci/run after the ordinary tests:
#  1. loom model check of the slot protocol (core/tests/model_slots.rs under
#     --cfg loom, in its own target dir so the cfg does not rebuild the rest);
#  2. a fuzz smoke run: every cargo-fuzz target for FUZZ_SECONDS (default 20)
#     on the nightly toolchain, seeded with the committed regression inputs.
#     Installs cargo-fuzz from crates.io if it is missing; prints a line
#     starting with "SKIPPED" (and still succeeds) when nightly or cargo-fuzz
#     cannot be had. Long runs: see docs/fuzzing.md.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==== %s ====\n' "$*"; }

step "loom model checks (slot protocol, range table, trigger ring)"
RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR=target/loom \
    cargo test -p guru-core --test model_slots --test model_ranges --test model_triggers --release -- \
    --nocapture --test-threads=1

step "fuzz smoke (${FUZZ_SECONDS:-20} s per target)"
if ! cargo +nightly --version >/dev/null 2>&1; then
    echo "SKIPPED fuzz smoke: no nightly toolchain (rustup toolchain install nightly)"
    exit 0
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "cargo-fuzz is missing: installing it from crates.io"
    if ! cargo install cargo-fuzz --locked; then
        echo "SKIPPED fuzz smoke: cargo-fuzz could not be installed"
        exit 0
    fi
fi
cargo fuzz --version
cargo +nightly fuzz build --fuzz-dir fuzz
for target in $(cargo +nightly fuzz list --fuzz-dir fuzz); do
    corpus="fuzz/corpus/$target"
    seeds="fuzz/regressions/$target"
    mkdir -p "$corpus" "$seeds"
    echo "---- fuzz $target"
    log="$(mktemp)"
    status=0
    cargo +nightly fuzz run --fuzz-dir fuzz "$target" "$corpus" "$seeds" -- \
        -max_total_time="${FUZZ_SECONDS:-20}" -timeout=10 -rss_limit_mb=4096 \
        -print_final_stats=1 >"$log" 2>&1 || status=$?
    grep -E '^(#[0-9]+ +DONE|stat::number_of_executed_units|Done )' "$log" || true
    if [ "$status" -ne 0 ]; then
        tail -n 80 "$log"
        echo "fuzz target $target FAILED (status $status); reproduce with"
        echo "  cargo +nightly fuzz run $target fuzz/artifacts/$target/<crash file>"
        exit 1
    fi
    rm -f "$log"
done
echo "fuzz smoke: all targets ran clean"
