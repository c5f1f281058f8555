#!/bin/sh
# browser_wasm_test: the WebAssembly build in a real Chromium page
# (tests/browser/wasm_run.mjs serves tests/browser/wasm_page.html with the
# build and drives /usr/bin/chromium headless through playwright-core).
# Argument: the native build directory (unused). The wasm build directory is
# $SL_WASM_DIR, default build-wasm/ in the source tree. playwright-core is
# installed with `npm ci` from the pinned lock file when missing (under a
# lock, as several browser tests may start at once); no browser is downloaded.
# Exit 77 (skipped) when something is missing, unless SL_WASM_REQUIRED is set.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
wasm=${SL_WASM_DIR:-$here/../build-wasm}
chromium=${SL_CHROMIUM:-/usr/bin/chromium}
missing() {
    echo "browser_wasm_test: $1"
    if [ -n "${SL_WASM_REQUIRED:-}" ]; then exit 1; fi
    exit 77
}
[ -f "$wasm/starling-core.wasm" ] && [ -f "$wasm/starling.js" ] || missing "no wasm build in $wasm (make wasm)"
command -v node >/dev/null 2>&1 || missing "node not found"
[ -x "$chromium" ] || missing "$chromium not found (apt-get install chromium)"
if [ ! -f "$here/browser/node_modules/playwright-core/package.json" ]; then
    command -v npm >/dev/null 2>&1 || missing "npm not found"
    lock="${TMPDIR:-/tmp}/starling-browser-npm.lock"
    flock "$lock" sh -c '[ -f "$1/node_modules/playwright-core/package.json" ] ||
        npm ci --prefix "$1" --no-audit --no-fund --loglevel=error' sh "$here/browser" ||
        missing "npm ci --prefix tests/browser failed"
fi
exec node "$here/browser/wasm_run.mjs" "$wasm"
