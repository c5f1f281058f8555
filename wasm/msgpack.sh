#!/bin/sh
# msgpack.sh DIR: put msgpack-c's C sources, from Debian's source package, in
# DIR (for the Emscripten build of libmsgpackc.a; see wasm/CMakeLists.txt).
#
# `apt-get source --download-only msgpack-c` fetches the .dsc, the upstream
# tarball and the Debian changes into DIR.dl (apt checks them against the
# signed Sources index, which is why the deb-src entry tools/deps.sh adds is
# needed); dpkg-source unpacks them with Debian's patches applied. Nothing is
# downloaded again once DIR holds the sources. Never committed: the build
# directory is ignored by git.
set -eu
dir=$1
if [ -f "$dir/include/msgpack.h" ] && [ -f "$dir/CMakeLists.txt" ]; then
    exit 0
fi
dl="$dir.dl"
mkdir -p "$dl"
if ! ls "$dl"/msgpack-c_*.dsc >/dev/null 2>&1; then
    # As root, apt downloads as the _apt user: let it write here.
    if [ "$(id -u)" = 0 ] && id _apt >/dev/null 2>&1; then
        chown _apt "$dl"
    fi
    (cd "$dl" && apt-get source --download-only -qq msgpack-c) || {
        echo "msgpack.sh: apt-get source msgpack-c failed; run 'make deps' (it adds the deb-src entry)" >&2
        exit 1
    }
fi
dsc=$(ls "$dl"/msgpack-c_*.dsc | head -n 1)
rm -rf "$dir.tmp"
# --no-check: the signature of the .dsc needs Debian's keyrings; apt has
# already verified every file against the signed index.
dpkg-source --no-check -x "$dsc" "$dir.tmp" >/dev/null
rm -rf "$dir"
mv "$dir.tmp" "$dir"
echo "msgpack.sh: $(basename "$dsc" .dsc) unpacked in $dir"
