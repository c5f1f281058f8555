#!/bin/sh
# quic_netns_test.sh: QUIC between two hosts over a bad link, and through a
# 2-second blackhole.
#
# The two hosts are network namespaces this script creates for itself:
# slq<PID>a and slq<PID>b, joined by one veth pair (slqa<PID> - slqb<PID>)
# with the addresses 10.123.1.1/24 and 10.123.1.2/24. These namespaces are
# the project's own test hosts: the addresses exist only inside them, there
# is no default route and nothing is forwarded anywhere else. Names carry
# the PID so parallel runs do not collide; everything is removed on exit.
#
# The link is impaired on both ends as with
#   tc qdisc add dev <veth> root netem delay 20ms loss 2% reorder 25% 50%
# When the kernel has no netem (CONFIG_NET_SCH_NETEM off, as on the project's
# own VMs) the same impairment is applied by `quic_peer relay`, a UDP relay
# in the server's namespace that delays, drops and reorders with netem's
# meaning in both directions; the packets still cross the veth pair.
#
# Case 1: quic_peer client (host b) sends 4 streams x 4 MiB and 100
#   datagrams to quic_peer server (host a); every SHA-256 must come back
#   intact.
# Case 2: the same transfer; once the server has 2 MiB the link drops
#   everything for 2 s (netem loss 100%, or the relay's blackhole), then
#   heals. The connection must survive (idle timeout 30 s, keep-alive 10 s:
#   the defaults) and complete intact.
#
# Usage: quic_netns_test.sh <build dir>. Exit 77 (skip) without root, ip,
# tc, timeout, network namespaces or a built quic_peer (SL_BUILD_BENCH=OFF).
# Every wait is bounded; the whole script takes well under 90 s.
set -u
BUILD=${1:-build}
PEER=$BUILD/bench/quic_peer

skip() {
    echo "skip: $*"
    exit 77
}
[ "$(id -u)" = 0 ] || skip "needs root for network namespaces"
command -v ip >/dev/null 2>&1 || skip "ip (iproute2) not installed"
command -v tc >/dev/null 2>&1 || skip "tc (iproute2) not installed"
command -v timeout >/dev/null 2>&1 || skip "timeout (coreutils) not installed"
[ -x "$PEER" ] || skip "$PEER not built (benchmarks are off in this build)"

NSA=slq$$a
NSB=slq$$b
VA=slqa$$
VB=slqb$$
ADDR_A=10.123.1.1
ADDR_B=10.123.1.2
PORT=4433
IMPAIR="delay 20ms loss 2% reorder 25% 50%"
T=$(mktemp -d)
PIDS=""

