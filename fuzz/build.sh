#!/bin/sh
# Build the libFuzzer targets (clang only). Not part of the default build.
#   sh fuzz/build.sh [outdir]        (default: build-fuzz)
# then e.g.: build-fuzz/envelope_fuzz fuzz/corpus/envelope -max_total_time=60
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-"$root/build-fuzz"}
mkdir -p "$out"
CC=${CC:-clang}
FLAGS="-std=gnu11 -g -O1 -fno-omit-frame-pointer -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined"
for t in envelope check frame; do
    $CC $FLAGS -I"$root/include" -I"$root" "$root/fuzz/${t}_fuzz.c" "$root"/schemas/*.c \
        "$root/actors/common.c" -lmsgpackc -o "$out/${t}_fuzz"
    echo "built $out/${t}_fuzz"
done
# The HTTP/3 / WebTransport readers (transport/webtransport), with nghttp3's QPACK.
$CC $FLAGS -I"$root/include" -I"$root" "$root/fuzz/h3_fuzz.c" \
    "$root/transport/webtransport/h3.c" "$root/transport/webtransport/headers.c" \
    $(pkg-config --cflags --libs libnghttp3) -o "$out/h3_fuzz"
echo "built $out/h3_fuzz"
