#!/bin/sh
# Install, idempotently, the Debian packages Starling needs to build and test.
#
# Everything comes from Debian 12 (bookworm) except ngtcp2 1.11 and nghttp3 1.8,
# which come from bookworm-backports (bookworm itself has ngtcp2 0.12, a pre-1.0
# API), and with them ngtcp2-client (gtlsclient, an HTTP/3 client for the
# interop test). The browser build needs Emscripten, Chromium and tsc
# (node-typescript) for its tests, and a `deb-src` entry so that the wasm
# build can fetch msgpack-c's Debian source package (`apt-get source
# --download-only msgpack-c`, run by wasm/msgpack.sh into the build
# directory). The browser tests also need playwright-core from npm in
# tests/browser/node_modules (`npm ci`, pinned by its package-lock.json; never
# a browser download), and bench/browser_bench.sh the `ws` package (the
# WebSocket baseline). The script only touches apt or npm when something is
# missing, so running it on every `make` costs a few dpkg-query calls.
set -eu
HERE=$(cd "$(dirname "$0")" && pwd)

# tests/browser/node_modules, when npm is there and it is missing.
browser_modules() {
    if [ ! -d "$HERE/../tests/browser/node_modules/playwright-core" ] ||
        [ ! -d "$HERE/../tests/browser/node_modules/ws" ]; then
        if command -v npm >/dev/null 2>&1; then
            echo "deps: npm ci in tests/browser (playwright-core, ws)"
            npm ci --prefix "$HERE/../tests/browser" --no-audit --no-fund >/dev/null ||
                echo "deps: npm ci failed; the browser tests will be skipped" >&2
        else
            echo "deps: npm not found; the browser tests will be skipped" >&2
        fi
    fi
}

SUDO=""
if [ "$(id -u)" != 0 ]; then
    command -v sudo >/dev/null 2>&1 || { echo "deps: not root and no sudo; install packages by hand" >&2; exit 1; }
    SUDO="sudo"
fi

BASE_PKGS="build-essential cmake pkg-config libuv1-dev libgnutls28-dev gnutls-bin libmsgpack-dev libcmocka-dev valgrind emscripten chromium node-typescript"
BPO_PKGS="libngtcp2-dev libngtcp2-crypto-gnutls-dev libnghttp3-dev ngtcp2-client"

missing() {
    for p in "$@"; do
        if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
            printf '%s ' "$p"
        fi
    done
}

# ngtcp2 must be 1.11 (backports), not bookworm's 0.12.
ngtcp2_ok() {
    grep -q 'NGTCP2_VERSION "1\.1[1-9]' /usr/include/ngtcp2/version.h 2>/dev/null ||
    grep -q 'NGTCP2_VERSION "1\.[2-9][0-9]' /usr/include/ngtcp2/version.h 2>/dev/null
}

# apt knows msgpack-c's source package (a deb-src entry for bookworm).
src_ok() {
    apt-cache showsrc msgpack-c 2>/dev/null | grep -q '^Package: msgpack-c'
}

need_base=$(missing $BASE_PKGS)
need_bpo=$(missing $BPO_PKGS)
if ! ngtcp2_ok; then need_bpo="$BPO_PKGS"; fi
need_src=""
if ! src_ok; then need_src="msgpack-c (source)"; fi
# npm is only test tooling (playwright-core in tests/browser); a Node.js that
# ships its own npm (NodeSource) must not get Debian's npm package on top.
if ! command -v npm >/dev/null 2>&1; then need_base="$need_base npm"; fi

if [ -z "$need_base" ] && [ -z "$need_bpo" ] && [ -z "$need_src" ]; then
    browser_modules
    exit 0
fi

echo "deps: installing: $need_base $need_bpo $need_src"
export DEBIAN_FRONTEND=noninteractive

# URIs and Signed-By of the main Debian entry, so that the mirror and keyring
# of the entries we add match what this machine already trusts.
src=/etc/apt/sources.list.d/debian.sources
uris="http://deb.debian.org/debian"
key="/usr/share/keyrings/debian-archive-keyring.gpg"
if [ -f "$src" ]; then
    u=$(awk '/^URIs:/ && $2 ~ /debian\/?$/ {print $2; exit}' "$src")
    k=$(awk '/^Signed-By:/ {print $2; exit}' "$src")
    [ -n "$u" ] && uris="$u"
    [ -n "$k" ] && key="$k"
fi

if [ -n "$need_src" ] && [ ! -f /etc/apt/sources.list.d/starling-src.sources ]; then
    printf 'Types: deb-src\nURIs: %s\nSuites: bookworm\nComponents: main\nSigned-By: %s\n' \
        "$uris" "$key" | $SUDO tee /etc/apt/sources.list.d/starling-src.sources >/dev/null
fi

if [ -n "$need_bpo" ] && ! grep -rqs 'bookworm-backports' /etc/apt/sources.list /etc/apt/sources.list.d/; then
    printf 'Types: deb\nURIs: %s\nSuites: bookworm-backports\nComponents: main\nSigned-By: %s\n' \
        "$uris" "$key" | $SUDO tee /etc/apt/sources.list.d/starling-backports.sources >/dev/null
fi

$SUDO apt-get update -qq
if [ -n "$need_base" ]; then
    $SUDO apt-get install -y -qq --no-install-recommends $need_base
fi
if [ -n "$need_bpo" ]; then
    $SUDO apt-get install -y -qq --no-install-recommends -t bookworm-backports $BPO_PKGS
fi
ngtcp2_ok || { echo "deps: ngtcp2 >= 1.11 not installed (check bookworm-backports)" >&2; exit 1; }
src_ok || { echo "deps: apt has no source package msgpack-c (check the deb-src entry)" >&2; exit 1; }
# Debian's emcc needs node-acorn, found through NODE_PATH=/usr/share/nodejs
# when Node.js is not Debian's (the wasm build sets it).
[ -d /usr/share/nodejs/acorn ] || { echo "deps: /usr/share/nodejs/acorn missing (node-acorn)" >&2; exit 1; }
browser_modules
echo "deps: done"
