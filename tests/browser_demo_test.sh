#!/bin/sh
# browser_demo_test.sh: act 3 of `make demo` (a live cluster that browser tabs
# join), run headless: tests/browser/demo_test.mjs starts `examples/demo.sh
# <build> --browser`, opens the URL it prints in Debian's Chromium through
# playwright-core, waits until the page's browser worker has done tasks and
# its telemetry arrived, closes the page (DOWN(noconnection) at the
# dispatcher) and ends the demo with Ctrl-C (SIGINT to its process group):
# exit 0, both summaries, no process left.
#
# Usage: browser_demo_test.sh <build dir>. The wasm build comes from
# SL_WASM_DIR (default build-wasm/). Exit 77 (skip) when node, Chromium,
# tests/browser/node_modules or the wasm build are missing, unless
# SL_WASM_REQUIRED is set (make test sets it).
set -u
BUILD=${1:-build}
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
WASM=${SL_WASM_DIR:-$ROOT/build-wasm}

missing() {
    if [ -n "${SL_WASM_REQUIRED:-}" ]; then
        echo "FAIL: $*"
        exit 1
    fi
    echo "skip: $*"
    exit 77
}
command -v node >/dev/null 2>&1 || missing "node not installed"
[ -x /usr/bin/chromium ] || missing "/usr/bin/chromium not installed (apt-get install chromium)"
[ -d "$HERE/browser/node_modules/playwright-core" ] ||
    missing "playwright-core missing: npm ci --prefix tests/browser (tools/deps.sh does it)"
[ -f "$WASM/starling-core.wasm" ] || missing "no wasm build in $WASM (make wasm)"
[ -x "$BUILD/examples/browser_demo" ] || { echo "FAIL: $BUILD/examples/browser_demo not built"; exit 1; }
timeout 100 node "$HERE/browser/demo_test.mjs" --demo "$ROOT/examples/demo.sh" --build "$BUILD" \
    --dist "$WASM"
