#!/bin/sh
# wasm_test: the WebAssembly build (build-wasm/) run under Node.js: JS and C
# actors in one module, and the JS msgpack codec against schemas/vectors.json
# (tests/wasm/node_test.mjs). Argument: the native build directory (unused;
# ctest passes it to every script test). The wasm build directory is
# $SL_WASM_DIR, default build-wasm/ in the source tree.
# Exit 77 (skipped) when the wasm build or Node.js is missing, unless
# SL_WASM_REQUIRED is set (`make test` sets it: there, missing is a failure).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
wasm=${SL_WASM_DIR:-$here/../build-wasm}
missing() {
    echo "wasm_test: $1"
    if [ -n "${SL_WASM_REQUIRED:-}" ]; then exit 1; fi
    exit 77
}
[ -f "$wasm/starling-core.wasm" ] && [ -f "$wasm/starling.js" ] || missing "no wasm build in $wasm (make wasm)"
command -v node >/dev/null 2>&1 || missing "node not found"
exec node "$here/wasm/node_test.mjs" "$wasm"
