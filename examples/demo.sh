#!/bin/sh
# demo.sh: run the multi-agent demo (examples/planner.c) for a person.
# Usage: sh examples/demo.sh [builddir] [--quiet]    (`make demo` calls it)
set -eu
build=${1:-build}
[ $# -gt 0 ] && shift
bin="$build/examples/planner"
if [ ! -x "$bin" ]; then
    echo "demo.sh: $bin not found; build first (make build, or cmake --build $build)" >&2
    exit 1
fi
echo "Starling demo: a planner fans 12 tasks out to 4 supervised workers; one crashes and is restarted, a streamed report is cancelled midway."
exec "$bin" "$@"
