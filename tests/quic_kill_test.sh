#!/bin/sh
# quic_kill_test.sh: a peer killed with SIGKILL is detected by the idle
# timeout, in time and with the right error.
#
# A quic_peer server runs on 127.0.0.1. A quic_peer client with a 1 s idle
# timeout and a 200 ms keep-alive connects, sends 64 KiB (hash checked),
# then holds the connection. While the server lives the keep-alive keeps
# the connection up (checked for 1.5 s, longer than the idle timeout); then
# the server gets SIGKILL: it sends nothing more, not even a
# CONNECTION_CLOSE. The client must report the connection closed with
# SL_ERR_TIMEOUT within idle timeout + 1.5 s of the kill.
#
# Usage: quic_kill_test.sh <build dir>. Exit 77 (skip) when quic_peer is not
# built (SL_BUILD_BENCH=OFF) or timeout(1) is missing. Bounded: < 20 s.
set -u
BUILD=${1:-build}
PEER=$BUILD/bench/quic_peer
IDLE_MS=1000
MARGIN_MS=1500

skip() {
    echo "skip: $*"
    exit 77
}
[ -x "$PEER" ] || skip "$PEER not built (benchmarks are off in this build)"
command -v timeout >/dev/null 2>&1 || skip "timeout (coreutils) not installed"

T=$(mktemp -d)
PIDS=""
cleanup() {
    for p in $PIDS; do kill -9 "$p" 2>/dev/null; done
    for p in $PIDS; do wait "$p" 2>/dev/null; done
    rm -rf "$T"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

fail() {
    echo "FAIL: $*"
    for f in "$T"/*.out "$T"/*.err; do
        [ -s "$f" ] && { echo "--- $f"; tail -n 20 "$f"; }
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

ms() { echo $(($(date +%s%N) / 1000000)); }

"$PEER" server --host 127.0.0.1 --port 0 --timeout 60 >"$T/server.out" 2>"$T/server.err" &
SRV=$!
PIDS="$PIDS $SRV"
wait_for "$T/server.out" READY 50 || fail "server did not start"
PORT=$(sed -n 's/^READY port=\([0-9]*\).*/\1/p' "$T/server.out")
PIN=$(sed -n 's/^READY .*pin=\([0-9a-f]*\).*/\1/p' "$T/server.out")

timeout 40 "$PEER" client --host 127.0.0.1 --port "$PORT" --pin "$PIN" --bytes 64K \
    --idle-ms "$IDLE_MS" --keepalive-ms 200 --hold-sec 20 --timeout 30 --json kill_detect \
    >"$T/client.out" 2>"$T/client.err" &
CLI=$!
PIDS="$PIDS $CLI"
wait_for "$T/client.out" HOLDING 100 || fail "client did not finish its transfer"

# Alive peer: the keep-alive holds the connection past the idle timeout.
sleep 1.5
kill -0 "$CLI" 2>/dev/null || fail "connection ended while the server was alive"

t0=$(ms)
kill -9 "$SRV"
wait "$CLI"
rc=$?
elapsed=$(($(ms) - t0))
[ "$rc" = 0 ] || fail "client exit $rc"
json=$(grep '^{' "$T/client.out")
echo "$json"
echo "$json" | grep -q '"close_err":"SL_ERR_TIMEOUT"' || fail "close not reported as SL_ERR_TIMEOUT"
echo "$json" | grep -q '"ok":true' || fail "transfer before the kill not ok"
[ "$elapsed" -le $((IDLE_MS + MARGIN_MS)) ] ||
    fail "kill detected after $elapsed ms (bound $((IDLE_MS + MARGIN_MS)) ms)"
echo "SIGKILLed peer detected after $elapsed ms (idle timeout $IDLE_MS ms)"
echo "quic_kill_test: 1 passed, 0 failed"
