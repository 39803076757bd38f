#!/usr/bin/env bash
# Constrained environments (issue 6), called from .ci/run:
#  1. the #![no_std] example (its own workspace: panic = "abort") is formatted
#     and lint-clean (its process tests run in the main test step);
#  2. aarch64 Linux: guru-core's unit tests and the core-only example run
#     under qemu-user, the example's report checked by tests/tests/constrained_cross.rs;
#  3. static x86_64 musl: the same for the core-only example.
# Each cross part installs what it needs; when a Rust target or a Debian
# package cannot be had, it says SKIPPED and why, and the script still exits 0.
set -euo pipefail
cd "$(dirname "$0")/.."
T="${CARGO_TARGET_DIR:-$PWD/target}"
step() { printf '\n==== %s ====\n' "$*"; }

step "constrained: no_std example (examples/nostd) fmt + clippy"
(cd examples/nostd && cargo fmt -- --check &&
    cargo clippy --release --locked --target-dir "$T/nostd" -- -D warnings)

need=()
command -v aarch64-linux-gnu-gcc >/dev/null || need+=(gcc-aarch64-linux-gnu libc6-dev-arm64-cross)
command -v qemu-aarch64 >/dev/null || need+=(qemu-user)
if ((${#need[@]})); then
    step "constrained: apt-get install ${need[*]}"
    if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}"; } >/tmp/guru-apt.log 2>&1; then
        tail -5 /tmp/guru-apt.log
        echo "could not install ${need[*]} (see above)"
    fi
fi

show_report() { # runs a core_only binary that reports itself once, prints the report
    timeout 60 "$@" --report-after-ms 500 --exit-after-ms 2000 2>&1 >/dev/null | sed -n '/Guru Meditation/,/End of Guru Meditation/p'  || true
}

step "constrained: aarch64-unknown-linux-gnu under qemu-user"
if ! rustup target add aarch64-unknown-linux-gnu; then
    echo "SKIPPED aarch64: rustup could not install the aarch64-unknown-linux-gnu target"
elif ! command -v aarch64-linux-gnu-gcc >/dev/null || ! command -v qemu-aarch64 >/dev/null; then
    echo "SKIPPED aarch64: gcc-aarch64-linux-gnu or qemu-user is not installed"
else
    QEMU="qemu-aarch64 -L /usr/aarch64-linux-gnu"
    export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc
    export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER="$QEMU"
    cargo test -p guru-core --target aarch64-unknown-linux-gnu
    cargo build --release -p guru-examples --bin core_only --target aarch64-unknown-linux-gnu
    BIN="$T/aarch64-unknown-linux-gnu/release/core_only"
    show_report $QEMU "$BIN"
    GURU_CROSS_BIN="$BIN" GURU_CROSS_KIND=aarch64 GURU_CROSS_RUNNER="$QEMU" \
        cargo test -p guru-tests --test constrained_cross -- --include-ignored
fi

step "constrained: static x86_64-unknown-linux-musl"
if ! rustup target add x86_64-unknown-linux-musl; then
    echo "SKIPPED musl: rustup could not install the x86_64-unknown-linux-musl target"
else
    cargo test -p guru-core --target x86_64-unknown-linux-musl
    cargo build --release -p guru-examples --bin core_only --target x86_64-unknown-linux-musl
    BIN="$T/x86_64-unknown-linux-musl/release/core_only"
    if readelf -lW "$BIN" | grep -q INTERP || readelf -dW "$BIN" | grep -q NEEDED; then
        echo "FAILED musl: $BIN is not statically linked"
        exit 1
    fi
    echo "$BIN: statically linked (no INTERP, no NEEDED)"
    show_report "$BIN"
    GURU_CROSS_BIN="$BIN" GURU_CROSS_KIND=musl cargo test -p guru-tests --test constrained_cross -- --include-ignored
fi
