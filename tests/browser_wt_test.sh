#!/bin/sh
# browser_wt_test.sh: real Chromium (Debian's 156) against Starling's
# WebTransport server. The work is in tests/browser/wt_test.mjs (playwright-
# core driving /usr/bin/chromium headless); this wrapper makes the 14-day
# ECDSA P-256 development certificate with `starling cert dev`, reads its
# SHA-256 (what the page pins with serverCertificateHashes) with `starling
# cert fingerprint`, and runs the script against tests/wt_echo_server.
#
# Usage: browser_wt_test.sh <build dir>. Exit 77 (skip) when node,
# /usr/bin/chromium or tests/browser/node_modules (npm ci, see
# tools/deps.sh) are missing; browsers are never downloaded. Set
# SL_WT_NETLOG=FILE to keep Chromium's net log (why a handshake failed).
set -u
BUILD=${1:-build}
HERE=$(cd "$(dirname "$0")" && pwd)
SRV=$BUILD/tests/wt_echo_server
TOOL=$BUILD/tools/starling

skip() {
    echo "skip: $*"
    exit 77
}
command -v node >/dev/null 2>&1 || skip "node not installed"
[ -x /usr/bin/chromium ] || skip "/usr/bin/chromium not installed (apt-get install chromium)"
[ -d "$HERE/browser/node_modules/playwright-core" ] ||
    skip "playwright-core missing: npm ci --prefix tests/browser (tools/deps.sh does it)"
[ -x "$SRV" ] || { echo "FAIL: $SRV not built"; exit 1; }
[ -x "$TOOL" ] || { echo "FAIL: $TOOL not built"; exit 1; }

T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
"$TOOL" cert dev --out-cert "$T/cert.pem" --out-key "$T/key.pem" >/dev/null ||
    { echo "FAIL: starling cert dev"; exit 1; }
HASH=$("$TOOL" cert fingerprint "$T/cert.pem" | sed -n 's/^cert-sha256: \([0-9a-f]*\)$/\1/p')
[ ${#HASH} = 64 ] || { echo "FAIL: no certificate hash"; exit 1; }

set -- --server "$SRV" --cert "$T/cert.pem" --key "$T/key.pem" --hash "$HASH"
[ -n "${SL_WT_NETLOG:-}" ] && set -- "$@" --netlog "$SL_WT_NETLOG"
# The sanitizer build's server runs under ASan; its exit is checked too.
timeout 170 node "$HERE/browser/wt_test.mjs" "$@"
