#!/bin/sh
# wt_gtlsclient_test.sh: HTTP/3 interop with a client we did not write.
#
# tests/wt_echo_server (a Starling QUIC endpoint with WebTransport on, so it
# offers "h3" next to its own ALPN) runs on 127.0.0.1; Debian's gtlsclient
# (ngtcp2 1.11's example client over GnuTLS, with nghttp3's full HTTP/3
# stack and QPACK) fetches the health path, then a path that does not
# exist. Checked: status 200 and body "ok" for /health (downloaded file),
# status 404 for the other, both with the server's SETTINGS accepted; then
# the server exits cleanly on SIGTERM (its loop closes with nothing left,
# and in the sanitizer build LeakSanitizer checks the exit).
#
# Usage: wt_gtlsclient_test.sh <build dir>. Exit 77 (skip) without
# gtlsclient (package ngtcp2-client from bookworm-backports) or timeout(1).
# Bounded: each client run has a 20 s limit.
set -u
BUILD=${1:-build}
SRV=$BUILD/tests/wt_echo_server

skip() {
    echo "skip: $*"
    exit 77
}
command -v gtlsclient >/dev/null 2>&1 || skip "gtlsclient not installed (ngtcp2-client, bookworm-backports)"
command -v timeout >/dev/null 2>&1 || skip "timeout (coreutils) not installed"
[ -x "$SRV" ] || { echo "FAIL: $SRV not built"; exit 1; }

T=$(mktemp -d)
PID=""
cleanup() {
    [ -n "$PID" ] && kill -9 "$PID" 2>/dev/null
    [ -n "$PID" ] && wait "$PID" 2>/dev/null
    rm -rf "$T"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

fail() {
    echo "FAIL: $*"
    for f in "$T"/*.out "$T"/*.err; do
        [ -s "$f" ] && { echo "--- $f"; tail -n 30 "$f"; }
    done
    exit 1
}

wait_for() { # FILE PATTERN TENTHS
    i=0
    while [ "$i" -lt "$3" ]; do
        grep -q "$2" "$1" 2>/dev/null && return 0
        sleep 0.1
        i=$((i + 1))
    done
    return 1
}

"$SRV" --host 127.0.0.1 --port 0 --timeout 60 >"$T/server.out" 2>"$T/server.err" &
PID=$!
wait_for "$T/server.out" READY 100 || fail "server did not start"
PORT=$(sed -n 's/^READY port=\([0-9]*\).*/\1/p' "$T/server.out")
[ -n "$PORT" ] || fail "no port in READY line"

passed=0
mkdir -p "$T/dl"
timeout 20 gtlsclient --exit-on-first-stream-close --download="$T/dl" \
    127.0.0.1 "$PORT" "https://127.0.0.1:$PORT/health" >"$T/health.out" 2>&1 ||
    fail "gtlsclient /health exited $?"
grep -q 'Negotiated ALPN is h3' "$T/health.out" || fail "ALPN h3 not negotiated"
grep -q 'http: remote settings' "$T/health.out" || fail "gtlsclient saw no SETTINGS"
grep -q '\[:status: 200\]' "$T/health.out" || fail "/health: no status 200"
[ "$(cat "$T/dl/health" 2>/dev/null)" = "ok" ] || fail "/health body is not 'ok'"
passed=$((passed + 1))

timeout 20 gtlsclient --exit-on-first-stream-close --download="$T/dl" \
    127.0.0.1 "$PORT" "https://127.0.0.1:$PORT/nope" >"$T/nope.out" 2>&1 ||
    fail "gtlsclient /nope exited $?"
grep -q '\[:status: 404\]' "$T/nope.out" || fail "/nope: no status 404"
grep -q 'not found' "$T/dl/nope" || fail "/nope: no 'not found' body"
passed=$((passed + 1))

# The client closed cleanly; the server is alive and exits cleanly.
kill -0 "$PID" 2>/dev/null || fail "server died"
kill -TERM "$PID"
wait "$PID"
rc=$?
PID=""
[ "$rc" = 0 ] || fail "server exit $rc"
grep -q 'EXIT loop_close=0' "$T/server.out" || fail "server loop did not close cleanly"
passed=$((passed + 1))
echo "wt_gtlsclient_test: $passed passed, 0 failed"
