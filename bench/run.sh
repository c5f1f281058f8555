#!/bin/sh
# Run every benchmark in <build>/bench (binaries named *_bench) and every
# benchmark script bench/*_bench.sh, or only the one that knows the
# benchmark named by $2. Binaries take a benchmark name as their argument;
# scripts take the build directory and then the name. Both answer --list
# with the names they know, and print one JSON object per result line.
set -eu
BUILD=${1:-build}
NAME=${2:-}
HERE=$(dirname "$0")
found=0
for b in "$BUILD"/bench/*_bench; do
    [ -x "$b" ] || continue
    found=1
    if [ -n "$NAME" ]; then
        "$b" --list 2>/dev/null | grep -qx "$NAME" || continue
        "$b" "$NAME"
    else
        "$b"
    fi
done
for s in "$HERE"/*_bench.sh; do
    [ -f "$s" ] || continue
    found=1
    if [ -n "$NAME" ]; then
        sh "$s" --list 2>/dev/null | grep -qx "$NAME" || continue
        sh "$s" "$BUILD" "$NAME"
    else
        sh "$s" "$BUILD"
    fi
done
[ "$found" = 1 ] || { echo "bench: no benchmark binaries in $BUILD/bench" >&2; exit 1; }
