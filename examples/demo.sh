#!/bin/sh
# demo.sh: the Starling demo for a person, in two acts (`make demo` calls it).
#   Act 1: one node: a planner and four supervised workers (examples/planner.c),
#          shown as its checked summary (run build/examples/planner for the
#          narrated version).
#   Act 2: a cluster of three node processes on 127.0.0.1 (examples/cluster.c):
#          a throwaway cluster CA and node certificates are made here with the
#          `starling cert` tool, then the coordinator starts two workers, hands
#          them tasks, kills one with SIGKILL midway and recovers.
# Usage: sh examples/demo.sh [builddir] [--quiet] [--cluster]
#   --quiet    summaries only (what the tests use)
#   --cluster  act 2 only (ctest: example_cluster)
# Exit status: 0 if both acts told their story as expected, else non-zero.
set -eu
build=${1:-build}
[ $# -gt 0 ] && shift
quiet=""
acts="planner cluster"
for a in "$@"; do
    case $a in
    --quiet | -q) quiet=--quiet ;;
    --cluster) acts=cluster ;;
    *)
        echo "usage: sh examples/demo.sh [builddir] [--quiet] [--cluster]" >&2
        exit 2
        ;;
    esac
done
planner="$build/examples/planner"
cluster="$build/examples/cluster"
tool="$build/tools/starling"
for bin in $planner $cluster $tool; do
    if [ ! -x "$bin" ]; then
        echo "demo.sh: $bin not found; build first (make build, or cmake --build $build)" >&2
        exit 1
    fi
done

say() { [ -n "$quiet" ] || echo "$@"; }

certs=""
cleanup() { [ -z "$certs" ] || rm -rf "$certs"; }
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

status=0
for act in $acts; do
    case $act in
    planner)
        say "== Act 1: one node. A planner fans 12 tasks out to 4 supervised workers; one"
        say "   crashes and is restarted, a streamed report is cancelled midway."
        say "   (checked summary below; run $planner for the narrated version)"
        "$planner" --quiet || status=$?
        say ""
        ;;
    cluster)
        say "== Act 2: a cluster. Three node processes on 127.0.0.1 talk QUIC with mutual TLS;"
        say "   one worker node is killed midway and the coordinator recovers."
        certs=$(mktemp -d "${TMPDIR:-/tmp}/starling-demo.XXXXXX")
        # A cluster CA, one certificate per node (serverAuth + clientAuth,
        # signed by that CA), then the CA key goes: nothing else gets signed.
        "$tool" cert ca --out-cert "$certs/ca.pem" --out-key "$certs/ca.key" \
            --cn "Starling demo cluster CA" --days 1 >/dev/null
        for node in coordinator worker-a worker-b; do
            "$tool" cert node --ca-cert "$certs/ca.pem" --ca-key "$certs/ca.key" \
                --out-cert "$certs/$node.pem" --out-key "$certs/$node.key" --cn "$node" \
                --days 1 >/dev/null
        done
        rm -f "$certs/ca.key"
        say "   Certificates: \`starling cert ca\` made a 1-day cluster CA, \`starling cert node\`"
        say "   one certificate per node; the CA key is already deleted, the rest goes at exit."
        say ""
        # Not exec: this shell removes the certificates when the coordinator
        # is done (the coordinator itself reaps its worker processes).
        "$cluster" coordinator --certs "$certs" $quiet || status=$?
        ;;
    esac
done
exit "$status"
