#!/bin/sh
# Wall time of `guru dump <pid>` next to `gdb -batch -ex 'thread apply all bt'`
# and `eu-stack -p`, on the same process (tests/src/bin/dump_fixture.rs, release
# build), with 64 and 1024 parked threads. Each tool runs RUNS times in
# turn; the median is printed. Tools that are missing are reported, not
# faked. Usage (from the workspace root):
#   cargo build --release -p guru-cli --bin guru -p guru-tests --bin dump_fixture
#   sh cli/bench/dump_vs_debuggers.sh [RUNS]
set -eu
RUNS=${1:-5}
T=target/release
GURU=$T/guru
FIX=$T/dump_fixture
[ -x "$GURU" ] && [ -x "$FIX" ] || { echo "build first: cargo build --release -p guru-cli --bin guru -p guru-tests --bin dump_fixture" >&2; exit 1; }
now() { date +%s%N; }
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
ms() { awk -v ns="$1" 'BEGIN {printf "%.1f", ns / 1e6}'; }
XDG=$(mktemp -d); chmod 700 "$XDG"
for threads in 64 1024; do
    FIFO=$XDG/in; rm -f "$FIFO"; mkfifo "$FIFO"
    XDG_RUNTIME_DIR=$XDG "$FIX" --threads "$threads" --min-interval-ms 0 < "$FIFO" > "$XDG/out" 2> "$XDG/err" &
    PID=$!
    exec 3> "$FIFO"
    while ! grep -q ready "$XDG/out"; do sleep 0.05; done
    sleep 1   # the reporter's symbol index (prewarm) is built
    "$GURU" dump "$PID" --timeout 60 > /dev/null  # warm symbols, as after a first report
    for tool in guru gdb eu-stack; do
        case $tool in
            guru) cmd="$GURU dump $PID --timeout 60" ;;
            gdb) command -v gdb > /dev/null || { echo "$threads threads: gdb missing"; continue; }
                 cmd="gdb -p $PID -batch -ex 'thread apply all bt'" ;;
            eu-stack) command -v eu-stack > /dev/null || { echo "$threads threads: eu-stack missing"; continue; }
                 cmd="eu-stack -p $PID" ;;
        esac
        times=""
        i=0
        lines=0
        while [ $i -lt "$RUNS" ]; do
            t0=$(now)
            lines=$(sh -c "$cmd" 2>/dev/null | wc -l)
            t1=$(now)
            times="$times $((t1 - t0))"
            i=$((i + 1))
        done
        med=$(echo $times | tr ' ' '\n' | median)
        echo "$threads threads: $tool median $(ms "$med") ms over $RUNS runs ($lines lines of output)"
    done
    exec 3>&-
    wait "$PID" 2>/dev/null || true
done
rm -rf "$XDG"
