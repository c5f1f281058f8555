#!/bin/sh
# browser_cluster_test.sh: browser agents as cluster members, in Debian's
# Chromium (tests/browser/cluster_test.mjs through playwright-core): the wasm
# runtime joins tests/gateway_peer's gateway over WebTransport and exchanges
# messages, asks (reply and timeout, both directions), priorities and
# datagrams with native agents, sees DOWN when the native node is killed and
# reconnects after its restart; a wrong token and a wrong origin are refused.
#
# Usage: browser_cluster_test.sh <build dir>. The wasm build comes from
# SL_WASM_DIR (default build-wasm/). Exit 77 (skip) when node, Chromium,
# tests/browser/node_modules or the wasm build are missing, unless
# SL_WASM_REQUIRED is set (make test sets it).
set -u
BUILD=${1:-build}
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
WASM=${SL_WASM_DIR:-$ROOT/build-wasm}
PEER=$BUILD/tests/gateway_peer
TOOL=$BUILD/tools/starling

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
[ -x "$PEER" ] || { echo "FAIL: $PEER not built"; exit 1; }

T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
"$TOOL" cert dev --out-cert "$T/cert.pem" --out-key "$T/key.pem" >/dev/null ||
    { echo "FAIL: starling cert dev"; exit 1; }
HASH=$("$TOOL" cert fingerprint "$T/cert.pem" | sed -n 's/^cert-sha256: \([0-9a-f]*\)$/\1/p')
[ ${#HASH} = 64 ] || { echo "FAIL: no certificate hash"; exit 1; }
timeout 170 node "$HERE/browser/cluster_test.mjs" --peer "$PEER" --dist "$WASM" \
    --cert "$T/cert.pem" --key "$T/key.pem" --hash "$HASH" --wtecho "$BUILD/tests/wt_echo_server"
