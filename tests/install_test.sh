#!/bin/sh
# install_test.sh <builddir>: `cmake --install` puts headers, libraries,
# starling.pc and the CMake package config in place, and a program outside
# the tree builds against them both ways (pkg-config and find_package) and
# runs. Skipped (exit 77) for sanitizer builds, whose library cannot be
# linked by an uninstrumented program.
set -eu
BUILD=$(cd "$1" && pwd)
if grep -Eq '^SL_(ASAN|UBSAN|TSAN):BOOL=ON' "$BUILD/CMakeCache.txt"; then
    echo "skipped: sanitizer build"; exit 77
fi
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
cmake --install "$BUILD" --prefix "$T/prefix" >/dev/null
for f in include/starling/starling.h include/starling/actor.h lib/pkgconfig/starling.pc \
         lib/cmake/starling/starlingConfig.cmake; do
    [ -f "$T/prefix/$f" ] || { echo "missing after install: $f"; exit 1; }
done
ls "$T/prefix/lib/"libstarling.so* "$T/prefix/lib/libstarling.a" >/dev/null

cat > "$T/main.c" <<'C'
#include <starling/starling.h>
#include <stdio.h>
static int got;
static int on_msg(sl_actor *self, const sl_msg *m) { got = (int)m->type; return 0; }
int main(void) {
    sl_core *c; sl_id id;
    sl_behavior b = {.on_message = on_msg};
    if (sl_core_new(NULL, &c) || sl_spawn(c, &b, NULL, NULL, &id)) return 1;
    sl_core_send(c, id, 42, SL_PRIO_NORMAL, NULL, 0);
    sl_core_run(c, 1, 0);
    sl_core_del(c);
    printf("got %d\n", got);
    return got == 42 ? 0 : 1;
}
C
# pkg-config, shared library
PKG_CONFIG_PATH="$T/prefix/lib/pkgconfig" cc -o "$T/pc" "$T/main.c" \
    $(PKG_CONFIG_PATH="$T/prefix/lib/pkgconfig" pkg-config --cflags --libs starling)
LD_LIBRARY_PATH="$T/prefix/lib" "$T/pc"

# CMake package config, static library
mkdir -p "$T/consumer"
cp "$T/main.c" "$T/consumer/main.c"
cat > "$T/consumer/CMakeLists.txt" <<'CM'
cmake_minimum_required(VERSION 3.20)
project(consumer C)
find_package(starling REQUIRED)
add_executable(consumer main.c)
target_link_libraries(consumer PRIVATE starling::starling_static)
CM
cmake -S "$T/consumer" -B "$T/consumer/build" -DCMAKE_PREFIX_PATH="$T/prefix" >/dev/null
cmake --build "$T/consumer/build" >/dev/null
"$T/consumer/build/consumer"
echo "install test passed"
