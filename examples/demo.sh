#!/bin/sh
# demo.sh: the Starling demo for a person, in three acts (`make demo` calls it).
#   Act 1: one node: a planner and four supervised workers (examples/planner.c),
#          shown as its checked summary (run build/examples/planner for the
#          narrated version).
#   Act 2: a cluster of three node processes on 127.0.0.1 (examples/cluster.c):
#          a throwaway cluster CA and node certificates are made here with the
#          `starling cert` tool, then the coordinator starts two workers, hands
#          them tasks, kills one with SIGKILL midway and recovers.
#   Act 3: a live cluster a person opens in a browser (examples/browser_demo.c,
#          examples/web/): a gateway node serving WebTransport next to QUIC,
#          a hub node with a dispatcher, and a tiny static web server for the
#          page; browser tabs join and work next to native agents. Prints the
#          URL, then runs for DEMO_BROWSER_SECONDS (default 300) or until
#          Ctrl-C. Needs Node.js (the web server) and the wasm build
#          (SL_WASM_DIR, default build-wasm/); skipped, and said so, without.
#          DEMO_WEB_PORT picks the page's port (default: any free one).
# Usage: sh examples/demo.sh [builddir] [--quiet] [--cluster] [--browser]
#   --quiet    summaries only (what the tests use; acts 1 and 2 only)
#   --cluster  act 2 only (ctest: example_cluster)
#   --browser  act 3 only (ctest: browser_demo_test)
# Exit status: 0 if the acts told their story as expected (act 3: ran and
# shut down cleanly, by the time limit or by Ctrl-C), else non-zero.
set -eu
build=${1:-build}
[ $# -gt 0 ] && shift
quiet=""
acts="planner cluster browser"
for a in "$@"; do
    case $a in
    --quiet | -q) quiet=--quiet ;;
    --cluster) acts=cluster ;;
    --browser) acts=browser ;;
    *)
        echo "usage: sh examples/demo.sh [builddir] [--quiet] [--cluster] [--browser]" >&2
        exit 2
        ;;
    esac
done
# --quiet is for checked runs: the live act 3 only when asked for.
[ -z "$quiet" ] || [ "$acts" != "planner cluster browser" ] || acts="planner cluster"
root=$(cd "$(dirname "$0")/.." && pwd)
planner="$build/examples/planner"
cluster="$build/examples/cluster"
browser_demo="$build/examples/browser_demo"
tool="$build/tools/starling"
wasm=${SL_WASM_DIR:-$root/build-wasm}
seconds=${DEMO_BROWSER_SECONDS:-300}
for bin in $planner $cluster $browser_demo $tool; do
    if [ ! -x "$bin" ]; then
        echo "demo.sh: $bin not found; build first (make build, or cmake --build $build)" >&2
        exit 1
    fi
done

say() { [ -n "$quiet" ] || echo "$@"; }

certs=""
web_pid=""
gw_pid=""
cleanup() {
    for pid in $gw_pid $web_pid; do
        kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
    done
    [ -z "$certs" ] || rm -rf "$certs"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Act 3's Ctrl-C: not an error but the way to end it. Tell the gateway (it
# stops the hub, then itself) and the web server; wait for them below.
stop_act3() {
    stopping=1
    for pid in $gw_pid $web_pid; do
        kill -TERM "$pid" 2>/dev/null || :
    done
}

# A throwaway cluster CA in $certs/$1 and one node certificate per name
# (serverAuth + clientAuth, signed by that CA, valid 1 day: a browser may pin
# a certificate valid at most 14 days); then the CA key goes.
make_certs() {
    dir="$certs/$1"
    shift
    mkdir -p "$dir"
    "$tool" cert ca --out-cert "$dir/ca.pem" --out-key "$dir/ca.key" \
        --cn "Starling demo cluster CA" --days 1 >/dev/null
    for node in "$@"; do
        "$tool" cert node --ca-cert "$dir/ca.pem" --ca-key "$dir/ca.key" \
            --out-cert "$dir/$node.pem" --out-key "$dir/$node.key" --cn "$node" \
            --days 1 >/dev/null
    done
    rm -f "$dir/ca.key"
}

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
        [ -n "$certs" ] || certs=$(mktemp -d "${TMPDIR:-/tmp}/starling-demo.XXXXXX")
        make_certs cluster coordinator worker-a worker-b
        say "   Certificates: \`starling cert ca\` made a 1-day cluster CA, \`starling cert node\`"
        say "   one certificate per node; the CA key is already deleted, the rest goes at exit."
        say ""
        # Not exec: this shell removes the certificates when the coordinator
        # is done (the coordinator itself reaps its worker processes).
        "$cluster" coordinator --certs "$certs/cluster" $quiet || status=$?
        ;;
    browser)
        say ""
        echo "== Act 3: a live cluster you open in a browser. A gateway node serves WebTransport"
        echo "   next to QUIC; a hub node runs a dispatcher; each browser tab that opens the page"
        echo "   joins the cluster and its agents take tasks next to two native workers."
        if ! command -v node >/dev/null 2>&1; then
            echo "   skipped: Node.js is not installed (it serves the page: apt-get install nodejs)"
            continue
        fi
        if [ ! -f "$wasm/starling.js" ] || [ ! -f "$wasm/starling-core.wasm" ]; then
            echo "   skipped: no wasm build in $wasm (make wasm)"
            continue
        fi
        [ -n "$certs" ] || certs=$(mktemp -d "${TMPDIR:-/tmp}/starling-demo.XXXXXX")
        make_certs browser gateway hub
        d="$certs/browser"
        token=$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
        echo "   Certificates: a 1-day cluster CA and node certificates (ECDSA P-256), like act 2;"
        echo "   the gateway's also serves browsers, which pin its SHA-256. Token: random."
        echo "   The page's web server: node examples/web/serve.mjs (127.0.0.1, Node's http module)."
        echo ""
        node "$root/examples/web/serve.mjs" --dist "$wasm" --config "$d/config.json" \
            --port "${DEMO_WEB_PORT:-0}" --port-file "$d/web.port" --parent $$ &
        web_pid=$!
        i=0
        while [ ! -s "$d/web.port" ] && [ $i -lt 100 ] && kill -0 "$web_pid" 2>/dev/null; do
            sleep 0.1
            i=$((i + 1))
        done
        if [ ! -s "$d/web.port" ]; then
            echo "demo.sh: the page's web server did not start" >&2
            status=1
            continue
        fi
        web_port=$(cat "$d/web.port")
        stopping=0
        trap stop_act3 INT TERM
        "$browser_demo" gateway --certs "$d" --origin "http://127.0.0.1:$web_port" \
            --token "$token" --config-out "$d/config.json" --seconds "$seconds" &
        gw_pid=$!
        # A trapped signal interrupts `wait` (status > 128): wait again, for
        # the gateway's own exit status.
        act=0
        wait "$gw_pid" || act=$?
        while [ "$act" -gt 128 ] && kill -0 "$gw_pid" 2>/dev/null; do
            act=0
            wait "$gw_pid" || act=$?
        done
        gw_pid=""
        kill -TERM "$web_pid" 2>/dev/null || :
        wait "$web_pid" 2>/dev/null || :
        web_pid=""
        trap 'exit 130' INT
        trap 'exit 143' TERM
        [ "$act" -eq 0 ] || status=$act
        if [ "$act" -eq 0 ]; then
            echo "== Act 3 ended cleanly$([ "$stopping" = 1 ] && echo ' (Ctrl-C)')."
        fi
        ;;
    esac
done
exit "$status"
