#!/bin/sh
# readme_test.sh: the README's API tour is examples/hello.c verbatim (from its
# first #include), so the code a reader sees is the code ctest compiles and runs.
set -eu
SRC=$(cd "$(dirname "$0")/.." && pwd)
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
awk '/^```c$/{f=1;next} /^```$/{if(f){exit}} f' "$SRC/README.md" > "$T/readme.c"
sed -n '/^#include <stdio.h>/,$p' "$SRC/examples/hello.c" > "$T/hello.c"
if ! diff -u "$T/hello.c" "$T/readme.c"; then
    echo "README.md's code block differs from examples/hello.c" >&2
    exit 1
fi
echo "README tour matches examples/hello.c"
