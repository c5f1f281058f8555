#!/bin/sh
# browser_bench.sh: Starling in a browser page (the wasm runtime joined to a
# native gateway over WebTransport) against a WebSocket baseline in the same
# headless Chromium and the same page. Each result is one JSON line; each
# figure is the median over the rounds (3 by default).
#
#   browser_rtt         10,000 sequential asks, browser agent -> the gateway's
#                       `echo` agent, 64-byte payload (the msgpack-encoded
#                       payload is 64 bytes: a bin of 62), after 1,000 warm-up
#                       asks: p50_us, p99_us; WebSocket: 10,000 sequential
#                       64-byte binary messages to a `ws` echo server, each
#                       awaited: ws_p50_us, ws_p99_us. mean_us and
#                       ws_mean_us: the mean of the times up to p99 (finer
#                       than the page's 5 µs clock in p50). Also send_p50_us,
#                       send_p99_us: the same round trip made of two plain
#                       messages (browser agent -> echo -> browser agent).
#                       raw_wt_p50_us, raw_wt_p99_us, raw_wt_mean_us: a
#                       64-byte echo over one WebTransport stream to
#                       tests/wt_echo_server, no Starling in the page (the
#                       floor under Starling's asks).
#   browser_throughput  the gateway's `blaster` sends `msgs` 64-byte messages
#                       to a browser agent (honouring backpressure), timed in
#                       the page from the request to the final message:
#                       msgs_per_s; the `ws` server sends `ws_msgs` 64-byte
#                       binary messages (honouring the socket's buffer):
#                       ws_msgs_per_s.
#
# Usage: browser_bench.sh <build dir> [name]   |   browser_bench.sh --list
# Needs the native build (tests/gateway_peer, tools/starling), the wasm build
# (SL_WASM_DIR, default build-wasm/ beside bench/), node, /usr/bin/chromium
# and tests/browser/node_modules (`npm ci --prefix tests/browser`: ws). A
# missing wasm build or browser tooling prints a "skipped" line and exits 0
# (1 when SL_WASM_REQUIRED is set, as `make bench` does);
# anything else that fails exits 1 with a message on stderr. The whole run is
# bounded (about 3 minutes at most). BROWSER_BENCH_ARGS passes options to
# tests/browser/bench_browser.mjs (e.g. "--rounds 5 --verbose 1", or
# "--diag 1" for the diagnostics described in bench/README.md).
set -u
NAMES="browser_rtt browser_throughput"
if [ "${1:-}" = --list ]; then
    for n in $NAMES; do echo "$n"; done
    exit 0
fi
BUILD=${1:-build}
ONLY=${2:-}
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
WASM=${SL_WASM_DIR:-$ROOT/build-wasm}
PEER=$BUILD/tests/gateway_peer
TOOL=$BUILD/tools/starling
MODS=$ROOT/tests/browser/node_modules

if [ -n "$ONLY" ]; then
    echo "$NAMES" | tr ' ' '\n' | grep -qx "$ONLY" || {
        echo "browser_bench: unknown benchmark $ONLY (--list)" >&2
        exit 1
    }
fi
skip() {
    if [ -n "${SL_WASM_REQUIRED:-}" ]; then # make bench: it built everything
        echo "browser_bench: $*" >&2
        exit 1
    fi
    echo "{\"bench\":\"browser\",\"skipped\":\"$*\"}"
    echo "browser_bench: skipped: $*" >&2
    exit 0
}
command -v node >/dev/null 2>&1 || skip "node not installed"
[ -x /usr/bin/chromium ] || skip "/usr/bin/chromium not installed"
[ -d "$MODS/ws" ] || skip "tests/browser/node_modules/ws missing (npm ci --prefix tests/browser)"
[ -f "$WASM/starling-core.wasm" ] || skip "no wasm build in $WASM (make wasm)"
for f in "$PEER" "$TOOL"; do
    [ -x "$f" ] || { echo "browser_bench: $f not built" >&2; exit 1; }
done

T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
"$TOOL" cert dev --out-cert "$T/cert.pem" --out-key "$T/key.pem" >/dev/null 2>"$T/err" || {
    echo "browser_bench: starling cert dev failed: $(cat "$T/err")" >&2
    exit 1
}
HASH=$("$TOOL" cert fingerprint "$T/cert.pem" | sed -n 's/^cert-sha256: \([0-9a-f]*\)$/\1/p')
[ ${#HASH} = 64 ] || { echo "browser_bench: no certificate hash" >&2; exit 1; }

ONLY_ARG=""
[ -n "$ONLY" ] && ONLY_ARG="--only $ONLY"
# bench_browser.mjs gives up by itself after --limit (170 s); timeout(1) is
# the backstop.
# shellcheck disable=SC2086 # word splitting of the option strings is wanted
timeout -k 5 180 node "$ROOT/tests/browser/bench_browser.mjs" --peer "$PEER" --dist "$WASM" \
    --cert "$T/cert.pem" --key "$T/key.pem" --hash "$HASH" \
    --wtecho "$BUILD/tests/wt_echo_server" $ONLY_ARG ${BROWSER_BENCH_ARGS:-}
rc=$?
if [ "$rc" != 0 ]; then
    [ "$rc" = 124 ] && echo "browser_bench: timed out after 180 s" >&2
    echo "browser_bench: failed (exit $rc)" >&2
    exit 1
fi
