#!/bin/sh
# wasm_types_test: wasm/starling.d.ts is valid TypeScript and describes the
# API as an application uses it: `tsc --strict` type-checks
# tests/wasm/types_check.ts against it (Debian's node-typescript; nothing is
# emitted or run). That the declarations and the module export the same
# names is checked by tests/wasm_test.sh. Argument: the build directory
# (unused). Exit 77 (skipped) without tsc, unless SL_WASM_REQUIRED is set.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
if ! command -v tsc >/dev/null 2>&1; then
    echo "wasm_types_test: tsc not found (apt-get install node-typescript)"
    if [ -n "${SL_WASM_REQUIRED:-}" ]; then exit 1; fi
    exit 77
fi
exec tsc --strict --noEmit --target es2022 --module es2022 --moduleResolution node \
    --lib es2022,dom "$here/wasm/types_check.ts"
