#!/bin/sh
# browser_webtransport_test.sh: the browser build's transport
# (sl_web_transport_new: wasm/transport_web.c + wasm/library_webtransport.js)
# in Debian's Chromium against tests/wt_echo_server. The checks are in the
# test-only module tests/wasm/webtransport_client.c (built by
# wasm/CMakeLists.txt into $SL_WASM_DIR/tests/), run in a page by
# tests/browser/webtransport_run.mjs (playwright-core, headless); this
# wrapper makes the 14-day ECDSA P-256 development certificate with
# `starling cert dev` and passes its SHA-256 for the page to pin.
#
# Usage: browser_webtransport_test.sh <native build dir>. The wasm build
# is $SL_WASM_DIR (default build-wasm/ in the source tree). Exit 77 (skip)
# when the wasm build, node, /usr/bin/chromium or playwright-core are
# missing, unless SL_WASM_REQUIRED is set; browsers are never downloaded.
set -u
here=$(cd "$(dirname "$0")" && pwd)
BUILD=${1:-$here/../build}
wasm=${SL_WASM_DIR:-$here/../build-wasm}
chromium=${SL_CHROMIUM:-/usr/bin/chromium}
SRV=$BUILD/tests/wt_echo_server
TOOL=$BUILD/tools/starling

missing() {
    echo "browser_webtransport_test: $1"
    if [ -n "${SL_WASM_REQUIRED:-}" ]; then exit 1; fi
    exit 77
}
[ -f "$wasm/tests/webtransport-client.wasm" ] && [ -f "$wasm/tests/webtransport-client.mjs" ] ||
    missing "no test module in $wasm/tests (make wasm)"
command -v node >/dev/null 2>&1 || missing "node not found"
[ -x "$chromium" ] || missing "$chromium not found (apt-get install chromium)"
if [ ! -f "$here/browser/node_modules/playwright-core/package.json" ]; then
    command -v npm >/dev/null 2>&1 || missing "npm not found"
    lock="${TMPDIR:-/tmp}/starling-browser-npm.lock"
    flock "$lock" sh -c '[ -f "$1/node_modules/playwright-core/package.json" ] ||
        npm ci --prefix "$1" --no-audit --no-fund --loglevel=error' sh "$here/browser" ||
        missing "npm ci --prefix tests/browser failed"
fi
[ -x "$SRV" ] || { echo "FAIL: $SRV not built"; exit 1; }
[ -x "$TOOL" ] || { echo "FAIL: $TOOL not built"; exit 1; }

T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
"$TOOL" cert dev --out-cert "$T/cert.pem" --out-key "$T/key.pem" >/dev/null ||
    { echo "FAIL: starling cert dev"; exit 1; }
HASH=$("$TOOL" cert fingerprint "$T/cert.pem" | sed -n 's/^cert-sha256: \([0-9a-f]*\)$/\1/p')
[ ${#HASH} = 64 ] || { echo "FAIL: no certificate hash"; exit 1; }

timeout 175 node "$here/browser/webtransport_run.mjs" --server "$SRV" --cert "$T/cert.pem" \
    --key "$T/key.pem" --hash "$HASH" --wasm "$wasm"