cleanup() {
    for p in $PIDS; do kill "$p" 2>/dev/null; done
    for p in $PIDS; do wait "$p" 2>/dev/null; done
    ip netns del "$NSA" 2>/dev/null
    ip netns del "$NSB" 2>/dev/null
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

# wait_for FILE PATTERN TENTHS: bounded wait for a line in a file.
wait_for() {
    i=0
    while [ "$i" -lt "$3" ]; do
        grep -q "$2" "$1" 2>/dev/null && return 0
        sleep 0.1
        i=$((i + 1))
    done
    return 1
}

# ---------------------------------------------------------------- the hosts
ip netns add "$NSA" 2>"$T/ns.err" || skip "cannot create network namespaces: $(cat "$T/ns.err")"
ip netns add "$NSB" || fail "ip netns add $NSB"
ip -n "$NSA" link add "$VA" type veth peer name "$VB" netns "$NSB" || fail "veth pair"
ip -n "$NSA" addr add "$ADDR_A/24" dev "$VA" || fail "address a"
ip -n "$NSB" addr add "$ADDR_B/24" dev "$VB" || fail "address b"
for ns in "$NSA" "$NSB"; do ip -n "$ns" link set lo up; done
ip -n "$NSA" link set "$VA" up || fail "link a up"
ip -n "$NSB" link set "$VB" up || fail "link b up"

if tc -n "$NSA" qdisc add dev "$VA" root netem $IMPAIR 2>"$T/tc.err"; then
    tc -n "$NSB" qdisc add dev "$VB" root netem $IMPAIR || fail "netem on $VB"
    MODE=netem
    SRV_HOST=$ADDR_A
    SRV_PORT=$PORT
else
    echo "note: no netem in this kernel ($(cat "$T/tc.err")); impairing with quic_peer relay"
    MODE=relay
    SRV_HOST=127.0.0.1 # the relay in the same namespace forwards to it
    SRV_PORT=$((PORT + 1))
fi
echo "hosts: $NSA ($ADDR_A) <-> $NSB ($ADDR_B), impairment: $IMPAIR via $MODE"

# ------------------------------------------------------------- the server
ip netns exec "$NSA" "$PEER" server --host "$SRV_HOST" --port "$SRV_PORT" --timeout 85 \
    >"$T/server.out" 2>"$T/server.err" &
SRV=$!
PIDS="$PIDS $SRV"
wait_for "$T/server.out" READY 50 || fail "server did not start"
PIN=$(sed -n 's/^READY .*pin=\([0-9a-f]*\).*/\1/p' "$T/server.out")
if [ "$MODE" = relay ]; then
    ip netns exec "$NSA" "$PEER" relay --host "$ADDR_A" --port "$PORT" --to-host 127.0.0.1 \
        --to-port "$SRV_PORT" --delay-ms 20 --loss 2 --reorder 25 --reorder-corr 50 \
        --seed $$ --timeout 85 >"$T/relay.out" 2>"$T/relay.err" &
    RELAY=$!
    PIDS="$PIDS $RELAY"
    wait_for "$T/relay.out" READY 50 || fail "relay did not start"
fi

blackhole() { # on | off
    if [ "$MODE" = netem ]; then
        if [ "$1" = on ]; then how="delay 20ms loss 100%"; else how=$IMPAIR; fi
        tc -n "$NSA" qdisc change dev "$VA" root netem $how || fail "netem change"
        tc -n "$NSB" qdisc change dev "$VB" root netem $how || fail "netem change"
    else
        kill -USR2 "$RELAY"
        wait_for "$T/relay.out" "BLACKHOLE $1" 20 || fail "relay did not switch blackhole $1"
    fi
}

client() { # output-name, extra args...
    name=$1
    shift
    timeout 40 ip netns exec "$NSB" "$PEER" client --host "$ADDR_A" --port "$PORT" --pin "$PIN" \
        --bytes 4M --streams 4 --timeout 35 "$@" >"$T/$name.out" 2>"$T/$name.err"
}

# ------------------------------------------------ case 1: a lossy transfer
start=$(date +%s)
client lossy --datagrams 100 --json netns_lossy || fail "lossy transfer (exit $?)"
grep -q '"ok":true' "$T/lossy.out" || fail "lossy transfer not ok"
# The 2 % loss is seen and counted by the transport (never zero over 16 MiB).
lost=$(sed -n 's/.*"pkts_lost":\([0-9]*\).*/\1/p' "$T/lossy.out")
[ -n "$lost" ] && [ "$lost" -gt 0 ] || fail "lossy transfer reported no lost packets ($lost)"
echo "case 1 ($(($(date +%s) - start)) s): $(cat "$T/lossy.out")"

# -------------------------------------- case 2: a 2 s blackhole mid-transfer
start=$(date +%s)
client blackhole --json netns_blackhole &
CLI=$!
PIDS="$PIDS $CLI"
# Wait (bounded) until the server holds at least 2 MiB of the 16 MiB.
got=0
i=0
while [ "$i" -lt 200 ]; do
    kill -USR1 "$SRV"
    sleep 0.1
    got=$(sed -n 's/^STATS .*bytes_in=\([0-9]*\).*/\1/p' "$T/server.out" | tail -n 1)
    [ "${got:-0}" -ge 20971520 ] && break # previous case's 16 MiB + 2 MiB
    i=$((i + 1))
done
[ "${got:-0}" -ge 20971520 ] || fail "transfer did not get going"
kill -0 "$CLI" 2>/dev/null || fail "transfer finished before the blackhole (make it longer)"
blackhole on
sleep 2
kill -0 "$CLI" 2>/dev/null || fail "client gave up during the 2 s blackhole"
blackhole off
wait "$CLI"
rc=$?
[ "$rc" = 0 ] || fail "transfer through a 2 s blackhole failed (exit $rc)"
grep -q '"ok":true' "$T/blackhole.out" || fail "blackhole transfer not ok"
echo "case 2 ($(($(date +%s) - start)) s, blackhole at $got bytes in): $(cat "$T/blackhole.out")"
echo "quic_netns_test: 2 passed, 0 failed"
