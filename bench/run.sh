#!/bin/sh
# Run every benchmark binary in <build>/bench, or only the one that knows
# the benchmark named by $2. Each binary accepts a benchmark name as its
# argument and prints JSON lines.
set -eu
BUILD=${1:-build}
NAME=${2:-}
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
[ "$found" = 1 ] || { echo "bench: no benchmark binaries in $BUILD/bench" >&2; exit 1; }
